"""The unit status state machine: legal moves audited, illegal ones refused with nothing changed."""

from __future__ import annotations

import pytest

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry
from fleet.choices import UnitStatus
from fleet.models import Unit, UnitStatusChange
from fleet.services import unit_transition
from fleet.services.units import TRANSITIONS
from tests.core.factories import UserFactory
from tests.fleet.factories import EquipmentQCFactory, MaintenanceWindowFactory, UnitFactory, license_unit

pytestmark = pytest.mark.django_db
S = UnitStatus


@pytest.fixture
def unit():
    unit = UnitFactory(modality="CT")
    license_unit(unit)
    EquipmentQCFactory(unit=unit)
    return unit


@pytest.fixture
def dispatcher(unit):
    return UserFactory(organisation=unit.operator, roles=["dispatcher"])


def _snapshot(unit: Unit):
    unit.refresh_from_db()
    return (
        unit.status,
        unit.status_changed_at,
        UnitStatusChange.objects.count(),
        AuditEntry.objects.filter(action="unit.transition").count(),
    )


def test_a_working_day_round_trip_is_recorded_step_by_step(unit, dispatcher):
    steps = [
        (S.EN_ROUTE, dispatcher, "to Zigui"),
        (S.ON_SITE, None, "geofence arrival at Zigui County People's Hospital"),
        (S.SCANNING, dispatcher, ""),
        (S.RETURNING, None, "geofence departure"),
        (S.AVAILABLE, dispatcher, "back at depot"),
    ]
    for to, actor, reason in steps:
        assert unit_transition(unit=unit, to_status=to, actor=actor, reason=reason).status == to

    unit.refresh_from_db()
    assert unit.status == S.AVAILABLE and unit.status_changed_at is not None
    changes = list(UnitStatusChange.objects.filter(unit=unit).order_by("id"))
    assert [(c.from_status, c.to_status, c.actor, c.reason) for c in changes] == [
        (S.AVAILABLE, S.EN_ROUTE, dispatcher, "to Zigui"),
        (S.EN_ROUTE, S.ON_SITE, None, "geofence arrival at Zigui County People's Hospital"),
        (S.ON_SITE, S.SCANNING, dispatcher, ""),
        (S.SCANNING, S.RETURNING, None, "geofence departure"),
        (S.RETURNING, S.AVAILABLE, dispatcher, "back at depot"),
    ]
    entries = list(AuditEntry.objects.filter(action="unit.transition").order_by("id"))
    assert [(e.object_id, e.actor_username, e.actor_role) for e in entries] == [
        (str(unit.pk), dispatcher.username, "dispatcher"),
        (str(unit.pk), "", "system"),
        (str(unit.pk), dispatcher.username, "dispatcher"),
        (str(unit.pk), "", "system"),
        (str(unit.pk), dispatcher.username, "dispatcher"),
    ]
    assert entries[0].details_data == {
        "from": "available",
        "to": "en_route",
        "reason": "to Zigui",
        "change": changes[0].pk,
    }


ILLEGAL = [(src, dst) for src in S.values for dst in S.values if dst not in TRANSITIONS[src]]


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_illegal_transitions_are_refused_and_change_nothing(unit, dispatcher, src, dst):
    Unit.objects.filter(pk=unit.pk).update(status=src)
    before = _snapshot(unit)
    with pytest.raises(Conflict) as refused:
        unit_transition(unit=unit, to_status=dst, actor=dispatcher, reason="try")
    assert refused.value.code == "unit_transition_refused"
    assert refused.value.extra == {"from": src, "to": dst, "allowed": list(TRANSITIONS[src])}
    assert f"from {S(src).label.lower()} to {S(dst).label.lower()}" in refused.value.message
    assert _snapshot(unit) == before


def test_the_legal_graph_is_the_documented_one():
    assert TRANSITIONS == {
        S.AVAILABLE: (S.EN_ROUTE, S.MAINTENANCE, S.OUT_OF_SERVICE),
        S.EN_ROUTE: (S.ON_SITE, S.OUT_OF_SERVICE),
        S.ON_SITE: (S.SCANNING, S.RETURNING, S.OUT_OF_SERVICE),
        S.SCANNING: (S.RETURNING, S.OUT_OF_SERVICE),
        S.RETURNING: (S.AVAILABLE, S.OUT_OF_SERVICE),
        S.MAINTENANCE: (S.AVAILABLE, S.OUT_OF_SERVICE),
        S.OUT_OF_SERVICE: (S.AVAILABLE,),
        S.WITHDRAWN: (),  # terminal; entered only by the withdrawal service
    }
    # A breakdown can happen anywhere in the fleet.
    assert all(
        S.OUT_OF_SERVICE in targets
        for src, targets in TRANSITIONS.items()
        if src not in (S.OUT_OF_SERVICE, S.WITHDRAWN)
    )
    assert not any(S.WITHDRAWN in targets for targets in TRANSITIONS.values())


