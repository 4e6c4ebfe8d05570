"""Shared by both solvers: turn routes into a PlanResult, and say why a request is unservable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleet.planning.model import PlanInput, PlannedVisit, PlanRequest, PlanResult
from fleet.planning.travel import TravelProvider

Vehicle = tuple[str, int]  # (unit id, day)
NO_ROOM = "no room within capacity and crew hours"


def unservable_reason(inp: PlanInput, request: PlanRequest) -> str | None:
    """Why no unit can ever serve this request, or None if some (unit, day) could."""
    if request.modality not in inp.minutes_per_exam:
        return f"no exam time for modality {request.modality}"
    same = [u for u in inp.units if u.modality == request.modality]
    if not same:
        return f"no {request.modality} unit"
    big = [u for u in same if u.capacity_per_day >= request.patients]
    if not big:
        return f"{request.patients} patients exceed every {request.modality} unit's daily capacity"
    days = range(max(request.earliest_day, 0), min(request.latest_day, inp.days - 1) + 1)
    if not any(d in u.available_days for u in big for d in days):
        return "no suitable unit available within the date window"
    return None


def too_far_reason(inp: PlanInput, travel: TravelProvider, request: PlanRequest) -> str | None:
    """Why no suitable unit could serve the request even alone on a free day: the drive there and
    back plus the scanning exceed its crew day (crews start and end at their depot). None if one could."""
    days = range(max(request.earliest_day, 0), min(request.latest_day, inp.days - 1) + 1)
    suitable = [
        u
        for u in inp.units
        if u.modality == request.modality
        and u.capacity_per_day >= request.patients
        and any(d in u.available_days for d in days)
    ]
    if not suitable:
        return None
    service = inp.service_minutes(request)
    need = {u.id: 2 * travel.minutes(u.depot, request.location) + service for u in suitable}
    if any(need[u.id] <= u.crew_minutes_per_day for u in suitable):
        return None
    best = min(suitable, key=lambda u: need[u.id] - u.crew_minutes_per_day)
    return (
        f"beyond a crew day from every {request.modality} depot: at best "
        f"{need[best.id] / 60:.1f} h of driving and scanning, {best.crew_minutes_per_day / 60:.0f} h allowed"
    )


def route_schedule(
    inp: PlanInput, travel: TravelProvider, unit_id: str, requests: Sequence[PlanRequest]
) -> tuple[list[tuple[float, float]], float, float]:
    """(arrive, depart) per stop, the minute the unit is back at its depot, and route km."""
    unit = next(u for u in inp.units if u.id == unit_id)
    at, clock, km, times = unit.depot, 0.0, 0.0, []
    for r in requests:
        clock += travel.minutes(at, r.location)
        km += travel.km(at, r.location)
        arrive = clock
        clock += inp.service_minutes(r)
        times.append((arrive, clock))
        at = r.location
    clock += travel.minutes(at, unit.depot)
    km += travel.km(at, unit.depot)
    return times, clock, km


def build_result(
    inp: PlanInput,
    travel: TravelProvider,
    routes: Mapping[Vehicle, Sequence[str]],
    *,
    wall_seconds: float,
    status: str,
    solver: str,
    reasons: Mapping[str, str] | None = None,
) -> PlanResult:
    by_id = {r.id: r for r in inp.requests}
    visits: list[PlannedVisit] = []
    km = 0.0
    for (unit_id, day), ids in sorted(routes.items()):
        if not ids:
            continue
        times, _back, route_km = route_schedule(inp, travel, unit_id, [by_id[i] for i in ids])
        km += route_km
        for seq, (rid, (arrive, depart)) in enumerate(zip(ids, times, strict=True), start=1):
            visits.append(PlannedVisit(rid, unit_id, day, seq, round(arrive, 1), round(depart, 1)))
    served = {v.request_id: v for v in visits}
    unserved = {
        r.id: (reasons or {}).get(r.id)
        or unservable_reason(inp, r)
        or too_far_reason(inp, travel, r)
        or NO_ROOM
        for r in inp.requests
        if r.id not in served
    }
    changes = sum(
        1
        for p in inp.previous
        if (v := served.get(p.request_id)) is None or (v.unit_id, v.day) != (p.unit_id, p.day)
    )
    return PlanResult(
        visits=tuple(visits),
        unserved=unserved,
        weighted_served=round(sum(by_id[rid].weight for rid in served), 6),
        km=round(km, 3),
        changes=changes,
        wall_seconds=round(wall_seconds, 3),
        status=status,
        solver=solver,
    )
