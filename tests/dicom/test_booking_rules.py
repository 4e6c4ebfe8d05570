"""Booking rules: a hospital books only on its own visit, that day, of a contracted unit that can
serve it (not withdrawn, licensed that day, not on QC hold today). Two operators, two hospitals;
every refusal has its code and leaves nothing behind."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.exceptions import Conflict, InvalidInput
from core.models import AuditEntry
from dicom.models import Order
from dicom.services.orders import order_create
from fleet.choices import EquipmentQCResult, UnitStatus
from fleet.models import Licence, ServiceContract, Unit, Visit
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, bookable
from tests.fleet.factories import EquipmentQCFactory, OperatorFactory, UnitFactory, VisitFactory

pytestmark = pytest.mark.django_db

ORDERS_URL = "/api/dicom/orders/"


def _today() -> datetime.date:
    return timezone.localdate()


def _d(n: int) -> datetime.date:
    return _today() + datetime.timedelta(days=n)


@pytest.fixture
def world():
    """Operators North and South, hospitals Zigui and Xingshan. Zigui is contracted with North
    for CT; Xingshan with South. Each unit visits tomorrow; South's van also calls at Zigui."""
    north, south = OperatorFactory(name="North Vans"), OperatorFactory(name="South Vans")
    zigui, xingshan = HospitalFactory(name="Zigui Hospital"), HospitalFactory(name="Xingshan Hospital")
    n1 = UnitFactory(operator=north, modality="CT", name="North CT 1")
    n2 = UnitFactory(operator=north, modality="CT", name="North CT 2")
    s1 = UnitFactory(operator=south, modality="CT", name="South CT 1")
    visits = {
        "n1_zigui": bookable(n1, zigui, _d(1)),
        "n2_zigui": bookable(n2, zigui, _d(1)),
        "n1_xingshan": bookable(n1, xingshan, _d(2)),  # Xingshan is contracted with North too
        "s1_xingshan": bookable(s1, xingshan, _d(1)),
    }
    # South's van calls at Zigui tomorrow, though Zigui has no contract with South.
    visits["s1_zigui"] = VisitFactory(unit=s1, hospital=zigui, date=_d(1))
    return {
        "zigui": zigui,
        "xingshan": xingshan,
        "n1": n1,
        "n2": n2,
        "s1": s1,
        "booker": UserFactory(organisation=zigui, roles=["hospital_user"]),
        "other_booker": UserFactory(organisation=xingshan, roles=["hospital_user"]),
        **visits,
    }


def _exam(**overrides):
    values = {
        "requested_procedure": "CT HEAD W/O CONTRAST",
        "modality": "CT",
        "body_part": "HEAD",
        "priority": "ROUTINE",
        "patient_id": "ZG-0042",
        "patient_name": "ZHANG^SAN",
        "patient_sex": "M",
        "patient_birth_date": "1961-03-14",
    }
    values.update(overrides)
    return values


def _post(user, body):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(ORDERS_URL, body, format="json")


def _book(world, unit, day, visit=None):
    exam = _exam()
    exam["patient_birth_date"] = datetime.date(1961, 3, 14)
    return order_create(
        actor=world["booker"], hospital=world["zigui"], unit=unit, scheduled_date=day, visit=visit, **exam
    )


def _nothing_booked(visits_before):
    assert Order.objects.count() == 0
    assert not AuditEntry.objects.filter(action="order.create").exists()
    assert sorted(Visit.objects.values_list("pk", "status")) == visits_before


def _visits():
    return sorted(Visit.objects.values_list("pk", "status"))


# --- success -------------------------------------------------------------------------------------


def test_api_books_on_the_visit_named_in_the_body(world):
    visit = world["n2_zigui"]
    response = _post(world["booker"], {"visit": visit.pk, **_exam()})

    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get()
    assert (body["visit"], body["unit"], body["scheduled_date"]) == (
        visit.pk,
        world["n2"].pk,
        _d(1).isoformat(),
    )
    assert (order.visit, order.unit, order.scheduled_date, order.hospital) == (
        visit,
        world["n2"],
        _d(1),
        world["zigui"],
    )
    entry = AuditEntry.objects.get(action="order.create")
    assert (entry.details_data["visit"], entry.details_data["unit"]) == (visit.pk, world["n2"].pk)


