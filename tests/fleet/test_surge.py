"""Emergency surge: the ETA ranking on a hand-made instance, the proposal, confirm and close."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry
from dicom.models import Order
from fleet.models import Incident, IncidentUnit, ServiceRequest, Unit, UnitStatusChange, Visit
from fleet.selectors_surge import surge_ranking, units_on_incident
from fleet.services.surge import incident_close, incident_confirm, incident_declare
from fleet.surge_eta import PACK_UP_MINUTES, SurgeUnit, SurgeVisit, choose, rank_units
from telerad.models import Notification
from tests.fleet.map_factories import OperatorFactory, dispatcher, hospital_user
from tests.fleet.surge_factories import INCIDENT, MIN_PER_DEG, build_surge

NOW = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)


class FlatTravel:
    """1 degree of latitude = 100 km = 100 minutes: ETAs by hand."""

    def km(self, a, b):
        return abs(a[0] - b[0]) * 100

    def minutes(self, a, b):
        return self.km(a, b)


def test_rank_units_pure_by_hand():
    units = [
        SurgeUnit(1, "idle near", "CT", "available", (0.3, 0.0), (5.0, 0.0)),
        SurgeUnit(
            2, "on site", "CT", "on_site", (0.1, 0.0), (5.0, 0.0), current_visit=SurgeVisit(9, "H", None, 3)
        ),
        SurgeUnit(3, "depot only", "CT", "returning", None, (0.6, 0.0)),
        SurgeUnit(4, "broken", "CT", "out_of_service", (0.0, 0.0), (0.0, 0.0)),
        SurgeUnit(5, "busy", "CT", "available", (0.0, 0.0), (0.0, 0.0), other_incident=77),
        SurgeUnit(6, "unlicensed", "CT", "available", (0.0, 0.0), (0.0, 0.0), blockers=("licence expired",)),
        SurgeUnit(7, "mr", "MR", "available", (0.0, 0.0), (0.0, 0.0)),
        SurgeUnit(8, "in the shop", "CT", "maintenance", (0.0, 0.0), (0.0, 0.0)),
    ]
    ranked, excluded = rank_units(units, target=(0.0, 0.0), modality="CT", travel=FlatTravel())
    # on site leave now: 15 + 10 = 25; idle: 30; depot: 60; finish: 3 x 15 + 15 + 10 = 70
    assert [(c.unit_id, c.option, round(c.eta_minutes, 6)) for c in ranked] == [
        (2, "leave_now", 25.0),
        (1, "idle", 30.0),
        (3, "idle", 60.0),
        (2, "finish_current", 70.0),
    ]
    assert ranked[2].origin_source == "depot"
    assert ranked[0].busy_minutes == PACK_UP_MINUTES
    assert {e.unit_id: e.reasons for e in excluded} == {
        4: ("out of service",),
        5: ("already assigned to incident 77",),
        6: ("licence expired",),
        8: ("in maintenance",),
    }
    assert [c.unit_id for c in choose(ranked, 2)] == [2, 1]
    assert [c.unit_id for c in choose(ranked, 5)] == [2, 1, 3]


def test_on_site_without_remaining_work_has_one_option_from_its_hospital():
    unit = SurgeUnit(
        1, "done", "CT", "scanning", None, (9.0, 0.0), current_visit=SurgeVisit(3, "H", (0.2, 0.0), 0)
    )
    ranked, _ = rank_units([unit], target=(0.0, 0.0), modality="CT", travel=FlatTravel())
    assert [(c.option, c.origin_source, c.eta_minutes) for c in ranked] == [("leave_now", "hospital", 35.0)]


@pytest.fixture
def surge(db):
    return build_surge()


def _block(ranking, modality="CT"):
    return next(b for b in ranking if b["modality"] == modality)


def test_surge_ranking_hand_made_instance(surge):
    block = _block(
        surge_ranking(
            operator_id=surge.operator.pk, location=INCIDENT, needs={"CT": 2, "MR": 1}, at=timezone.now()
        )
    )
    rows = [(c["unit_name"], c["option"]) for c in block["candidates"]]
    assert rows == [
        ("CT F", "en_route"),
        ("CT B", "leave_now"),
        ("CT A", "idle"),
        ("CT B", "finish_current"),
        ("CT C", "idle"),
    ]
    expected = [0.10 * MIN_PER_DEG, 15 + 0.05 * MIN_PER_DEG, 0.20 * MIN_PER_DEG, 75 + 0.05 * MIN_PER_DEG]
    expected.append(0.50 * MIN_PER_DEG)
    assert [c["eta_minutes"] for c in block["candidates"]] == pytest.approx(expected, abs=0.1)
    assert [round(e) for e in expected] == [17, 24, 35, 84, 86]
    finish = block["candidates"][3]
    assert (finish["remaining_exams"], finish["busy_minutes"]) == (4, 75.0)
    assert block["candidates"][4]["origin_source"] == "depot"
    assert block["chosen"] == [surge.units["F"].pk, surge.units["B"].pk]
    excluded = {e["unit_name"]: e["reasons"] for e in block["excluded"]}
    assert set(excluded) == {"CT D", "CT E"}
    assert excluded["CT D"] == ["out of service"]
    assert any("missing" in reason for reason in excluded["CT E"])
    assert "MR 1" not in {c["unit_name"] for c in block["candidates"]}
    mr = surge_ranking(operator_id=surge.operator.pk, location=INCIDENT, needs={"MR": 1})
    assert [c["unit_name"] for c in _block(mr, "MR")["candidates"]] == ["MR 1"]


def _declare(surge, **overrides):
    values = {
        "actor": surge.dispatcher,
        "operator": surge.operator,
        "name": "Bus crash on the G50",
        "latitude": INCIDENT[0],
        "longitude": INCIDENT[1],
        "needs": {"CT": 2},
        "starts_at": timezone.now(),
        "days": 2,
    }
    values.update(overrides)
    return incident_declare(**values)


def test_declare_proposes_exactly_the_chosen_units_visits_in_window(surge):
    incident = _declare(surge)
    proposal = incident.proposal
    assert [c["unit_name"] for c in proposal["chosen"]] == ["CT F", "CT B"]
    assert [c["option"] for c in proposal["chosen"]] == ["en_route", "leave_now"]
    v = surge.visits
    assert [row["visit_id"] for row in proposal["visits"]] == [
        v["F_today"].pk,
        v["B_tomorrow"].pk,
        v["F_tomorrow"].pk,
    ]
    first = proposal["visits"][0]
    assert first["hospital_name"] == "Hospital 1"
    assert first["requests"] == [surge.requests["F_today"].pk]
    assert first["date"] == timezone.localdate().isoformat()
    assert proposal["visits"][1]["locked"] is True
    assert proposal["shortfall"] == {}
    assert AuditEntry.objects.filter(action="incident.declare", object_id=str(incident.pk)).count() == 1
    # Nothing moved yet.
    assert Visit.objects.filter(status="cancelled").count() == 0
    assert IncidentUnit.objects.count() == 0


def test_declare_reports_a_shortfall(surge):
    incident = _declare(surge, needs={"CT": 5, "DX": 1})
    assert incident.proposal["shortfall"] == {"CT": 1, "DX": 1}


@pytest.mark.parametrize(
    "overrides",
    [
        {"needs": {"XR": 1}},
        {"needs": {"CT": 0}},
        {"needs": {"CT": 11}},
        {"needs": {}},
        {"latitude": 91},
        {"longitude": -181},
        {"starts_at": timezone.now() - dt.timedelta(days=2)},
        {"days": 0},
        {"name": " "},
    ],
)
def test_declare_refuses_bad_input(surge, overrides):
    with pytest.raises(InvalidInput):
        _declare(surge, **overrides)
    assert Incident.objects.count() == 0


def test_declare_and_confirm_permissions(surge):
    with pytest.raises(AccessDenied):
        _declare(surge, actor=hospital_user(surge.hospitals["1"]))
    with pytest.raises(AccessDenied):
        _declare(surge, actor=dispatcher(OperatorFactory()))
    incident = _declare(surge)
    with pytest.raises(AccessDenied):
        incident_confirm(actor=hospital_user(surge.hospitals["1"]), incident=incident)
    assert Incident.objects.get().status == "declared"


@pytest.fixture
def replans(monkeypatch):
    calls = []
    monkeypatch.setattr("fleet.services.surge.request_replan", lambda **kwargs: calls.append(kwargs))
    return calls


def _snapshot():
    return {
        "units": dict(Unit.objects.values_list("name", "status")),
        "visits": dict(Visit.objects.values_list("pk", "status")),
        "requests": dict(ServiceRequest.objects.values_list("pk", "status")),
        "notifications": Notification.objects.count(),
        "audit": AuditEntry.objects.count(),
        "assigned": IncidentUnit.objects.count(),
        "orders": dict(Order.objects.values_list("pk", "status")),
    }


def test_confirm_dispatches_cancels_rebooks_notifies(surge, replans, django_capture_on_commit_callbacks):
    incident = _declare(surge)
    audit_before = AuditEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        incident_confirm(actor=surge.dispatcher, incident=incident)
    incident.refresh_from_db()
    assert incident.status == "dispatched"
    assert incident.confirmed_by == surge.dispatcher
    u, v, r = surge.units, surge.visits, surge.requests
    rows = {row.unit_id: row for row in IncidentUnit.objects.filter(incident=incident)}
    assert set(rows) == {u["F"].pk, u["B"].pk}
    assert rows[u["F"].pk].eta_minutes == pytest.approx(0.10 * MIN_PER_DEG, abs=0.1)
    assert rows[u["B"].pk].eta_minutes == pytest.approx(15 + 0.05 * MIN_PER_DEG, abs=0.1)
    assert rows[u["B"].pk].finishes_current_visit is False
    statuses = dict(Unit.objects.values_list("name", "status"))
    assert statuses["CT F"] == "en_route"  # redirected: was already on the road
    assert statuses["CT B"] == "en_route"  # left its visit: returning -> available -> en_route
    assert statuses["CT A"] == "available"
    assert list(
        UnitStatusChange.objects.filter(unit=u["B"]).order_by("at", "id").values_list("to_status", flat=True)
    ) == ["returning", "available", "en_route"]
    cancelled = set(Visit.objects.filter(status="cancelled").values_list("pk", flat=True))
    assert cancelled == {v["F_today"].pk, v["F_tomorrow"].pk, v["B_tomorrow"].pk}
    assert Visit.objects.get(pk=v["F_later"].pk).status == "planned"
    assert Visit.objects.get(pk=v["B_current"].pk).status == "on_site"
    assert Visit.objects.get(pk=v["A_tomorrow"].pk).status == "planned"
    for key in ("F_today", "F_tomorrow"):
        r[key].refresh_from_db()
        assert (r[key].status, r[key].visit_id) == ("submitted", None)
    r["A_tomorrow"].refresh_from_db()
    assert r["A_tomorrow"].status == "scheduled"
    assert Order.objects.get(pk=surge.orders["F_today"].pk).status == "cancelled"
    # Hospital 1: 2 users x 2 visits; Hospital 2: 1 x 1; Hospital 3 (visit interrupted): 1.
    notes = Notification.objects.filter(kind="visit.cancelled")
    assert notes.count() == 6
    assert notes.filter(recipient__organisation=surge.hospitals["1"]).count() == 4
    assert (
        notes.filter(recipient__organisation=surge.hospitals["3"], message__contains="4 booked exam").count()
        == 1
    )
    assert all("emergency" in n.message for n in notes)
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))[audit_before:]
    assert sorted(actions) == sorted(
        ["unit.transition"] * 3
        + ["visit.cancel"] * 3
        + ["service_request.unschedule"] * 2
        + ["order.cancel"]
        + ["incident.confirm"]
    )
    assert replans == [
        {"operator": surge.operator, "reason": f"incident {incident.pk}", "actor": surge.dispatcher}
    ]
    assert incident.proposal["confirmed"]["interrupted_visits"] == [v["B_current"].pk]

    # A second confirm is refused and changes nothing.
    before = _snapshot()
    with pytest.raises(Conflict):
        incident_confirm(actor=surge.dispatcher, incident=incident)
    assert _snapshot() == before


def test_confirm_with_finish_current_keeps_the_unit_at_its_visit(surge, replans):
    incident = _declare(surge)
    u = surge.units
    incident_confirm(
        actor=surge.dispatcher,
        incident=incident,
        unit_ids=[u["B"].pk, u["A"].pk],
        finish_current={u["B"].pk: True},
    )
    rows = {row.unit_id: row for row in IncidentUnit.objects.all()}
    assert rows[u["B"].pk].finishes_current_visit is True
    assert rows[u["B"].pk].eta_minutes == pytest.approx(75 + 0.05 * MIN_PER_DEG, abs=0.1)
    assert Unit.objects.get(pk=u["B"].pk).status == "scanning"
    assert Unit.objects.get(pk=u["A"].pk).status == "en_route"
    assert Notification.objects.filter(recipient__organisation=surge.hospitals["3"]).count() == 0
    cancelled = set(Visit.objects.filter(status="cancelled").values_list("pk", flat=True))
    assert cancelled == {surge.visits["B_tomorrow"].pk, surge.visits["A_tomorrow"].pk}


def test_confirm_refuses_units_not_offered(surge, replans):
    incident = _declare(surge)
    before = _snapshot()
    with pytest.raises(Conflict) as refused:
        incident_confirm(actor=surge.dispatcher, incident=incident, unit_ids=[surge.units["D"].pk])
    assert "out of service" in refused.value.message
    with pytest.raises(InvalidInput):
        incident_confirm(
            actor=surge.dispatcher,
            incident=incident,
            unit_ids=[surge.units["A"].pk],
            finish_current={surge.units["A"].pk: True},
        )
    assert _snapshot() == before
    assert Incident.objects.get().status == "declared"


def test_units_on_incident_and_close(surge, replans, django_capture_on_commit_callbacks):
    incident = _declare(surge)
    with django_capture_on_commit_callbacks(execute=True):
        incident_confirm(actor=surge.dispatcher, incident=incident)
    u = surge.units
    today = timezone.localdate()
    assert units_on_incident(operator_id=surge.operator.pk, start=today, days=5) == {
        u["F"].pk: {0, 1},
        u["B"].pk: {0, 1},
    }
    assert units_on_incident(operator_id=surge.operator.pk, start=today + dt.timedelta(days=1), days=3) == {
        u["F"].pk: {0},
        u["B"].pk: {0},
    }
    # A second incident does not offer the units already sent.
    other = _declare(surge, name="Flood")
    excluded = {e["unit_name"]: e["reasons"] for e in _block(other.proposal["ranking"])["excluded"]}
    assert excluded["CT F"] == [f"already assigned to incident {incident.pk}"]
    assert [c["unit_name"] for c in other.proposal["chosen"]] == ["CT A", "CT C"]

    with django_capture_on_commit_callbacks(execute=True):
        incident_close(actor=surge.dispatcher, incident=incident)
    incident.refresh_from_db()
    assert incident.status == "closed"
    assert IncidentUnit.objects.filter(incident=incident, released_at__isnull=True).count() == 0
    assert units_on_incident(operator_id=surge.operator.pk, start=today, days=5) == {
        u["F"].pk: {0},
        u["B"].pk: {0},
    }
    assert AuditEntry.objects.filter(action="incident.close").count() == 1
    with pytest.raises(Conflict):
        incident_close(actor=surge.dispatcher, incident=incident)
    assert len(replans) == 2  # after confirm and after close


def test_confirm_asks_the_real_planner_for_a_replan(surge, django_capture_on_commit_callbacks, monkeypatch):
    """No stand-in for replan_request: a re-plan of the operator is queued with the incident as reason
    (the solver run itself is the planner's business and is not started here)."""
    from fleet.models import Plan

    started = []
    monkeypatch.setattr("fleet.tasks.plan_compute_task.delay", lambda plan_id: started.append(plan_id))
    incident = _declare(surge)
    with django_capture_on_commit_callbacks(execute=True):
        incident_confirm(actor=surge.dispatcher, incident=incident)
    plan = Plan.objects.get(operator=surge.operator)
    assert (plan.kind, plan.reason, plan.created_by) == (
        "replan",
        f"incident {incident.pk}",
        surge.dispatcher,
    )
    assert started == [plan.pk]
    assert AuditEntry.objects.filter(action="plan.replan").count() == 1
