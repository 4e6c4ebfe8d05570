"""Daily phantom QC: computed results, tolerances, and the QC hold on the worklist and order start."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.services.orders import order_mark_acquired, order_mark_in_progress, order_start
from fleet.equipment_qc import DEFAULT_QC_TOLERANCES, qc_evaluate, qc_tolerances
from fleet.models import EquipmentQC
from fleet.selectors import unit_qc_hold_reason
from fleet.services import equipment_qc_record
from tests.core.factories import UserFactory
from tests.dicom.factories import OrderFactory
from tests.fleet.factories import PASSING_MEASUREMENTS, EquipmentQCFactory, UnitFactory, qc_pass_today

pytestmark = pytest.mark.django_db

WORKLIST_URL = "/api/dicom/orthanc/worklist/"
SECRET = "worklist-test-secret-0123456789"


# --- evaluation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "measurements", "failures"),
    [
        ("CT", {"hu_mean": 0.8, "noise_sd": 4.9, "uniformity_hu": 2.1}, []),
        ("CT", {"hu_mean": -4, "noise_sd": 6, "uniformity_hu": 5}, []),  # limits are inclusive
        ("CT", {"hu_mean": 0.5, "noise_sd": 7.2, "uniformity_hu": 2}, ["noise 7.2 HU > 6"]),
        (
            "CT",
            {"hu_mean": -4.6, "noise_sd": 5, "uniformity_hu": 5.5},
            ["water HU mean -4.6 HU outside 0±4", "uniformity 5.5 HU > 5"],
        ),
        ("MR", {"snr": 50, "piu_percent": 80}, []),
        ("MR", {"snr": 42.5, "piu_percent": 78}, ["SNR 42.5 < 50", "uniformity (PIU) 78 % < 80"]),
        ("DX", {"dead_pixels": 100, "uniformity_deviation_percent": 5}, []),
        (
            "DX",
            {"dead_pixels": 140, "uniformity_deviation_percent": 6.1},
            ["dead pixels 140 > 100", "uniformity deviation 6.1 % > 5"],
        ),
    ],
)
def test_evaluation_against_default_tolerances(modality, measurements, failures):
    assert qc_evaluate(modality, measurements) == (failures, DEFAULT_QC_TOLERANCES[modality])


def test_a_setting_overrides_one_tolerance(settings):
    settings.FLEET_QC_TOLERANCES = {"MR": {"snr_min": 60}}
    assert qc_tolerances("MR") == {"snr_min": 60, "piu_percent_min": 80.0}
    assert qc_evaluate("MR", {"snr": 55, "piu_percent": 90})[0] == ["SNR 55 < 60"]
    assert qc_tolerances("CT") == DEFAULT_QC_TOLERANCES["CT"]


@pytest.mark.parametrize(
    ("measurements", "message"),
    [
        ({"hu_mean": 0, "noise_sd": 5}, "needs measurements: uniformity_hu"),
        (
            {"hu_mean": 0, "noise_sd": 5, "uniformity_hu": 1, "result": "pass"},
            "Unknown measurements for CT: result",
        ),
        ({"hu_mean": "0", "noise_sd": 5, "uniformity_hu": 1}, "measurements.hu_mean must be a number"),
        ({"hu_mean": True, "noise_sd": 5, "uniformity_hu": 1}, "measurements.hu_mean must be a number"),
        (
            {"hu_mean": float("nan"), "noise_sd": 5, "uniformity_hu": 1},
            "measurements.hu_mean must be a number",
        ),
        ([1, 2, 3], "measurements must be an object"),
    ],
)
def test_incomplete_or_bad_measurements_are_refused_and_nothing_is_stored(measurements, message):
    unit = UnitFactory(modality="CT")
    with pytest.raises(InvalidInput, match=message):
        equipment_qc_record(actor=None, unit=unit, measurements=measurements)
    assert EquipmentQC.objects.count() == 0
    assert AuditEntry.objects.count() == 0


# --- recording and the hold ------------------------------------------------------------------------


def test_a_failed_check_holds_the_unit_and_a_passing_recheck_lifts_it():
    unit = UnitFactory(modality="CT")
    tech = UserFactory(organisation=unit.operator, roles=["technologist"])
    today = timezone.localdate()
    assert unit_qc_hold_reason(unit) == f"no daily QC on {today.isoformat()}"

    failed = equipment_qc_record(
        actor=tech, unit=unit, measurements={"hu_mean": 0.5, "noise_sd": 7.2, "uniformity_hu": 2}
    )
    assert (failed.result, failed.failures, failed.day, failed.performed_by) == (
        "fail",
        ["noise 7.2 HU > 6"],
        today,
        tech,
    )
    reason = unit_qc_hold_reason(unit)
    assert (
        reason is not None
        and reason.startswith("daily QC failed at ")
        and reason.endswith(": noise 7.2 HU > 6")
    )
    entry = AuditEntry.objects.get(action="equipment_qc.record")
    assert entry.details_data == {
        "unit": unit.pk,
        "day": today.isoformat(),
        "result": "fail",
        "failures": ["noise 7.2 HU > 6"],
    }

    passed = equipment_qc_record(actor=tech, unit=unit, measurements=dict(PASSING_MEASUREMENTS["CT"]))
    assert (passed.result, passed.failures) == ("pass", [])
    assert unit_qc_hold_reason(unit) is None


def test_yesterdays_pass_does_not_count_today():
    unit = UnitFactory(modality="MR")
    yesterday = timezone.now() - datetime.timedelta(days=1)
    EquipmentQCFactory(unit=unit, performed_at=yesterday)
    assert unit_qc_hold_reason(unit) == f"no daily QC on {timezone.localdate().isoformat()}"


def test_only_the_operators_technologists_qc_officers_and_admins_record_qc():
    unit = UnitFactory(modality="DX")
    for user in (
        UserFactory(organisation=unit.operator, roles=["dispatcher"]),
        UserFactory(roles=["technologist"]),  # another organisation
    ):
        with pytest.raises(AccessDenied):
            equipment_qc_record(actor=user, unit=unit, measurements=dict(PASSING_MEASUREMENTS["DX"]))
    assert EquipmentQC.objects.count() == 0


def test_performed_at_in_the_future_or_days_ago_is_refused():
    unit = UnitFactory(modality="CT")
    for when in (timezone.now() + datetime.timedelta(hours=1), timezone.now() - datetime.timedelta(days=2)):
        with pytest.raises(InvalidInput, match="performed_at"):
            equipment_qc_record(
                actor=None, unit=unit, measurements=dict(PASSING_MEASUREMENTS["CT"]), performed_at=when
            )
    assert EquipmentQC.objects.count() == 0


# --- the Modality Worklist (the view Orthanc's plugin calls) -----------------------------------------


@pytest.fixture
def plugin_client(settings):
    settings.ORTHANC_PLUGIN_SECRET = SECRET
    client = APIClient()
    client.credentials(HTTP_X_CARAVAN_PLUGIN_SECRET=SECRET)
    return client


def _worklist(client, aet):
    response = client.get(WORKLIST_URL, {"aet": aet})
    assert response.status_code == 200
    return [item["AccessionNumber"] for item in response.json()["items"]]


def test_the_worklist_is_empty_without_todays_qc_and_served_after_it_passes(plugin_client):
    unit = UnitFactory(modality="CT", ae_title="QCVAN01")
    order = OrderFactory(unit=unit, scheduled_date=timezone.localdate())

    assert _worklist(plugin_client, "QCVAN01") == []
    entry = AuditEntry.objects.filter(action="orthanc.worklist").latest("id")
    assert (entry.patient_data, entry.details_data["orders"]) == (False, [])

    EquipmentQCFactory(unit=unit, result="fail", failures=["noise 7.2 HU > 6"])
    assert _worklist(plugin_client, "QCVAN01") == []

    qc_pass_today(unit)
    assert _worklist(plugin_client, "QCVAN01") == [order.accession_number]
    # Another unit's passing check lifts nothing for this one.
    other = UnitFactory(modality="CT", ae_title="QCVAN02")
    OrderFactory(unit=other, scheduled_date=timezone.localdate())
    assert _worklist(plugin_client, "QCVAN02") == []


def test_a_later_failed_check_empties_the_worklist_again(plugin_client):
    unit = UnitFactory(modality="CT", ae_title="QCVAN03")
    OrderFactory(unit=unit, scheduled_date=timezone.localdate())
    EquipmentQCFactory(unit=unit, performed_at=timezone.now() - datetime.timedelta(minutes=30))
    assert len(_worklist(plugin_client, "QCVAN03")) == 1
    EquipmentQCFactory(unit=unit, result="fail", failures=["uniformity 6 HU > 5"])
    assert _worklist(plugin_client, "QCVAN03") == []


# --- starting an exam --------------------------------------------------------------------------------


@pytest.fixture
def booked():
    unit = UnitFactory(modality="CT")
    tech = UserFactory(organisation=unit.operator, roles=["technologist"])
    order = OrderFactory(unit=unit, scheduled_date=timezone.localdate())
    return unit, tech, order


def test_order_start_is_refused_on_qc_hold_naming_why(booked):
    unit, tech, order = booked
    with pytest.raises(Conflict, match=r"is on QC hold: no daily QC on ") as refused:
        order_start(actor=tech, order=order)
    assert refused.value.code == "unit_qc_hold"

    equipment_qc_record(
        actor=tech, unit=unit, measurements={"hu_mean": 0.5, "noise_sd": 7.2, "uniformity_hu": 2}
    )
    with pytest.raises(Conflict, match=r"is on QC hold: daily QC failed at \d\d:\d\d: noise 7.2 HU > 6$"):
        order_start(actor=tech, order=order)
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED
    assert not AuditEntry.objects.filter(action="order.start").exists()


def test_order_start_after_a_passing_check(booked):
    unit, tech, order = booked
    qc_pass_today(unit)
    assert order_start(actor=tech, order=order).status == OrderStatus.IN_PROGRESS
    entry = AuditEntry.objects.get(action="order.start")
    assert (entry.actor_id, entry.object_id, entry.patient_data) == (tech.pk, str(order.pk), True)
    with pytest.raises(Conflict, match="only scheduled orders can be started"):
        order_start(actor=tech, order=order)


def test_order_start_needs_the_visits_crew_rule(booked):
    from tests.fleet.factories import CrewCredentialFactory, CrewMemberFactory, VisitFactory

    unit, tech, order = booked
    qc_pass_today(unit)
    visit = VisitFactory(unit=unit, hospital=order.hospital, date=order.scheduled_date)
    with pytest.raises(
        Conflict, match="lacks its required crew: CT visit needs .* \\(no crew assigned\\)"
    ) as refused:
        order_start(actor=tech, order=order)
    assert refused.value.code == "visit_crew_missing"
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED

    radiographer = CrewMemberFactory(operator=unit.operator, role="radiographer", unit=unit)
    CrewCredentialFactory(crew_member=radiographer, kind="radiographer_certificate")
    visit.crew.add(radiographer)
    assert order_start(actor=tech, order=order).status == OrderStatus.IN_PROGRESS


def test_order_start_is_for_the_operators_technologists(booked):
    unit, _, order = booked
    qc_pass_today(unit)
    for user in (
        UserFactory(organisation=unit.operator, roles=["dispatcher"]),
        UserFactory(organisation=order.hospital, roles=["hospital_user"]),
        UserFactory(roles=["technologist"]),
    ):
        with pytest.raises(AccessDenied):
            order_start(actor=user, order=order)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED


def test_images_arriving_during_a_qc_hold_are_still_ingested(booked):
    unit, _, order = booked
    assert unit_qc_hold_reason(unit) is not None
    assert order_mark_in_progress(order=order).status == OrderStatus.IN_PROGRESS
    assert order_mark_acquired(order=order).status == OrderStatus.ACQUIRED


def test_order_start_api(booked):
    unit, tech, order = booked
    client = APIClient()
    client.force_authenticate(tech)
    url = f"/api/dicom/orders/{order.pk}/start/"
    refused = client.post(url)
    assert refused.status_code == 409
    assert refused.json()["code"] == "unit_qc_hold"
    assert refused.json()["reasons"] == [f"no daily QC on {timezone.localdate().isoformat()}"]
    qc_pass_today(unit)
    started = client.post(url)
    assert started.status_code == 200
    assert started.json()["status"] == "in_progress"
