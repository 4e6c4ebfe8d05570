"""The surge ETA model, pure: plain data in, ranked candidates out (no database; docs/surge.md).

ETA = minutes from now until the unit arrives at the incident: for a unit at a hospital
(on site / scanning) ``PACK_UP_MINUTES`` to pack away (plus, to finish its visit, its remaining
exams x minutes per exam), then the drive from its position (else the visit's hospital, else
its depot); for any other offered unit the drive alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fleet.choices import UnitStatus
from fleet.planning.model import DEFAULT_MINUTES_PER_EXAM, DEFAULT_SETUP_MINUTES, Point
from fleet.planning.travel import GeodesicTravel, TravelProvider

# Packing away at a hospital before driving off: half of the planner's setup-and-pack time.
PACK_UP_MINUTES = DEFAULT_SETUP_MINUTES // 2
IDLE_STATUSES = (UnitStatus.AVAILABLE, UnitStatus.RETURNING)
AT_SITE_STATUSES = (UnitStatus.ON_SITE, UnitStatus.SCANNING)
EXCLUDED_STATUSES: dict[str, str] = {
    UnitStatus.OUT_OF_SERVICE: "out of service",
    UnitStatus.WITHDRAWN: "withdrawn from the fleet",
    UnitStatus.MAINTENANCE: "in maintenance",
}


# --- pure model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurgeVisit:
    """The visit a unit is working at now."""

    id: int
    hospital: str
    hospital_point: Point | None
    remaining_exams: int


@dataclass(frozen=True)
class SurgeUnit:
    """A unit as the ranking sees it."""

    id: int
    name: str
    modality: str
    status: str
    position: Point | None
    depot: Point
    blockers: tuple[str, ...] = ()
    other_incident: int | None = None
    current_visit: SurgeVisit | None = None


@dataclass(frozen=True)
class Candidate:
    """One way a unit can go: ``option`` idle / en_route / leave_now / finish_current."""

    unit_id: int
    unit_name: str
    modality: str
    status: str
    option: str
    finish_current: bool
    origin: Point
    origin_source: str  # gps / depot / hospital
    km: float
    travel_minutes: float
    busy_minutes: float  # before driving off: remaining exams and packing away
    eta_minutes: float
    visit_id: int | None = None
    remaining_exams: int = 0

    def as_dict(self, *, at: dt.datetime | None = None) -> dict[str, Any]:
        row = asdict(self)
        row["origin"] = list(self.origin)
        for key in ("km", "travel_minutes", "busy_minutes", "eta_minutes"):
            row[key] = round(row[key], 1)
        if at is not None:
            row["arrives_at"] = (at + dt.timedelta(minutes=self.eta_minutes)).isoformat()
        return row


@dataclass(frozen=True)
class Exclusion:
    """A unit of the modality that is not offered, and why."""

    unit_id: int
    unit_name: str
    modality: str
    status: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["reasons"] = list(self.reasons)
        return row


def _exclusion_reasons(unit: SurgeUnit) -> list[str]:
    reasons = []
    if unit.status in EXCLUDED_STATUSES:
        reasons.append(EXCLUDED_STATUSES[unit.status])
    if unit.other_incident is not None:
        reasons.append(f"already assigned to incident {unit.other_incident}")
    reasons.extend(unit.blockers)
    return reasons


def _options(unit: SurgeUnit, *, target: Point, travel: TravelProvider, minutes_per_exam: Mapping[str, int]):
    """The ways one offered unit can go to ``target``: one, or two when it can finish its visit."""
    visit = unit.current_visit if unit.status in AT_SITE_STATUSES else None
    if unit.position is not None:
        origin, source = unit.position, "gps"
    elif visit is not None and visit.hospital_point is not None:
        origin, source = visit.hospital_point, "hospital"
    else:
        origin, source = unit.depot, "depot"
    km, drive = travel.km(origin, target), travel.minutes(origin, target)

    def option(name: str, busy: float) -> Candidate:
        return Candidate(
            unit_id=unit.id,
            unit_name=unit.name,
            modality=unit.modality,
            status=unit.status,
            option=name,
            finish_current=name == "finish_current",
            origin=origin,
            origin_source=source,
            km=km,
            travel_minutes=drive,
            busy_minutes=busy,
            eta_minutes=busy + drive,
            visit_id=visit.id if visit is not None else None,
            remaining_exams=visit.remaining_exams if visit is not None else 0,
        )

    if unit.status not in AT_SITE_STATUSES:
        return [option("en_route" if unit.status == UnitStatus.EN_ROUTE else "idle", 0.0)]
    options = [option("leave_now", float(PACK_UP_MINUTES))]
    if visit is not None and visit.remaining_exams > 0:
        options.append(
            option(
                "finish_current",
                float(visit.remaining_exams * minutes_per_exam[unit.modality] + PACK_UP_MINUTES),
            )
        )
    return options


def rank_units(
    units: Iterable[SurgeUnit],
    *,
    target: Point,
    modality: str,
    travel: TravelProvider | None = None,
    minutes_per_exam: Mapping[str, int] = DEFAULT_MINUTES_PER_EXAM,
) -> tuple[list[Candidate], list[Exclusion]]:
    """Candidates of ``modality`` by ascending ETA (then name, leave_now first), and the excluded."""
    travel = travel or GeodesicTravel()
    candidates: list[Candidate] = []
    excluded: list[Exclusion] = []
    for unit in units:
        if unit.modality != modality:
            continue
        reasons = _exclusion_reasons(unit)
        if reasons:
            excluded.append(Exclusion(unit.id, unit.name, unit.modality, unit.status, tuple(reasons)))
            continue
        candidates.extend(_options(unit, target=target, travel=travel, minutes_per_exam=minutes_per_exam))
    candidates.sort(key=lambda c: (round(c.eta_minutes, 6), c.unit_name, c.finish_current))
    excluded.sort(key=lambda e: e.unit_name)
    return candidates, excluded


def choose(candidates: list[Candidate], count: int) -> list[Candidate]:
    """The first ``count`` distinct units of a ranking (each with its fastest option)."""
    chosen: list[Candidate] = []
    seen: set[int] = set()
    for candidate in candidates:
        if candidate.unit_id in seen:
            continue
        chosen.append(candidate)
        seen.add(candidate.unit_id)
        if len(chosen) == count:
            break
    return chosen
