"""Planner core on hand-made instances: known optimum, unservable requests, locks, re-plans."""

from __future__ import annotations

import pytest

from fleet.planning import (
    GeodesicTravel,
    LockedVisit,
    MatrixTravel,
    PlanInput,
    PlanRequest,
    PlanUnit,
    PreviousVisit,
    plan_greedy,
    plan_ortools,
    plan_violations,
)

SOLVERS = {
    "greedy": plan_greedy,
    "ortools": lambda inp, travel: plan_ortools(inp, travel, time_limit_s=0.5),
}
D, A, B, C = (30.0, 114.0), (30.1, 114.0), (30.2, 114.0), (30.3, 114.0)


def _ct(id_: str = "U1", *, depot=D, days=(0,), capacity=40, crew=600) -> PlanUnit:
    return PlanUnit(id_, "CT", capacity, depot, frozenset(days), crew)


def _req(id_: str, where, *, patients=10, modality="CT", days=(0, 0), priority=1.0, overdue=0):
    return PlanRequest(id_, f"H-{id_}", where, modality, patients, days[0], days[1], priority, overdue)


def _square_matrix() -> MatrixTravel:
    """D-A 20, A-B 10, B-C 10, C-D 20 (minutes = km); every other arc 60."""
    pts = [D, A, B, C]
    near = {(0, 1): 20, (1, 2): 10, (2, 3): 10, (0, 3): 20}
    m = [[0 if i == j else near.get((min(i, j), max(i, j)), 60) for j in range(4)] for i in range(4)]
    return MatrixTravel(pts, m, m)


@pytest.mark.parametrize("solver", SOLVERS)
def test_known_optimum_fills_the_crew_day_exactly(solver):
    # Three stops of 30 + 10 x 15 = 180 min each plus 60 min on the road = 600 = crew minutes:
    # only the route D-A-B-C-D (or its reverse) fits all three.
    inp = PlanInput(units=(_ct(),), requests=(_req("a", A), _req("b", B), _req("c", C)), days=1)
    travel = _square_matrix()
    result = SOLVERS[solver](inp, travel)
    assert plan_violations(inp, result, travel) == []
    order = [v.request_id for v in sorted(result.visits, key=lambda v: v.sequence)]
    assert order in (["a", "b", "c"], ["c", "b", "a"])
    assert result.km == 60
    assert result.unserved == {}
    assert [(v.arrive_minute, v.depart_minute) for v in result.visits] == [(20, 200), (210, 390), (400, 580)]


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_hospital_beyond_a_crew_day_is_said_to_be(solver):
    # D to C is 20 min; a 600-minute crew day fits 20 + (30 + 10 x 15) + 20 = 220 minutes, not a
    # 40-patient visit (30 + 600 + 40 = 670): too far for one day, not a matter of room.
    inp = PlanInput(units=(_ct(),), requests=(_req("big", C, patients=40), _req("ok", A)), days=1)
    travel = _square_matrix()
    result = SOLVERS[solver](inp, travel)
    assert [v.request_id for v in result.visits] == ["ok"]
    assert result.unserved == {
        "big": "beyond a crew day from every CT depot: at best 11.2 h of driving and scanning, 10 h allowed"
    }


@pytest.mark.parametrize("solver", SOLVERS)
def test_heavier_request_wins_the_only_slot(solver):
    light = _req("light", A, priority=2)
    heavy = _req("heavy", C, priority=1, overdue=60)  # 1 x (1 + 60/30) = 3 > 2, and farther away
    inp = PlanInput(units=(_ct(capacity=10),), requests=(light, heavy), days=1)
    travel = _square_matrix()
    result = SOLVERS[solver](inp, travel)
    assert [v.request_id for v in result.visits] == ["heavy"]
    assert result.unserved == {"light": "no room within capacity and crew hours"}
    assert result.weighted_served == 3


@pytest.mark.parametrize("solver", SOLVERS)
def test_unservable_requests_say_why(solver):
    inp = PlanInput(
        units=(_ct(days=(0, 1, 2)),),
        requests=(
            _req("mr", A, modality="MR", days=(0, 2)),
            _req("late", A, days=(5, 6)),
            _req("big", A, patients=41, days=(0, 2)),
            _req("off", A, days=(0, 0)),
            _req("ok", B, days=(1, 2)),
        ),
        days=3,
    )
    inp = PlanInput(units=(_ct(days=(1, 2)),), requests=inp.requests, days=3)
    travel = GeodesicTravel()
    result = SOLVERS[solver](inp, travel)
    assert plan_violations(inp, result, travel) == []
    assert [v.request_id for v in result.visits] == ["ok"]
    assert result.unserved == {
        "mr": "no MR unit",
        "late": "no suitable unit available within the date window",
        "big": "41 patients exceed every CT unit's daily capacity",
        "off": "no suitable unit available within the date window",
    }


@pytest.mark.parametrize("solver", SOLVERS)
def test_locked_visit_is_kept_even_when_worse(solver):
    near, far = _ct("near", depot=A, days=(0, 1)), _ct("far", depot=(30.6, 114.5), days=(0, 1))
    inp = PlanInput(
        units=(near, far),
        requests=(_req("r", A, days=(0, 1)),),
        days=2,
        locked=(LockedVisit("r", "far", 1),),
    )
    travel = GeodesicTravel()
    result = SOLVERS[solver](inp, travel)
    assert plan_violations(inp, result, travel) == []
    assert [(v.request_id, v.unit_id, v.day) for v in result.visits] == [("r", "far", 1)]


