"""Planner input and output: frozen dataclasses, no Django.

Days are indexes 0..days-1 into the planning horizon; minutes count from the start of the
crew's day at the depot. The caller folds maintenance windows, licence expiry and crew
rosters into `PlanUnit.available_days`, so the planner sees only "can this unit work on day d".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Point = tuple[float, float]  # (lat, lon) in degrees

# Scanning minutes per exam, patient on and off the table included. Typical mobile-unit
# throughput: CT ~4 patients/hour, MR ~1.5/hour (longer protocols), DX ~7/hour.
DEFAULT_MINUTES_PER_EXAM: Mapping[str, int] = {"CT": 15, "MR": 40, "DX": 8}
# Parking, power-up, network link and warm-up at each hospital, and packing away.
DEFAULT_SETUP_MINUTES = 30
# One priority's worth of weight is added per this many days a hospital is overdue on its
# service interval, so a long-neglected routine site can outrank a recent urgent one.
OVERDUE_DAYS_PER_PRIORITY = 30


@dataclass(frozen=True)
class PlanUnit:
    """A van as the planner sees it."""

    id: str
    modality: str
    capacity_per_day: int  # exams
    depot: Point
    available_days: frozenset[int]
    crew_minutes_per_day: int = 600  # travel out and back included


@dataclass(frozen=True)
class PlanRequest:
    """A hospital's request: N patients of one modality, to be served on one day in a window."""

    id: str
    hospital_id: str
    location: Point
    modality: str
    patients: int
    earliest_day: int
    latest_day: int  # inclusive
    priority: float = 1.0
    overdue_days: int = 0

    @property
    def weight(self) -> float:
        return self.priority * (1 + max(self.overdue_days, 0) / OVERDUE_DAYS_PER_PRIORITY)


@dataclass(frozen=True)
class LockedVisit:
    """A visit the dispatcher locked, or one already under way: every re-plan keeps it."""

    request_id: str
    unit_id: str
    day: int


@dataclass(frozen=True)
class PreviousVisit:
    """A visit of the last published plan: moving or dropping it costs a change."""

    request_id: str
    unit_id: str
    day: int


@dataclass(frozen=True)
class PlanInput:
    """Everything one planner run needs except the travel provider."""

    units: tuple[PlanUnit, ...]
    requests: tuple[PlanRequest, ...]
    days: int
    locked: tuple[LockedVisit, ...] = ()
    previous: tuple[PreviousVisit, ...] = ()
    minutes_per_exam: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MINUTES_PER_EXAM))
    setup_minutes: int = DEFAULT_SETUP_MINUTES

    def service_minutes(self, request: PlanRequest) -> int:
        return self.setup_minutes + request.patients * self.minutes_per_exam[request.modality]

    def can_serve(self, unit: PlanUnit, request: PlanRequest, day: int) -> bool:
        """Every per-visit hard constraint; route-level ones (capacity sum, crew minutes) aside."""
        return (
            unit.modality == request.modality
            and request.earliest_day <= day <= request.latest_day
            and 0 <= day < self.days
            and day in unit.available_days
            and request.patients <= unit.capacity_per_day
            and request.modality in self.minutes_per_exam
        )


@dataclass(frozen=True)
class PlannedVisit:
    """Unit `unit_id` serves `request_id` on `day` as stop `sequence` (1-based) of its route."""

    request_id: str
    unit_id: str
    day: int
    sequence: int
    arrive_minute: float
    depart_minute: float


@dataclass(frozen=True)
class PlanResult:
    """Visits, what could not be served and why, the objective's parts and solver stats."""

    visits: tuple[PlannedVisit, ...]
    unserved: Mapping[str, str]  # request id -> reason
    weighted_served: float
    km: float
    changes: int  # previous visits not kept on the same unit and day
    wall_seconds: float
    status: str
    solver: str
