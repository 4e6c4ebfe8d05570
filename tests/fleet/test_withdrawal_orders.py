"""A withdrawn unit leaves no booked exam behind: each moves to another van of the operator visiting
the same hospital that day (when that van could take the booking) or is cancelled with the reason;
each is audited, and each hospital is told once per visit (or day) which exams, by accession."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from core.choices import Role
from core.models import AuditEntry
from dicom.choices import OrderStatus
from dicom.models import Order
from fleet.models import Licence, Visit
from fleet.services.withdrawal import unit_withdraw
from telerad.models import Notification
from tests.dicom.factories import HospitalFactory, OrderFactory, bookable
from tests.fleet.factories import OperatorFactory, UnitFactory, VisitFactory
from tests.fleet.map_factories import dispatcher, hospital_user
from tests.fleet.request_factories import ServiceRequestFactory

pytestmark = pytest.mark.django_db

WHY = "unit CT Leaving is withdrawn from service"


def _d(n: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=n)


@pytest.fixture
def world():
    """Operator North (vans Leaving and Staying) and operator South (one van); hospitals Zigui and
    Xingshan, each contracted with both operators for CT."""
    north, south = OperatorFactory(name="North Vans"), OperatorFactory(name="South Vans")
    leaving = UnitFactory(operator=north, modality="CT", name="CT Leaving")
    staying = UnitFactory(operator=north, modality="CT", name="CT Staying")
    south_van = UnitFactory(operator=south, modality="CT", name="South CT")
    zigui, xingshan = HospitalFactory(name="Zigui Hospital"), HospitalFactory(name="Xingshan Hospital")
    users = {"zigui": hospital_user(zigui), "xingshan": hospital_user(xingshan)}
    w = {
        "leaving": leaving,
        "staying": staying,
        "south_van": south_van,
        "zigui": zigui,
        "xingshan": xingshan,
        "users": users,
        "admin": dispatcher(north, role=Role.ADMIN),
        # Tomorrow at Zigui: Leaving and Staying (the replacement), and South's van.
        "leaving_zigui": bookable(leaving, zigui, _d(1)),
        "staying_zigui": bookable(staying, zigui, _d(1)),
        "south_zigui": bookable(south_van, zigui, _d(1)),
        # The day after at Xingshan: Leaving, and only South's van besides (another operator).
        "leaving_xingshan": bookable(leaving, xingshan, _d(2)),
        "south_xingshan": bookable(south_van, xingshan, _d(2)),
    }
    return w


def _order(w, unit, hospital, day, visit, **extra):
    return OrderFactory(
        unit=unit,
        hospital=hospital,
        scheduled_date=day,
        visit=visit,
        created_by=w["users"]["zigui" if hospital == w["zigui"] else "xingshan"],
        **extra,
    )


def test_booked_exams_move_to_the_operators_other_van_that_day_or_are_cancelled(world):
    w = world
    leaving = w["leaving"]
    zigui_orders = [_order(w, leaving, w["zigui"], _d(1), w["leaving_zigui"]) for _ in range(2)]
    xingshan_order = _order(w, leaving, w["xingshan"], _d(2), w["leaving_xingshan"])
    # Booked before the booking rules, no visit: cancelled, told per day.
    loose = _order(w, leaving, w["xingshan"], _d(3), None)
    # On a visit an earlier re-plan cancelled: no replacement that day either.
    dropped_visit = VisitFactory(unit=leaving, hospital=w["zigui"], date=_d(4), status="cancelled")
    dropped = _order(w, leaving, w["zigui"], _d(4), dropped_visit)
    # Not touched: yesterday's, an acquired one, and another van's.
    old = _order(w, leaving, w["zigui"], _d(-1), None)
    acquired = _order(w, leaving, w["zigui"], _d(1), w["leaving_zigui"], status=OrderStatus.ACQUIRED)
    south_order = _order(w, w["south_van"], w["zigui"], _d(1), w["south_zigui"])
    # A request scheduled on Leaving's Zigui visit: it goes back to dispatch and its exam with it.
    request = ServiceRequestFactory(
        hospital=w["zigui"],
        operator=leaving.operator,
        status="scheduled",
        visit=w["leaving_zigui"],
        created_by=w["users"]["zigui"],
    )
    request_order = _order(
        w, leaving, w["zigui"], _d(1), w["leaving_zigui"], client_request_id=f"SR{request.pk}-1"
    )
    Visit.objects.filter(pk=w["leaving_zigui"].pk).update(exams_booked=1)  # as scheduling counts it

    withdrawal = unit_withdraw(actor=w["admin"], unit=leaving, override_reason="sold")

    assert withdrawal.outcome == "overridden"
    state = {o.pk: (o.status, o.unit_id, o.visit_id) for o in Order.objects.all()}
    staying_visit = w["staying_zigui"]
    for order in zigui_orders:
        assert state[order.pk] == ("scheduled", w["staying"].pk, staying_visit.pk)
        assert Order.objects.get(pk=order.pk).accession_number == order.accession_number  # same exam
    assert state[xingshan_order.pk] == ("cancelled", leaving.pk, w["leaving_xingshan"].pk)
    assert state[loose.pk] == ("cancelled", leaving.pk, None)
    assert state[dropped.pk] == ("cancelled", leaving.pk, dropped_visit.pk)
    assert state[request_order.pk] == ("cancelled", leaving.pk, w["leaving_zigui"].pk)
    assert state[old.pk] == ("scheduled", leaving.pk, None)
    assert state[acquired.pk] == ("acquired", leaving.pk, w["leaving_zigui"].pk)
    assert state[south_order.pk] == ("scheduled", w["south_van"].pk, w["south_zigui"].pk)
    request.refresh_from_db()
    assert (request.status, request.visit_id) == ("submitted", None)
    assert not Order.objects.filter(unit=leaving, scheduled_date__gte=_d(0), status="scheduled").exists()

    # Audited per order, with the reason.
    moves = AuditEntry.objects.filter(action="order.move").order_by("id")
    assert [int(e.object_id) for e in moves] == [o.pk for o in zigui_orders]
    assert moves[0].details_data == {
        "from": {"unit": leaving.pk, "date": _d(1).isoformat(), "visit": w["leaving_zigui"].pk},
        "to": {"unit": w["staying"].pk, "date": _d(1).isoformat(), "visit": staying_visit.pk},
        "reason": WHY,
    }
    cancels = AuditEntry.objects.filter(action="order.cancel").order_by("id")
    assert sorted(int(e.object_id) for e in cancels) == sorted(
        [request_order.pk, xingshan_order.pk, loose.pk, dropped.pk]
    )
    assert all(e.details_data == {"reason": WHY} for e in cancels)
    entry = AuditEntry.objects.get(action="unit.withdraw")
    assert (entry.details_data["orders_moved"], entry.details_data["orders_cancelled"]) == (2, 3)

    # Told once per cancelled visit, and once per day for the rest; accession numbers, no patient.
    zigui_notices = list(
        Notification.objects.filter(recipient=w["users"]["zigui"])
        .order_by("id")
        .values_list("kind", "message")
    )
    moved = ", ".join(o.accession_number for o in zigui_orders)
    assert zigui_notices == [
        (
            "visit.cancelled",
            f"The CT visit on {_d(1):%a %d %b %Y} by CT Leaving is cancelled: the unit is withdrawn from "
            "service. Requests booked on it are back with dispatch to plan again. "
            f"2 booked exam(s) ({moved}) moved to CT Staying, which visits you the same day.",
        ),
        (
            "visit.cancelled",
            f"CT Leaving is withdrawn from service. Exams booked on it for {_d(4):%a %d %b %Y}: "
            f"1 booked exam(s) ({dropped.accession_number}) are cancelled: no other van can take them "
            "that day; book them again on another visit.",
        ),
    ]
    xingshan_notices = list(
        Notification.objects.filter(recipient=w["users"]["xingshan"])
        .order_by("id")
        .values_list("message", flat=True)
    )
    assert len(xingshan_notices) == 2
    assert f"1 booked exam(s) ({xingshan_order.accession_number}) are cancelled" in xingshan_notices[0]
    assert xingshan_notices[1].startswith(
        f"CT Leaving is withdrawn from service. Exams booked on it for {_d(3):%a %d %b %Y}: "
    )
    assert loose.accession_number in xingshan_notices[1]
    for message in [*xingshan_notices, *(m for _, m in zigui_notices)]:
        assert "ZHANG" not in message and "P0" not in message


def test_a_replacement_that_could_not_take_the_booking_is_not_used(world):
    w = world
    order = _order(w, w["leaving"], w["zigui"], _d(1), w["leaving_zigui"])
    # Staying's licence lapses today: it cannot serve tomorrow's visit, so the exam is cancelled.
    Licence.objects.filter(unit=w["staying"], kind="institution").update(expires_on=_d(0))

    unit_withdraw(actor=w["admin"], unit=w["leaving"], override_reason="sold")

    order.refresh_from_db()
    assert (order.status, order.unit_id) == ("cancelled", w["leaving"].pk)
    assert not AuditEntry.objects.filter(action="order.move").exists()
    [notice] = Notification.objects.filter(recipient=w["users"]["zigui"])
    assert f"({order.accession_number}) are cancelled" in notice.message


def test_without_booked_exams_the_notice_is_unchanged(world):
    w = world
    unit_withdraw(actor=w["admin"], unit=w["leaving"], override_reason="sold")
    messages = sorted(Notification.objects.values_list("message", flat=True))
    assert messages == sorted(
        f"The CT visit on {day:%a %d %b %Y} by CT Leaving is cancelled: the unit is withdrawn from service. "
        "Requests booked on it are back with dispatch to plan again."
        for day in (_d(1), _d(2))
    )
    assert Visit.objects.filter(unit=w["leaving"], status="cancelled").count() == 2
    assert not AuditEntry.objects.filter(action__in=["order.move", "order.cancel"]).exists()
