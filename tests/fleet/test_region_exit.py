"""Ending an operator's service in a region: refused while nobody takes its hospitals over."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.choices import Role
from core.models import AuditEntry
from fleet.models import RegionExit, ServiceContract, ServiceRequest
from telerad.models import Notification
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, VisitFactory
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory

pytestmark = pytest.mark.django_db
REGION = "CN-HB-ES"


@pytest.fixture
def world():
    leaving, staying = OperatorFactory(), OperatorFactory()
    badong = HospitalFactory(name="Badong County People's Hospital", region_code=REGION)
    jianshi = HospitalFactory(name="Jianshi County People's Hospital", region_code=REGION)
    zigui = HospitalFactory(name="Zigui County People's Hospital", region_code="CN-HB-YC")
    for hospital in (badong, jianshi, zigui):
        ServiceContractFactory(operator=leaving, hospital=hospital, modality="CT", interval_days=14)
    unit = UnitFactory(operator=leaving, modality="CT")
    submitted = ServiceRequestFactory(operator=leaving, hospital=badong)
    visit = VisitFactory(unit=unit, hospital=jianshi, status="planned")
    scheduled = ServiceRequestFactory(
        operator=leaving, hospital=jianshi, status="scheduled", visit=visit,
        earliest_date=visit.date, latest_date=visit.date,
    )  # fmt: skip
    elsewhere = ServiceRequestFactory(operator=leaving, hospital=zigui)
    return {
        "leaving": leaving,
        "staying": staying,
        "hospitals": (badong, jianshi, zigui),
        "requests": (submitted, scheduled, elsewhere),
        "visit": visit,
        "dispatcher": UserFactory(organisation=leaving, roles=[Role.DISPATCHER]),
        "admin": UserFactory(organisation=leaving, roles=[Role.ADMIN]),
    }


def _post(user, body=None, region=REGION):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(f"/api/regions/{region}/end-service/", body or {}, format="json")


def test_refused_with_the_contracts_nobody_takes_over_then_allowed_after_the_handover(world):
    badong, jianshi, zigui = world["hospitals"]
    refused = _post(world["dispatcher"])
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "region_exit_refused"
    assert [(row["hospital_name"], row["modality"]) for row in body["uncovered"]] == [
        ("Badong County People's Hospital", "CT"),
        ("Jianshi County People's Hospital", "CT"),
    ]
    assert RegionExit.objects.get(pk=body["region_exit"]).outcome == "refused"
    assert ServiceContract.objects.filter(operator=world["leaving"], active=True).count() == 3

    ServiceContractFactory(operator=world["staying"], hospital=badong, modality="CT")
    still = _post(world["dispatcher"]).json()
    assert [row["hospital_name"] for row in still["uncovered"]] == ["Jianshi County People's Hospital"]

    ServiceContractFactory(operator=world["staying"], hospital=jianshi, modality="CT")
    ended = _post(world["dispatcher"])
    assert ended.status_code == 200, ended.json()
    assert ended.json()["outcome"] == "withdrawn" and ended.json()["uncovered"] == []
    active = ServiceContract.objects.filter(operator=world["leaving"], active=True)
    assert list(active.values_list("hospital_id", flat=True)) == [zigui.pk]  # the other region stays
    submitted, scheduled, elsewhere = (ServiceRequest.objects.get(pk=r.pk) for r in world["requests"])
    assert (submitted.status, scheduled.status, elsewhere.status) == ("declined", "declined", "submitted")
    assert "ends its service in region CN-HB-ES" in submitted.decline_reason
    world["visit"].refresh_from_db()
    assert world["visit"].status == "cancelled"
    assert sorted(Notification.objects.values_list("kind", "recipient_id")) == sorted(
        [("request.declined", submitted.created_by_id), ("request.declined", scheduled.created_by_id)]
    )
    assert AuditEntry.objects.filter(action="region.exit").count() == 1
    assert AuditEntry.objects.filter(action="region.exit_refused").count() == 2


def test_only_an_administrator_overrides_and_the_reason_is_recorded(world):
    assert _post(world["dispatcher"], {"override_reason": "budget"}).status_code == 403
    assert ServiceContract.objects.filter(operator=world["leaving"], active=True).count() == 3

    done = _post(world["admin"], {"override_reason": "provincial contract ended 2026-12-31"})

    assert done.status_code == 200
    record = RegionExit.objects.get(pk=done.json()["id"])
    assert (record.outcome, record.reason) == ("overridden", "provincial contract ended 2026-12-31")
    assert len(record.uncovered) == 2 and len(record.contracts_ended) == 2


def test_a_region_without_contracts_is_a_bad_request_and_outsiders_are_refused(world):
    assert _post(world["dispatcher"], region="CN-XX-00").status_code == 400
    hospital_user = world["requests"][0].created_by
    assert _post(hospital_user).status_code == 403
    assert RegionExit.objects.count() == 0


def test_the_coverage_page_lists_regions_and_shows_a_refusal_then_the_exit(world, client):
    client.force_login(world["dispatcher"])
    page = client.get("/fleet/coverage/").content.decode()
    assert 'data-region="CN-HB-ES"' in page and 'data-region="CN-HB-YC"' in page

    refused = client.post(f"/fleet/regions/{REGION}/end-service/")
    assert refused.status_code == 409
    text = refused.content.decode()
    assert "Badong County People&#x27;s Hospital" in text and "Jianshi County People&#x27;s Hospital" in text

    for hospital in world["hospitals"][:2]:
        ServiceContractFactory(operator=world["staying"], hospital=hospital, modality="CT")
    done = client.post(f"/fleet/regions/{REGION}/end-service/")
    assert done.status_code == 200 and "Service in CN-HB-ES ended" in done.content.decode()
    assert not ServiceContract.objects.filter(
        operator=world["leaving"], hospital__region_code=REGION, active=True
    )
