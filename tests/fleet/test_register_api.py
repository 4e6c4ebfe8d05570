"""The register API: who may read and write, and what a unit's row says about it."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from fleet.choices import LicenceKind
from fleet.models import CrewCredential, EquipmentQC, Licence, MaintenanceWindow, Unit, UnitStatusChange
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import (
    PASSING_MEASUREMENTS,
    CrewMemberFactory,
    EquipmentQCFactory,
    UnitFactory,
    VisitFactory,
    license_unit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit():
    unit = UnitFactory(modality="CT", name="CT Van 7")
    license_unit(unit)
    Licence.objects.filter(unit=unit, kind=LicenceKind.RADIATION_SAFETY).update(
        expires_on=datetime.date(2020, 5, 1), number="RS-1"
    )
    return unit


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _as(unit, role):
    return _client(UserFactory(organisation=unit.operator, roles=[role]))


def test_unit_list_says_why_a_unit_cannot_go_out(unit, django_assert_num_queries):
    other = UnitFactory(operator=unit.operator, modality="MR", name="MRI Van 7")
    license_unit(other)
    EquipmentQCFactory(unit=other)
    UnitFactory(name="Elsewhere")  # another operator's unit
    client = _as(unit, "dispatcher")
    # Units, then their licences, maintenance windows and today's checks: 4, whatever the count.
    with django_assert_num_queries(4):
        response = client.get("/api/units/")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()}
    assert set(rows) == {"CT Van 7", "MRI Van 7"}
    ct = rows["CT Van 7"]
    assert ct["dispatchable"] is False
    assert ct["dispatch_blockers"] == ["Radiation safety licence RS-1: expired on 2020-05-01"]
    assert ct["qc_hold"] is True
    assert ct["qc_hold_reason"] == f"no daily QC on {timezone.localdate().isoformat()}"
    assert ct["qc_today"] is None
    mr = rows["MRI Van 7"]
    assert (mr["dispatchable"], mr["dispatch_blockers"], mr["qc_hold"], mr["qc_hold_reason"]) == (
        True,
        [],
        False,
        None,
    )
    assert mr["qc_today"]["result"] == "pass"


@pytest.mark.parametrize("role", ["hospital_user", "radiologist"])
def test_other_organisations_see_no_units(unit, role):
    org = HospitalFactory() if role == "hospital_user" else None
    user = UserFactory(organisation=org, roles=[role]) if org else UserFactory(roles=[role])
    client = _client(user)
    assert client.get("/api/units/").json() == []
    assert client.get(f"/api/units/{unit.pk}/").status_code == 404
    assert (
        client.post(f"/api/units/{unit.pk}/transition/", {"to": "maintenance", "reason": "x"}).status_code
        == 404
    )


def test_another_operators_dispatcher_gets_404_and_changes_nothing(unit):
    outsider = _client(UserFactory(organisation=UnitFactory().operator, roles=["dispatcher"]))
    assert outsider.get(f"/api/units/{unit.pk}/").status_code == 404
    assert (
        outsider.post(f"/api/units/{unit.pk}/transition/", {"to": "maintenance", "reason": "x"}).status_code
        == 404
    )
    assert (
        outsider.post(
            f"/api/units/{unit.pk}/licences/",
            {"kind": "institution", "number": "N", "issuer": "I", "expires_on": "2030-01-01"},
        ).status_code
        == 404
    )
    assert (
        outsider.post(
            f"/api/units/{unit.pk}/qc/", {"measurements": PASSING_MEASUREMENTS["CT"]}, format="json"
        ).status_code
        == 404
    )
    assert Unit.objects.get(pk=unit.pk).status == "available"
    assert Licence.objects.filter(unit=unit).count() == 4
    assert EquipmentQC.objects.count() == 0


def test_transition_api_refuses_dispatch_with_reasons_then_allows_maintenance(unit):
    client = _as(unit, "dispatcher")
    refused = client.post(f"/api/units/{unit.pk}/transition/", {"to": "en_route"})
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "Unit CT Van 7 cannot be dispatched: Radiation safety licence RS-1: expired on 2020-05-01",
        "code": "unit_not_dispatchable",
        "from": "available",
        "to": "en_route",
        "reasons": ["Radiation safety licence RS-1: expired on 2020-05-01"],
    }
    illegal = client.post(f"/api/units/{unit.pk}/transition/", {"to": "returning"})
    assert illegal.status_code == 409
    assert illegal.json()["allowed"] == ["en_route", "maintenance", "out_of_service"]
    assert UnitStatusChange.objects.count() == 0

    ok = client.post(f"/api/units/{unit.pk}/transition/", {"to": "maintenance", "reason": "licence renewal"})
    assert ok.status_code == 200
    assert ok.json()["status"] == "maintenance"
    history = client.get(f"/api/units/{unit.pk}/status-changes/").json()
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in history] == [
        ("available", "maintenance", "licence renewal")
    ]


def test_a_technologist_may_record_qc_but_not_write_the_register(unit):
    tech = _as(unit, "technologist")
    assert (
        tech.post(f"/api/units/{unit.pk}/transition/", {"to": "maintenance", "reason": "x"}).status_code
        == 403
    )
    assert (
        tech.post(
            f"/api/units/{unit.pk}/licences/",
            {"kind": "institution", "number": "N", "issuer": "I", "expires_on": "2030-01-01"},
        ).status_code
        == 403
    )

    failed = tech.post(
        f"/api/units/{unit.pk}/qc/",
        {"measurements": {"hu_mean": 0.5, "noise_sd": 7.2, "uniformity_hu": 2}, "result": "pass"},
        format="json",
    )
    assert failed.status_code == 201
    assert (failed.json()["result"], failed.json()["failures"]) == ("fail", ["noise 7.2 HU > 6"])
    row = tech.get(f"/api/units/{unit.pk}/").json()
    assert row["qc_hold"] is True and row["qc_hold_reason"].endswith(": noise 7.2 HU > 6")

    incomplete = tech.post(f"/api/units/{unit.pk}/qc/", {"measurements": {"hu_mean": 0}}, format="json")
    assert incomplete.status_code == 400
    assert EquipmentQC.objects.count() == 1
    assert (
        _as(unit, "dispatcher")
        .post(f"/api/units/{unit.pk}/qc/", {"measurements": PASSING_MEASUREMENTS["CT"]}, format="json")
        .status_code
        == 403
    )


def test_dispatcher_keeps_licences_windows_and_credentials(unit):
    client = _as(unit, "dispatcher")
    created = client.post(
        f"/api/units/{unit.pk}/licences/",
        {"kind": "radiation_safety", "number": "RS-2", "issuer": "EPB", "expires_on": "2031-01-01"},
    )
    assert created.status_code == 201
    assert client.get(f"/api/units/{unit.pk}/").json()["dispatchable"] is True
    assert len(client.get(f"/api/units/{unit.pk}/licences/").json()) == 5

    now = timezone.now()
    window = client.post(
        f"/api/units/{unit.pk}/maintenance-windows/",
        {
            "starts_at": now.isoformat(),
            "ends_at": (now + datetime.timedelta(hours=3)).isoformat(),
            "reason": "tube",
        },
    )
    assert window.status_code == 201
    assert MaintenanceWindow.objects.filter(unit=unit).count() == 1
    row = client.get(f"/api/units/{unit.pk}/").json()
    assert row["dispatchable"] is False and row["dispatch_blockers"][0].startswith("in a maintenance window")

    member = CrewMemberFactory(operator=unit.operator)
    credential = client.post(
        f"/api/crew/{member.pk}/credentials/",
        {"kind": "radiographer_certificate", "expires_on": "2030-01-01"},
    )
    assert credential.status_code == 201
    assert CrewCredential.objects.filter(crew_member=member).count() == 1
    assert len(client.get(f"/api/crew/{member.pk}/credentials/").json()) == 1
    stranger = CrewMemberFactory()
    assert client.get(f"/api/crew/{stranger.pk}/credentials/").status_code == 404

    visit = VisitFactory(unit=unit)
    assigned = client.put(f"/api/visits/{visit.pk}/crew/", {"crew": [member.pk]}, format="json")
    assert assigned.status_code == 200
    assert assigned.json() == {"crew": [member.pk], "problems": []}
    assert (
        client.put(f"/api/visits/{visit.pk}/crew/", {"crew": [stranger.pk]}, format="json").status_code == 400
    )
    assert list(visit.crew.all()) == [member]