def test_breakdown_then_repair(unit, dispatcher):
    unit_transition(unit=unit, to_status=S.EN_ROUTE, actor=dispatcher)
    unit_transition(unit=unit, to_status=S.OUT_OF_SERVICE, actor=None, reason="engine failure on G42")
    unit_transition(unit=unit, to_status=S.AVAILABLE, actor=dispatcher, reason="repaired")
    assert list(UnitStatusChange.objects.order_by("id").values_list("to_status", flat=True)) == [
        S.EN_ROUTE,
        S.OUT_OF_SERVICE,
        S.AVAILABLE,
    ]


def test_taking_a_unit_off_the_road_needs_a_reason(unit, dispatcher):
    before = _snapshot(unit)
    with pytest.raises(InvalidInput, match="reason is required"):
        unit_transition(unit=unit, to_status=S.MAINTENANCE, actor=dispatcher, reason="  ")
    assert _snapshot(unit) == before


def test_dispatch_is_refused_in_a_maintenance_window_with_the_reason(unit, dispatcher):
    MaintenanceWindowFactory(unit=unit, reason="annual tube inspection")
    before = _snapshot(unit)
    with pytest.raises(Conflict) as refused:
        unit_transition(unit=unit, to_status=S.EN_ROUTE, actor=dispatcher)
    assert refused.value.code == "unit_not_dispatchable"
    assert "in a maintenance window until" in refused.value.message
    assert refused.value.message.endswith(": annual tube inspection")
    assert _snapshot(unit) == before
    # Maintenance itself is still reachable.
    assert (
        unit_transition(unit=unit, to_status=S.MAINTENANCE, actor=dispatcher, reason="tube").status
        == S.MAINTENANCE
    )


def test_scanning_is_refused_on_qc_hold(dispatcher):
    unit = UnitFactory(operator=dispatcher.organisation, status=S.ON_SITE)
    before = _snapshot(unit)
    with pytest.raises(Conflict, match=r"on QC hold: no daily QC on \d{4}-\d\d-\d\d") as refused:
        unit_transition(unit=unit, to_status=S.SCANNING, actor=dispatcher)
    assert refused.value.code == "unit_qc_hold"
    assert _snapshot(unit) == before


def test_a_stale_copy_cannot_overwrite_a_concurrent_change(unit, dispatcher):
    stale = Unit.objects.get(pk=unit.pk)
    unit_transition(unit=unit, to_status=S.OUT_OF_SERVICE, actor=None, reason="breakdown")
    # The stale copy still says "available"; the service reads the real state and refuses.
    with pytest.raises(Conflict) as refused:
        unit_transition(unit=stale, to_status=S.EN_ROUTE, actor=dispatcher)
    assert refused.value.extra["from"] == S.OUT_OF_SERVICE
    assert UnitStatusChange.objects.count() == 1


def test_only_the_operators_dispatchers_and_admins_move_units(unit):
    before = _snapshot(unit)
    for user in (
        UserFactory(organisation=unit.operator, roles=["technologist"]),
        UserFactory(organisation=unit.operator, roles=["qc_officer"]),
        UserFactory(roles=["dispatcher"]),  # another organisation
    ):
        with pytest.raises(AccessDenied):
            unit_transition(unit=unit, to_status=S.EN_ROUTE, actor=user)
    assert _snapshot(unit) == before
    admin = UserFactory(organisation=unit.operator, roles=["admin"])
    assert unit_transition(unit=unit, to_status=S.EN_ROUTE, actor=admin).status == S.EN_ROUTE


def test_unknown_status_is_invalid(unit, dispatcher):
    with pytest.raises(InvalidInput, match="Unknown unit status 'flying'"):
        unit_transition(unit=unit, to_status="flying", actor=dispatcher)