def test_api_books_on_the_units_visit_that_day_when_no_visit_is_named(world):
    response = _post(
        world["booker"], {"unit": world["n1"].pk, "scheduled_date": _d(1).isoformat(), **_exam()}
    )

    assert response.status_code == 201, response.json()
    assert response.json()["visit"] == world["n1_zigui"].pk
    assert Order.objects.get().visit == world["n1_zigui"]


def test_an_en_route_or_on_site_visit_still_takes_bookings_today(world):
    visit = bookable(world["n1"], world["zigui"], _today(), status="on_site")
    assert _book(world, world["n1"], _today()).visit == visit


def test_a_missing_qc_today_and_a_failed_qc_yesterday_do_not_block(world):
    # No check yet today: not known yet, like tomorrow's (order_start still waits for a pass).
    visit = bookable(world["n1"], world["zigui"], _today())
    EquipmentQCFactory(
        unit=world["n1"],
        performed_at=timezone.now() - datetime.timedelta(days=1),
        result=EquipmentQCResult.FAIL,
        failures=["noise 9.0 HU > 6.0 HU"],
    )
    assert _book(world, world["n1"], _today()).visit == visit


def test_a_failed_qc_today_does_not_block_tomorrows_booking(world):
    EquipmentQCFactory(unit=world["n1"], result=EquipmentQCResult.FAIL, failures=["noise 9.0 HU > 6.0 HU"])
    assert _book(world, world["n1"], _d(1)).visit == world["n1_zigui"]


def test_a_licence_valid_today_but_expired_by_the_visit_day_blocks_only_that_visit(world):
    Licence.objects.filter(unit=world["n1"], kind="radiation_safety").update(expires_on=_today())
    today_visit = bookable(world["n1"], world["zigui"], _today())
    assert _book(world, world["n1"], _today()).visit == today_visit
    with pytest.raises(Conflict) as refused:
        _book(world, world["n1"], _d(1))
    assert refused.value.code == "unit_unlicensed"
    assert refused.value.extra["reasons"][0].endswith(f"expired on {_today().isoformat()}")
    assert Order.objects.count() == 1


# --- refusals ------------------------------------------------------------------------------------


def _cancel(visit):
    Visit.objects.filter(pk=visit.pk).update(status="cancelled")


def _withdraw(unit):
    Unit.objects.filter(pk=unit.pk).update(status=UnitStatus.WITHDRAWN)


