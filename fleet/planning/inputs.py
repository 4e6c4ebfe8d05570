"""From the database to a planner input: which unit can work which day, which requests to place.

A unit works day d of the horizon when it is not out of service, every licence its modality
needs is valid on d, and no maintenance window overlaps d's working hours; the planner never
sees those rules, only ``available_days``. Requests are the operator's submitted or planned
ones whose window overlaps the horizon (clipped to it), weighted by priority and by how overdue
the hospital is on its contract. Visits already under way (en route, on site) for a request
are locked; visits still planned are the previous plan, which a re-plan moves only at a cost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from fleet.choices import UnitStatus, VisitStatus
from fleet.models import MaintenanceWindow, Unit
from fleet.models.planning import PRIORITY_WEIGHT
from fleet.planning.model import LockedVisit, PlanInput, PlanRequest, PlanUnit, PreviousVisit
from fleet.selectors import unit_licence_problems
from fleet.selectors_requests import hospitals_overdue, service_requests_to_plan

WORK_HOURS = (dt.time(7, 0), dt.time(19, 0))  # a maintenance window touching these blocks the day
UNDER_WAY = (VisitStatus.EN_ROUTE, VisitStatus.ON_SITE)


@dataclass(frozen=True)
class PlanHorizon:
    start: dt.date
    days: int

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def index(self, day: dt.date) -> int:
        return (day - self.start).days


def _blocked_by_maintenance(windows: list[MaintenanceWindow], day: dt.date) -> bool:
    zone = timezone.get_current_timezone()
    opens = dt.datetime.combine(day, WORK_HOURS[0], tzinfo=zone)
    closes = dt.datetime.combine(day, WORK_HOURS[1], tzinfo=zone)
    return any(w.starts_at < closes and w.ends_at > opens for w in windows)


def plan_units(*, operator_id: int, horizon: PlanHorizon) -> tuple[PlanUnit, ...]:
    end = horizon.day(horizon.days)
    units = Unit.objects.filter(operator_id=operator_id).prefetch_related("licences").order_by("pk")
    windows: dict[int, list[MaintenanceWindow]] = {}
    for window in MaintenanceWindow.objects.filter(
        unit__operator_id=operator_id,
        ends_at__gt=dt.datetime.combine(horizon.start, dt.time.min, tzinfo=dt.UTC),
    ).filter(starts_at__lt=dt.datetime.combine(end, dt.time.max, tzinfo=dt.UTC)):
        windows.setdefault(window.unit_id, []).append(window)
    planned = []
    for unit in units:
        if unit.status == UnitStatus.OUT_OF_SERVICE:
            available: frozenset[int] = frozenset()
        else:
            available = frozenset(
                d
                for d in range(horizon.days)
                if not unit_licence_problems(unit, on=horizon.day(d))
                and not _blocked_by_maintenance(windows.get(unit.pk, []), horizon.day(d))
            )
        planned.append(
            PlanUnit(
                id=str(unit.pk),
                modality=unit.modality,
                capacity_per_day=unit.capacity_per_day,
                depot=(unit.depot_latitude, unit.depot_longitude),
                available_days=available,
            )
        )
    return tuple(planned)


def plan_input_build(*, operator_id: int, start: dt.date, days: int) -> PlanInput:
    """The planner input for ``operator_id`` over ``days`` days from ``start``."""
    horizon = PlanHorizon(start=start, days=days)
    overdue = {
        (row.hospital_id, row.modality): row.days_overdue
        for row in hospitals_overdue(on=start, operator_id=operator_id)
    }
    requests: list[PlanRequest] = []
    locked: list[LockedVisit] = []
    previous: list[PreviousVisit] = []
    for sr in service_requests_to_plan(operator_id=operator_id, start=start, end=horizon.day(days - 1)):
        hospital = sr.hospital
        if hospital.latitude is None or hospital.longitude is None:
            continue  # nowhere to drive to; the dispatcher sees it unplanned
        requests.append(
            PlanRequest(
                id=str(sr.pk),
                hospital_id=str(hospital.pk),
                location=(hospital.latitude, hospital.longitude),
                modality=sr.modality,
                patients=sr.patients,
                earliest_day=max(0, horizon.index(sr.earliest_date)),
                latest_day=min(days - 1, horizon.index(sr.latest_date)),
                priority=float(PRIORITY_WEIGHT[sr.priority]),
                overdue_days=overdue.get((hospital.pk, sr.modality), 0),
            )
        )
        visit = sr.visit
        if visit is not None and 0 <= horizon.index(visit.date) < days:
            request_id, unit_id, day = str(sr.pk), str(visit.unit_id), horizon.index(visit.date)
            if visit.status in UNDER_WAY:
                locked.append(LockedVisit(request_id=request_id, unit_id=unit_id, day=day))
            else:
                previous.append(PreviousVisit(request_id=request_id, unit_id=unit_id, day=day))
    return PlanInput(
        units=plan_units(operator_id=operator_id, horizon=horizon),
        requests=tuple(requests),
        days=days,
        locked=tuple(locked),
        previous=tuple(previous),
    )
