"""The hospital's van-visit page: file, follow and cancel requests; read dispatch's messages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from core.choices import Role
from fleet.models import ServiceRequest
from fleet.services.notices import hospital_notify
from telerad.models import Notification
from tests.core.factories import UserFactory
from tests.fleet.request_factories import ServiceRequestFactory, served_hospital

pytestmark = pytest.mark.django_db
URL = "/workspace/hospital/requests/"


@pytest.fixture
def site(client):
    operator, hospital, unit, user, dispatcher = served_hospital("CT")
    client.force_login(user)
    return {"operator": operator, "hospital": hospital, "user": user, "dispatcher": dispatcher}


def _form(**overrides):
    start = timezone.localdate() + dt.timedelta(days=2)
    body = {
        "modality": "CT",
        "patients": "12",
        "earliest_date": start.isoformat(),
        "latest_date": (start + dt.timedelta(days=5)).isoformat(),
        "priority": "urgent",
        "notes": "Stroke follow-ups",
    }
    body.update(overrides)
    return body


def test_a_hospital_user_files_a_request_and_sees_it(client, site):
    page = client.get(URL)
    assert page.status_code == 200
    assert '<option value="CT"' in page.content.decode() and '<option value="MR"' not in page.content.decode()

    response = client.post(URL, _form(), follow=True)

    [stored] = ServiceRequest.objects.all()
    assert (stored.hospital, stored.operator, stored.patients, stored.priority, stored.status) == (
        site["hospital"], site["operator"], 12, "urgent", "submitted",
    )  # fmt: skip
    assert f'data-request="{stored.pk}"' in response.content.decode()
    assert f"Request #{stored.pk} filed" in response.content.decode()


def test_bad_input_is_explained_and_stores_nothing(client, site):
    start = timezone.localdate() + dt.timedelta(days=5)
    response = client.post(
        URL, _form(earliest_date=start.isoformat(), latest_date=(start - dt.timedelta(days=2)).isoformat())
    )
    assert response.status_code == 400
    assert "latest_date" in response.content.decode() or "before" in response.content.decode()
    assert client.post(URL, _form(modality="MR")).status_code == 400  # not contracted: not a choice
    assert client.post(URL, _form(patients="0")).status_code == 400
    assert ServiceRequest.objects.count() == 0


def test_cancel_own_request_only(client, site):
    own = ServiceRequestFactory(operator=site["operator"], hospital=site["hospital"])
    other = ServiceRequestFactory(operator=site["operator"])
    assert client.post(f"{URL}{other.pk}/cancel/").status_code == 404
    response = client.post(f"{URL}{own.pk}/cancel/", {"reason": "patients transferred"}, follow=True)
    own.refresh_from_db()
    other.refresh_from_db()
    assert (own.status, own.decline_reason) == ("declined", "cancelled by hospital: patients transferred")
    assert other.status == "submitted"
    assert f"Request #{own.pk} cancelled" in response.content.decode()


def test_messages_from_dispatch_are_listed_and_marked_read(client, site):
    hospital_notify(
        hospital=site["hospital"], kind="visit.scheduled", message="CT visit booked for Mon 30 Nov"
    )
    page = client.get(URL).content.decode()
    assert "CT visit booked for Mon 30 Nov" in page and "(1 new)" in page
    client.post("/workspace/hospital/notifications/read/")
    assert Notification.objects.get(recipient=site["user"]).read_at is not None
    assert "(1 new)" not in client.get(URL).content.decode()


def test_only_hospital_users(client, site):
    client.force_login(site["dispatcher"])
    assert client.get(URL).status_code == 403
    client.force_login(UserFactory(organisation=site["hospital"], roles=[Role.QC_OFFICER]))
    assert client.get(URL).status_code == 403
