"""Greedy baseline: the heaviest requests first, each into the feasible (unit, day) route
position that adds the least travel (its previous slot if that still fits)."""

from __future__ import annotations

import itertools
import time

from fleet.planning.model import PlanInput, PlanRequest, PlanResult
from fleet.planning.routes import Vehicle, build_result, route_schedule, unservable_reason
from fleet.planning.travel import TravelProvider


def locked_vehicles(inp: PlanInput) -> dict[str, Vehicle]:
    """request id -> its locked (unit, day); a lock the unit cannot honour is the caller's error
    (a dispatcher must unlock a visit of a unit that broke down), so it raises ValueError."""
    units = {u.id: u for u in inp.units}
    requests = {r.id: r for r in inp.requests}
    out: dict[str, Vehicle] = {}
    for lock in inp.locked:
        unit, request = units.get(lock.unit_id), requests.get(lock.request_id)
        if unit is None or request is None:
            raise ValueError(f"locked visit {lock} names an unknown unit or request")
        if not inp.can_serve(unit, request, lock.day):
            raise ValueError(f"locked visit {lock} breaks a hard constraint (modality/window/availability)")
        if out.setdefault(lock.request_id, (lock.unit_id, lock.day)) != (lock.unit_id, lock.day):
            raise ValueError(f"request {lock.request_id} is locked twice")
    return out


class _Routes:
    def __init__(self, inp: PlanInput, travel: TravelProvider) -> None:
        self.inp, self.travel = inp, travel
        self.units = {u.id: u for u in inp.units}
        self.routes: dict[Vehicle, list[PlanRequest]] = {}
        self.load: dict[Vehicle, int] = {}

    def best_insertion(self, vehicle: Vehicle, request: PlanRequest) -> tuple[float, int] | None:
        """(added km, position) of the cheapest insertion that keeps capacity and crew minutes."""
        unit = self.units[vehicle[0]]
        if self.load.get(vehicle, 0) + request.patients > unit.capacity_per_day:
            return None
        route = self.routes.get(vehicle, [])
        stops = [unit.depot, *(r.location for r in route), unit.depot]
        km = self.travel.km
        here = request.location
        options = sorted(
            (km(a, here) + km(here, b) - km(a, b), i) for i, (a, b) in enumerate(itertools.pairwise(stops))
        )
        for added, pos in options:
            candidate = [*route[:pos], request, *route[pos:]]
            _times, back, _km = route_schedule(self.inp, self.travel, unit.id, candidate)
            if back <= unit.crew_minutes_per_day + 1e-9:
                return added, pos
        return None

    def insert(self, vehicle: Vehicle, request: PlanRequest, pos: int) -> None:
        self.routes.setdefault(vehicle, []).insert(pos, request)
        self.load[vehicle] = self.load.get(vehicle, 0) + request.patients


def plan_greedy(inp: PlanInput, travel: TravelProvider) -> PlanResult:
    started = time.perf_counter()
    locks = locked_vehicles(inp)
    previous = {p.request_id: (p.unit_id, p.day) for p in inp.previous}
    state = _Routes(inp, travel)
    requests = {r.id: r for r in inp.requests}
    for rid, vehicle in locks.items():
        found = state.best_insertion(vehicle, requests[rid])
        if found is None:
            raise ValueError(f"locked visits overfill unit {vehicle[0]} on day {vehicle[1]}")
        state.insert(vehicle, requests[rid], found[1])
    # A re-plan first puts every published visit back where it was, if it still fits: the
    # baseline prefers stability over squeezing a displaced request in.
    placed = set(locks)
    for request in sorted(inp.requests, key=lambda r: (-r.weight, r.id)):
        was = previous.get(request.id)
        if request.id in placed or was is None or was[0] not in state.units:
            continue
        if inp.can_serve(state.units[was[0]], request, was[1]):
            found = state.best_insertion(was, request)
            if found is not None:
                state.insert(was, request, found[1])
                placed.add(request.id)
    reasons: dict[str, str] = {}
    for request in sorted(inp.requests, key=lambda r: (-r.weight, r.id)):
        if request.id in placed:
            continue
        reason = unservable_reason(inp, request)
        if reason:
            reasons[request.id] = reason
            continue
        best: tuple[tuple[bool, float, int, str], Vehicle, int] | None = None
        for unit in inp.units:
            for day in range(request.earliest_day, request.latest_day + 1):
                if not inp.can_serve(unit, request, day):
                    continue
                found = state.best_insertion((unit.id, day), request)
                if found is None:
                    continue
                # Keeping the published slot beats any travel saving: re-plans move little.
                key = (previous.get(request.id) != (unit.id, day), found[0], day, unit.id)
                if best is None or key < best[0]:
                    best = (key, (unit.id, day), found[1])
        if best is not None:
            state.insert(best[1], request, best[2])
    routes = {v: [r.id for r in rs] for v, rs in state.routes.items()}
    return build_result(
        inp,
        travel,
        routes,
        wall_seconds=time.perf_counter() - started,
        status="greedy",
        solver="greedy",
        reasons=reasons,
    )