# name -> (set-up, body builder, status, code)
REFUSALS = {
    "another operator's van, no contract": (
        None,
        lambda w: {"visit": w["s1_zigui"].pk},
        400,
        "no_contract",
    ),
    "another operator's van by unit and date": (
        None,
        lambda w: {"unit": w["s1"].pk, "scheduled_date": _d(1).isoformat()},
        400,
        "no_contract",
    ),
    "contract deactivated": (
        lambda w: ServiceContract.objects.filter(hospital=w["zigui"]).update(active=False),
        lambda w: {"visit": w["n1_zigui"].pk},
        400,
        "no_contract",
    ),
    "no visit that day": (
        None,
        lambda w: {"unit": w["n1"].pk, "scheduled_date": _d(3).isoformat()},
        400,
        "no_visit",
    ),
    "visit at another hospital": (
        None,
        lambda w: {"visit": w["n1_xingshan"].pk},
        400,
        "visit_not_at_hospital",
    ),
    "unknown visit id (same answer as another hospital's)": (
        None,
        lambda w: {"visit": 999999},
        400,
        "visit_not_at_hospital",
    ),
    "visit on another date": (
        None,
        lambda w: {"visit": w["n1_zigui"].pk, "scheduled_date": _d(2).isoformat()},
        400,
        "visit_other_date",
    ),
    "visit of another unit": (
        None,
        lambda w: {"visit": w["n1_zigui"].pk, "unit": w["n2"].pk},
        400,
        "visit_other_unit",
    ),
    "neither visit nor unit and date": (
        None,
        lambda w: {"unit": w["n1"].pk},
        400,
        "visit_required",
    ),
    "cancelled visit named": (
        lambda w: _cancel(w["n1_zigui"]),
        lambda w: {"visit": w["n1_zigui"].pk},
        409,
        "visit_cancelled",
    ),
    "cancelled visit found by unit and date": (
        lambda w: _cancel(w["n1_zigui"]),
        lambda w: {"unit": w["n1"].pk, "scheduled_date": _d(1).isoformat()},
        409,
        "visit_cancelled",
    ),
    "withdrawn unit": (
        lambda w: _withdraw(w["n1"]),
        lambda w: {"visit": w["n1_zigui"].pk},
        409,
        "unit_withdrawn",
    ),
    "expired licence": (
        lambda w: Licence.objects.filter(unit=w["n1"], kind="institution").update(expires_on=_today()),
        lambda w: {"visit": w["n1_zigui"].pk},
        409,
        "unit_unlicensed",
    ),
    "missing licence": (
        lambda w: Licence.objects.filter(unit=w["n1"], kind="vehicle_registration").delete(),
        lambda w: {"visit": w["n1_zigui"].pk},
        409,
        "unit_unlicensed",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_api_refusals_have_their_code_and_book_nothing(world, case):
    set_up, body, status, code = REFUSALS[case]
    if set_up is not None:
        set_up(world)
    before = _visits()

    response = _post(world["booker"], {**body(world), **_exam()})

    assert response.status_code == status, response.json()
    assert response.json()["code"] == code
    assert response.json()["detail"]
    _nothing_booked(before)


def test_qc_hold_today_is_refused_with_the_failed_check(world):
    visit = bookable(world["n1"], world["zigui"], _today())
    EquipmentQCFactory(unit=world["n1"], result=EquipmentQCResult.FAIL, failures=["noise 9.0 HU > 6.0 HU"])
    before = _visits()

    response = _post(world["booker"], {"visit": visit.pk, **_exam()})

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "unit_qc_hold"
    assert body["reasons"] == [body["reasons"][0]] and body["reasons"][0].endswith("noise 9.0 HU > 6.0 HU")
    _nothing_booked(before)


def test_a_passing_recheck_lifts_the_qc_hold(world):
    visit = bookable(world["n1"], world["zigui"], _today())
    now = timezone.now()
    EquipmentQCFactory(
        unit=world["n1"],
        performed_at=now - datetime.timedelta(minutes=30),
        result=EquipmentQCResult.FAIL,
        failures=["noise 9.0 HU > 6.0 HU"],
    )
    EquipmentQCFactory(unit=world["n1"], performed_at=now)
    assert _book(world, world["n1"], _today()).visit == visit


def test_a_visit_that_is_over_is_refused(world):
    visit = bookable(world["n1"], world["zigui"], _today(), status="done")
    before = _visits()
    with pytest.raises(Conflict) as refused:
        _book(world, world["n1"], _today(), visit=visit)
    assert refused.value.code == "visit_over"
    _nothing_booked(before)


@pytest.mark.parametrize(
    ("visit_key", "unit_key", "day", "code"),
    [
        ("n1_xingshan", "n1", 2, "visit_not_at_hospital"),
        ("n1_zigui", "n1", 2, "visit_other_date"),
        ("n1_zigui", "n2", 1, "visit_other_unit"),
        ("s1_zigui", "s1", 1, "no_contract"),
    ],
)
def test_the_service_refuses_a_mismatched_visit(world, visit_key, unit_key, day, code):
    before = _visits()
    with pytest.raises(InvalidInput) as refused:
        _book(world, world[unit_key], _d(day), visit=world[visit_key])
    assert (refused.value.code, refused.value.status_code) == (code, 400)
    _nothing_booked(before)


def test_the_other_hospital_books_on_its_own_contracted_operator(world):
    # Xingshan is contracted with South and North: both vans' visits there take its bookings.
    ServiceContract.objects.create(
        operator=world["s1"].operator,
        hospital=world["zigui"],
        modality="MR",
        interval_days=14,
        starts_on=_today(),
    )  # an MR contract does not cover a CT van
    assert _post(world["booker"], {"visit": world["s1_zigui"].pk, **_exam()}).json()["code"] == "no_contract"
    for visit in (world["s1_xingshan"], world["n1_xingshan"]):
        response = _post(world["other_booker"], {"visit": visit.pk, **_exam()})
        assert response.status_code == 201, response.json()
    assert sorted(Order.objects.values_list("hospital_id", "visit_id")) == sorted(
        [(world["xingshan"].pk, world["s1_xingshan"].pk), (world["xingshan"].pk, world["n1_xingshan"].pk)]
    )


def test_a_dispatcher_naming_a_visit_is_still_403(world):
    dispatcher = UserFactory(organisation=world["n1"].operator, roles=["dispatcher"])
    body = {"visit": world["n1_zigui"].pk, "hospital": world["zigui"].pk, **_exam()}
    response = _post(dispatcher, body)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert Order.objects.count() == 0