@pytest.mark.parametrize("solver", SOLVERS)
def test_lock_on_unavailable_day_is_refused(solver):
    inp = PlanInput(
        units=(_ct(days=(0,)),), requests=(_req("r", A, days=(0, 1)),), days=2,
        locked=(LockedVisit("r", "U1", 1),),
    )  # fmt: skip
    with pytest.raises(ValueError, match="breaks a hard constraint"):
        SOLVERS[solver](inp, GeodesicTravel())


def _wuhan_instance() -> PlanInput:
    """Four CT units around Wuhan, 4 days, 16 requests: enough spare capacity to absorb a
    breakdown without moving anyone else."""
    depots = [(30.59, 114.30), (30.45, 114.87), (30.92, 113.92), (30.20, 115.04)]
    units = tuple(_ct(f"U{k}", depot=d, days=range(4)) for k, d in enumerate(depots))
    requests = tuple(
        _req(
            f"R{k:02d}",
            (30.2 + 0.05 * (k % 9), 113.9 + 0.07 * (k % 11)),
            patients=8 + k % 6,
            days=(k % 3, k % 3 + 1),
            priority=1 + k % 3,
        )
        for k in range(16)
    )
    return PlanInput(units=units, requests=requests, days=4)


@pytest.mark.parametrize("solver", SOLVERS)
def test_breakdown_replan_keeps_unaffected_visits(solver):
    inp = _wuhan_instance()
    travel = GeodesicTravel()
    first = SOLVERS[solver](inp, travel)
    assert first.unserved == {}
    broken = "U0"
    assert any(v.unit_id == broken for v in first.visits)
    # U0 breaks down after day 0: day 0 is under way (locked), days 1-3 are lost.
    units = tuple(
        u if u.id != broken else PlanUnit(u.id, u.modality, u.capacity_per_day, u.depot, frozenset({0}))
        for u in inp.units
    )
    replan = PlanInput(
        units=units,
        requests=inp.requests,
        days=inp.days,
        locked=tuple(LockedVisit(v.request_id, v.unit_id, v.day) for v in first.visits if v.day == 0),
        previous=tuple(PreviousVisit(v.request_id, v.unit_id, v.day) for v in first.visits),
    )
    second = SOLVERS[solver](replan, travel)
    assert plan_violations(replan, second, travel) == []
    displaced = {v.request_id for v in first.visits if v.unit_id == broken and v.day > 0}
    assert displaced
    now = {v.request_id: (v.unit_id, v.day) for v in second.visits}
    moved_others = [
        v.request_id
        for v in first.visits
        if v.request_id not in displaced and now.get(v.request_id) != (v.unit_id, v.day)
    ]
    assert moved_others == []
    assert second.changes == len(displaced)
    assert second.unserved == {}


def test_matrix_travel_rejects_unknown_points_and_bad_shapes():
    travel = _square_matrix()
    with pytest.raises(KeyError, match="not in the travel matrix"):
        travel.km(D, (0.0, 0.0))
    with pytest.raises(ValueError, match="square"):
        MatrixTravel([D, A], [[0, 1]], [[0, 1], [1, 0]])


def test_geodesic_travel_applies_road_factor_and_speed():
    travel = GeodesicTravel(road_factor=1.3, speed_kmh=50)
    straight = 11.09  # ~0.1 degree of latitude at 30 N, in km
    assert travel.km(D, A) == pytest.approx(straight * 1.3, rel=1e-3)
    assert travel.km(A, D) == travel.km(D, A)
    assert travel.minutes(D, A) == pytest.approx(straight * 1.3 / 50 * 60, rel=1e-3)


def test_plan_violations_catches_each_broken_constraint():
    from dataclasses import replace

    unit = _ct(capacity=25, days=(0, 1))
    inp = PlanInput(
        units=(unit, PlanUnit("M1", "MR", 10, D, frozenset({0}), 600)),
        requests=(_req("a", A, days=(0, 1)), _req("b", B, days=(0, 1)), _req("c", C, days=(0, 1))),
        days=2,
        locked=(LockedVisit("a", "U1", 0),),
    )
    travel = _square_matrix()
    good = plan_greedy(inp, travel)
    assert plan_violations(inp, good, travel) == []
    a = next(v for v in good.visits if v.request_id == "a")
    rest = tuple(v for v in good.visits if v.request_id != "a")

    def broken(*visits, unserved=None):
        return replace(good, visits=visits, unserved=good.unserved if unserved is None else unserved)

    cases = {
        "MR unit": broken(replace(a, unit_id="M1"), *rest),
        "outside 0..1": broken(replace(a, day=2), *rest),
        "not available on day 1": broken(replace(a, unit_id="M1", day=1), *rest),
        "served twice": broken(a, replace(a, sequence=2), *rest),
        "not kept": broken(*rest, unserved={"a": "x"}),
        "neither served nor unserved": broken(*rest),
        "reported times": broken(replace(a, arrive_minute=0.0), *rest),
    }
    for expected, result in cases.items():
        assert any(expected in v for v in plan_violations(inp, result, travel)), expected
    # All three on one day: 3 x 180 min on site + 60 min driving = 600 > 500 crew minutes;
    # then 30 patients > capacity 25 with enough crew minutes.
    crowded = PlanInput(units=(_ct(capacity=30, crew=500),), requests=inp.requests, days=1)
    visits = tuple(
        replace(a, request_id=r, day=0, sequence=k, arrive_minute=600.0, depart_minute=900.0)
        for k, r in enumerate("abc", start=1)
    )
    found = plan_violations(crowded, replace(good, visits=visits, unserved={}), travel)
    assert found == ["unit U1 day 0: route takes 600.0 > 500 min"]
    over = PlanInput(units=(_ct(capacity=25),), requests=inp.requests, days=1)
    found = plan_violations(over, replace(good, visits=visits, unserved={}), travel)
    assert found == ["unit U1 day 0: 30 patients > capacity 25"]
