"""The service requests API: hospital scoping (404 for other hospitals' ids), dispatch actions."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from core.models import AuditEntry
from dicom.models import Order
from fleet.models import ServiceRequest
from tests.core.factories import UserFactory
from tests.fleet.factories import VisitFactory
from tests.fleet.request_factories import ServiceRequestFactory, exam, served_hospital

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
DAY = datetime.timedelta(days=1)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def two():
    """Two hospitals of two operators, each with one request."""
    sites = []
    for _ in range(2):
        operator, hospital, unit, user, dispatcher = served_hospital()
        stored = ServiceRequestFactory(
            hospital=hospital, operator=operator, created_by=user, exams=[exam(1)], patients=2
        )
        sites.append(
            {
                "operator": operator,
                "hospital": hospital,
                "unit": unit,
                "user": user,
                "dispatcher": dispatcher,
                "request": stored,
            }
        )
    return sites


def _body(**overrides):
    body = {
        "modality": "CT",
        "patients": 4,
        "earliest_date": (TODAY + DAY).isoformat(),
        "latest_date": (TODAY + 8 * DAY).isoformat(),
        "priority": "routine",
        "exams": [exam(1)],
    }
    body.update(overrides)
    return body


def test_hospital_user_sees_only_their_hospitals_requests(two):
    ours, theirs = two
    client = _client(ours["user"])
    rows = client.get("/api/requests/").json()
    assert [row["id"] for row in rows] == [ours["request"].pk]
    assert rows[0]["exam_count"] == 1 and "exams" not in rows[0]
    assert client.get(f"/api/requests/{theirs['request'].pk}/").status_code == 404
    for action in ("cancel", "decline", "schedule"):
        response = client.post(f"/api/requests/{theirs['request'].pk}/{action}/", {"reason": "x", "visit": 1})
        assert response.status_code == 404, action
    theirs["request"].refresh_from_db()
    assert theirs["request"].status == "submitted"


def test_detail_shows_the_exam_list_and_is_audited(two):
    ours, _ = two
    response = _client(ours["user"]).get(f"/api/requests/{ours['request'].pk}/")
    assert response.status_code == 200
    assert response.json()["exams"] == [exam(1)]
    [entry] = AuditEntry.objects.filter(action="service_request.view")
    assert (entry.actor_id, entry.object_id, entry.patient_data) == (
        ours["user"].pk,
        str(ours["request"].pk),
        True,
    )


def test_hospital_user_files_for_their_hospital_only(two):
    ours, theirs = two
    client = _client(ours["user"])
    response = client.post("/api/requests/", _body(hospital=theirs["hospital"].pk), format="json")
    assert response.status_code == 403
    assert ServiceRequest.objects.count() == 2
    response = client.post("/api/requests/", _body(), format="json")
    assert response.status_code == 201, response.json()
    created = ServiceRequest.objects.get(pk=response.json()["id"])
    assert (created.hospital, created.operator, created.status) == (
        ours["hospital"],
        ours["operator"],
        "submitted",
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"latest_date": TODAY.isoformat()}, "latest_date"),
        ({"patients": "many"}, "patients"),
        ({"patients": 300}, "patients"),
        ({"exams": [exam(1, sex="X")]}, "exams[0].sex"),
    ],
)
def test_validation_errors_name_the_field(two, overrides, field):
    response = _client(two[0]["user"]).post("/api/requests/", _body(**overrides), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body.get("field") == field or field in body.get("errors", {}), body
    assert body["detail"].startswith(f"{field}: ")
    assert ServiceRequest.objects.count() == 2


def test_dispatcher_sees_their_operators_requests_only(two, django_assert_num_queries):
    ours, theirs = two
    more = ServiceRequestFactory.create_batch(
        3, hospital=ours["hospital"], operator=ours["operator"], created_by=ours["user"]
    )
    client = _client(ours["dispatcher"])
    # The caller's roles, then the requests with their hospital, operator, author and visit.
    with django_assert_num_queries(2):
        rows = client.get("/api/requests/").json()
    assert sorted(row["id"] for row in rows) == sorted([ours["request"].pk, *(r.pk for r in more)])
    assert client.get(f"/api/requests/{theirs['request'].pk}/").status_code == 404
    assert client.get(f"/api/requests/{ours['request'].pk}/").status_code == 200


@pytest.mark.parametrize("role", [Role.TECHNOLOGIST, Role.QC_OFFICER])
def test_other_operator_staff_are_refused(two, role):
    ours, _ = two
    client = _client(UserFactory(organisation=ours["operator"], roles=[role]))
    assert client.get("/api/requests/").status_code == 403
    assert client.get(f"/api/requests/{ours['request'].pk}/").status_code == 404
    assert client.get("/api/coverage/").status_code == 403


def test_dispatcher_declines_and_hospital_cannot(two):
    ours, _ = two
    url = f"/api/requests/{ours['request'].pk}/decline/"
    assert _client(ours["user"]).post(url, {"reason": "never mind"}).status_code == 403
    assert _client(ours["dispatcher"]).post(url, {}).status_code == 400
    response = _client(ours["dispatcher"]).post(url, {"reason": "no CT van free in the window"})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["decline_reason"]) == (
        "declined",
        "no CT van free in the window",
    )
    assert _client(ours["dispatcher"]).post(url, {"reason": "again"}).status_code == 409


def test_hospital_cancels_then_cannot_again(two):
    ours, _ = two
    url = f"/api/requests/{ours['request'].pk}/cancel/"
    assert _client(ours["dispatcher"]).post(url, {}).status_code == 403
    response = _client(ours["user"]).post(url, {})
    assert (response.status_code, response.json()["decline_reason"]) == (200, "cancelled by hospital")
    assert _client(ours["user"]).post(url, {}).status_code == 409


def test_dispatcher_schedules_on_a_visit_and_the_exams_are_booked(two):
    ours, theirs = two
    visit = VisitFactory(unit=ours["unit"], hospital=ours["hospital"], date=TODAY + 2 * DAY)
    foreign = VisitFactory(unit=theirs["unit"], hospital=theirs["hospital"], date=TODAY + 2 * DAY)
    client = _client(ours["dispatcher"])
    url = f"/api/requests/{ours['request'].pk}/schedule/"
    response = client.post(url, {"visit": foreign.pk})
    assert response.status_code == 400 and "visit" in response.json()["errors"]
    response = client.post(url, {"visit": visit.pk})
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["visit"], response.json()["visit_date"]) == (
        "scheduled",
        visit.pk,
        visit.date.isoformat(),
    )
    [order] = Order.objects.all()
    assert (order.unit_id, order.scheduled_date, order.patient_id) == (visit.unit_id, visit.date, "P00001")
    response = client.post(f"/api/requests/{ours['request'].pk}/transition/", {"to": "fulfilled"})
    assert (response.status_code, response.json()["status"]) == (200, "fulfilled")


def test_coverage_for_dispatchers_only(two):
    ours, _ = two
    assert _client(ours["user"]).get("/api/coverage/").status_code == 403
    on = datetime.date(2026, 1, 11)  # contracts start on 2026-01-01; never served
    rows = _client(ours["dispatcher"]).get(f"/api/coverage/?on={on.isoformat()}").json()
    assert [(row["hospital_id"], row["days_overdue"], row["last_visit"]) for row in rows] == [
        (ours["hospital"].pk, 10, None)
    ]
