"""Independent check of a plan against every hard constraint; [] means the plan is valid."""

from __future__ import annotations

from collections import defaultdict

from fleet.planning.model import PlanInput, PlannedVisit, PlanResult
from fleet.planning.travel import TravelProvider

EPS = 1e-6


def plan_violations(inp: PlanInput, result: PlanResult, travel: TravelProvider) -> list[str]:
    units = {u.id: u for u in inp.units}
    requests = {r.id: r for r in inp.requests}
    out: list[str] = []
    seen: dict[str, PlannedVisit] = {}
    routes: dict[tuple[str, int], list[PlannedVisit]] = defaultdict(list)
    for v in result.visits:
        unit, request = units.get(v.unit_id), requests.get(v.request_id)
        if unit is None or request is None:
            out.append(f"{v}: unknown unit or request")
            continue
        if v.request_id in seen:
            out.append(f"request {v.request_id} served twice")
        seen[v.request_id] = v
        if v.request_id in result.unserved:
            out.append(f"request {v.request_id} both served and unserved")
        if unit.modality != request.modality:
            out.append(f"{v.request_id}: {request.modality} request on {unit.modality} unit {unit.id}")
        if not (request.earliest_day <= v.day <= request.latest_day) or not 0 <= v.day < inp.days:
            out.append(f"{v.request_id}: day {v.day} outside {request.earliest_day}..{request.latest_day}")
        if v.day not in unit.available_days:
            out.append(f"{v.request_id}: unit {unit.id} not available on day {v.day}")
        routes[(v.unit_id, v.day)].append(v)
    for (unit_id, day), stops in routes.items():
        unit = units[unit_id]
        stops.sort(key=lambda s: s.sequence)
        if [s.sequence for s in stops] != list(range(1, len(stops) + 1)):
            out.append(f"unit {unit_id} day {day}: sequence is not 1..{len(stops)}")
        patients = sum(requests[s.request_id].patients for s in stops)
        if patients > unit.capacity_per_day:
            out.append(f"unit {unit_id} day {day}: {patients} patients > capacity {unit.capacity_per_day}")
        at, clock = unit.depot, 0.0
        for s in stops:
            request = requests[s.request_id]
            clock += travel.minutes(at, request.location)
            if (
                s.arrive_minute < clock - 0.1
                or s.depart_minute - s.arrive_minute < inp.service_minutes(request) - 0.1
            ):
                out.append(f"{s.request_id}: reported times do not allow travel and scanning")
            clock += inp.service_minutes(request)
            at = request.location
        clock += travel.minutes(at, unit.depot)
        if clock > unit.crew_minutes_per_day + EPS:
            out.append(f"unit {unit_id} day {day}: route takes {clock:.1f} > {unit.crew_minutes_per_day} min")
    for lock in inp.locked:
        kept = seen.get(lock.request_id)
        if kept is None or (kept.unit_id, kept.day) != (lock.unit_id, lock.day):
            out.append(f"locked visit {lock} not kept")
    missing = set(requests) - set(seen) - set(result.unserved)
    if missing:
        out.append(f"requests neither served nor unserved: {sorted(missing)}")
    return out
