"""Contracts API (dispatch writes, hospitals read their own) and the full coverage endpoint."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from core.models import AuditEntry
from fleet.models import ServiceContract
from tests.fleet.factories import OperatorFactory, UnitFactory
from tests.fleet.map_factories import HubeiHospitalFactory, VisitFactory, dispatcher, hospital_user
from tests.fleet.request_factories import ServiceContractFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def world():
    operator = OperatorFactory()
    rival = OperatorFactory()
    ours = HubeiHospitalFactory(name="Ours Hospital")
    theirs = HubeiHospitalFactory(name="Theirs Hospital")
    ct = ServiceContractFactory(operator=operator, hospital=ours, modality="CT", interval_days=14)
    mr = ServiceContractFactory(operator=operator, hospital=ours, modality="MR", interval_days=30)
    other = ServiceContractFactory(operator=rival, hospital=theirs, modality="CT")
    return {
        "operator": operator,
        "rival": rival,
        "ours": ours,
        "theirs": theirs,
        "ct": ct,
        "mr": mr,
        "other": other,
        "dispatcher": dispatcher(operator),
        "admin": dispatcher(operator, role=Role.ADMIN),
        "tech": dispatcher(operator, role=Role.TECHNOLOGIST),
        "hospital": hospital_user(ours),
    }


def test_listing_is_scoped(world):
    rows = _client(world["dispatcher"]).get("/api/contracts/").json()
    assert [(r["hospital_name"], r["modality"], r["interval_days"]) for r in rows] == [
        ("Ours Hospital", "CT", 14),
        ("Ours Hospital", "MR", 30),
    ]
    rows = _client(hospital_user(world["theirs"])).get("/api/contracts/").json()
    assert [r["id"] for r in rows] == [world["other"].pk]
    assert [r["id"] for r in _client(world["hospital"]).get("/api/contracts/").json()] == [
        world["ct"].pk,
        world["mr"].pk,
    ]
    assert _client(world["tech"]).get("/api/contracts/").status_code == 403
    assert _client(world["dispatcher"]).get(f"/api/contracts/{world['other'].pk}/").status_code == 404
    assert _client(world["hospital"]).get(f"/api/contracts/{world['other'].pk}/").status_code == 404
    assert _client(world["hospital"]).get(f"/api/contracts/{world['ct'].pk}/").json()["interval_days"] == 14


def test_dispatch_creates_a_contract(world):
    hospital = HubeiHospitalFactory(name="New Hospital")
    response = _client(world["dispatcher"]).post(
        "/api/contracts/", {"hospital": hospital.pk, "modality": "DX", "interval_days": 7}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["operator"], body["hospital"], body["modality"], body["interval_days"], body["active"]) == (
        world["operator"].pk,
        hospital.pk,
        "DX",
        7,
        True,
    )
    assert body["starts_on"] == TODAY.isoformat()
    assert AuditEntry.objects.filter(action="service_contract.create", object_id=str(body["id"])).count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"interval_days": 0}, "interval_days"),
        ({"interval_days": 366}, "interval_days"),
        ({"modality": "XR"}, "modality"),
        ({"interval_days": "often"}, "interval_days"),
        ({"starts_on": "someday"}, "starts_on"),
    ],
)
def test_create_validation(world, payload, field):
    hospital = HubeiHospitalFactory()
    data = {"hospital": hospital.pk, "modality": "CT", "interval_days": 14, **payload}
    response = _client(world["dispatcher"]).post("/api/contracts/", data, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body.get("field") == field or field in body.get("errors", {})
    assert ServiceContract.objects.filter(hospital=hospital).count() == 0


def test_not_a_hospital(world):
    response = _client(world["dispatcher"]).post(
        "/api/contracts/",
        {"hospital": world["rival"].pk, "modality": "CT", "interval_days": 14},
        format="json",
    )
    assert response.status_code == 400
    assert "hospital" in response.json()["errors"]


def test_duplicate_is_a_conflict(world):
    before = ServiceContract.objects.count()
    response = _client(world["admin"]).post(
        "/api/contracts/", {"hospital": world["ours"].pk, "modality": "CT", "interval_days": 7}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "service_contract_exists"
    assert response.json()["contract"] == world["ct"].pk
    assert ServiceContract.objects.count() == before


def test_who_may_write(world):
    data = {"hospital": world["theirs"].pk, "modality": "MR", "interval_days": 10}
    for user in (world["hospital"], world["tech"]):
        assert _client(user).post("/api/contracts/", data, format="json").status_code == 403
    # Another operator's contract cannot be made in its name.
    foreign = {**data, "operator": world["rival"].pk}
    assert _client(world["dispatcher"]).post("/api/contracts/", foreign, format="json").status_code == 403
    url = f"/api/contracts/{world['ct'].pk}/"
    assert _client(world["hospital"]).patch(url, {"interval_days": 3}, format="json").status_code == 403
    assert _client(world["tech"]).patch(url, {"interval_days": 3}, format="json").status_code == 404
    rival = dispatcher(world["rival"])
    assert _client(rival).patch(url, {"interval_days": 3}, format="json").status_code == 404
    assert ServiceContract.objects.get(pk=world["ct"].pk).interval_days == 14
    assert not AuditEntry.objects.filter(action__startswith="service_contract.").exists()


def test_dispatch_changes_interval_and_deactivates(world):
    url = f"/api/contracts/{world['ct'].pk}/"
    client = _client(world["dispatcher"])
    response = client.patch(url, {"interval_days": 21}, format="json")
    assert response.status_code == 200 and response.json()["interval_days"] == 21
    assert client.patch(url, {"interval_days": 0}, format="json").status_code == 400
    assert client.patch(url, {}, format="json").status_code == 400
    response = client.patch(url, {"active": False}, format="json")
    assert response.json()["active"] is False
    contract = ServiceContract.objects.get(pk=world["ct"].pk)
    assert (contract.interval_days, contract.active) == (21, False)
    entries = AuditEntry.objects.filter(action="service_contract.update", object_id=str(contract.pk))
    assert entries.count() == 2
    # Same values again: nothing to record.
    client.patch(url, {"active": False, "interval_days": 21}, format="json")
    assert entries.count() == 2
    rows = client.get("/api/coverage/contracts/").json()
    assert [(r["hospital_name"], r["modality"]) for r in rows] == [("Ours Hospital", "MR")]


def test_coverage_contracts_endpoint(world):
    unit = UnitFactory(operator=world["operator"], modality="CT")
    VisitFactory(unit=unit, hospital=world["ours"], date=TODAY - datetime.timedelta(days=20), status="done")
    rows = _client(world["dispatcher"]).get(f"/api/coverage/contracts/?on={TODAY.isoformat()}").json()
    never = (TODAY - world["mr"].starts_on).days  # the MR contract was never served: due on its start
    assert [(r["contract_id"], r["days_overdue"], r["state"], r["will_be_late"]) for r in rows] == [
        (world["mr"].pk, never, "overdue", True),
        (world["ct"].pk, 6, "overdue", True),
    ]
    assert rows[1]["latitude"] == 30.6 and rows[1]["next_visit"] is None
    assert _client(world["hospital"]).get("/api/coverage/contracts/").status_code == 403
    assert _client(world["dispatcher"]).get("/api/coverage/contracts/?on=nope").status_code == 400
    # The overdue-only endpoint keeps its shape.
    overdue = _client(world["dispatcher"]).get("/api/coverage/").json()
    assert [r["contract_id"] for r in overdue] == [world["mr"].pk, world["ct"].pk]
    assert "state" not in overdue[0]
