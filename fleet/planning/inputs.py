"""From the database to a planner input: which unit can work which day, which requests to place.

A unit works day d of the horizon when it is not out of service or withdrawn (nor excluded by a
what-if), every licence its modality needs is valid on d, no maintenance window overlaps d's
working hours, it is not sent to an emergency incident that day
(``fleet.selectors_surge.units_on_incident``), and its assigned crew includes someone qualified
for its modality (the visit crew rule, ``CREW_REQUIREMENT``) whose credential is valid on d; the
planner never sees those rules, only ``available_days``. Requests are the operator's submitted
or planned ones whose window overlaps the horizon (clipped to it), weighted by priority and by
how overdue the hospital is on its contract, and scheduled ones whose visit falls inside it.
Visits already under way (en route, on site) for a request are locked, and so are visits the
dispatcher locked (``Visit.locked``) and the locked entries of a base plan under review; visits
still planned are the previous plan, which a re-plan moves only at a cost. A lock whose unit
cannot work that day (it broke down) cannot hold: it becomes a previous visit, to be moved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from fleet.choices import UnitStatus, VisitStatus
from fleet.models import CrewCredential, MaintenanceWindow, Plan, Unit
from fleet.models.planning import PRIORITY_WEIGHT
from fleet.planning.model import LockedVisit, PlanInput, PlanRequest, PlanUnit, PreviousVisit
from fleet.selectors import CREW_REQUIREMENT, unit_licence_problems
from fleet.selectors_requests import hospitals_overdue, service_requests_to_plan
from fleet.selectors_surge import units_on_incident

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


def crew_qualified_until(units: list[Unit]) -> dict[int, dt.date]:
    """Per unit: the last day its assigned crew holds the credential its modality needs
    (in a role allowed to use it); units with no such crew are absent."""
    until: dict[int, dt.date] = {}
    kinds = {kind for kind, _, _ in CREW_REQUIREMENT.values()}
    credentials = CrewCredential.objects.filter(crew_member__unit__in=units, kind__in=kinds).select_related(
        "crew_member"
    )
    modality = {unit.pk: unit.modality for unit in units}
    for credential in credentials:
        member = credential.crew_member
        unit_id = member.unit_id
        if unit_id is None:  # cannot happen (filtered on the unit), but the column is nullable
            continue
        kind, roles, _ = CREW_REQUIREMENT[modality[unit_id]]
        if credential.kind != kind or member.role not in roles:
            continue
        if credential.expires_on > until.get(unit_id, dt.date.min):
            until[unit_id] = credential.expires_on
    return until


def plan_units(
    *, operator_id: int, horizon: PlanHorizon, excluded: frozenset[int] = frozenset()
) -> tuple[PlanUnit, ...]:
    end = horizon.day(horizon.days)
    units = list(
        Unit.objects.filter(operator_id=operator_id)
        .exclude(status=UnitStatus.WITHDRAWN)
        .prefetch_related("licences")
        .order_by("pk")
    )
    crewed_until = crew_qualified_until(units)
    on_incident = units_on_incident(operator_id=operator_id, start=horizon.start, days=horizon.days)
    windows: dict[int, list[MaintenanceWindow]] = {}
    for window in MaintenanceWindow.objects.filter(
        unit__operator_id=operator_id,
        ends_at__gt=dt.datetime.combine(horizon.start, dt.time.min, tzinfo=dt.UTC),
    ).filter(starts_at__lt=dt.datetime.combine(end, dt.time.max, tzinfo=dt.UTC)):
        windows.setdefault(window.unit_id, []).append(window)
    planned = []
    for unit in units:
        if unit.status == UnitStatus.OUT_OF_SERVICE or unit.pk in excluded:
            available: frozenset[int] = frozenset()
        else:
            crew_until = crewed_until.get(unit.pk, dt.date.min)
            available = frozenset(
                d
                for d in range(horizon.days)
                if horizon.day(d) <= crew_until
                and d not in on_incident.get(unit.pk, ())
                and not unit_licence_problems(unit, on=horizon.day(d))
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


def _base_plan_locks(base_plan: Plan | None) -> dict[str, tuple[str, int]]:
    """request id -> (unit id, day index) of the base plan's locked entries, on the base's horizon."""
    if base_plan is None:
        return {}
    return {
        str(entry["request_id"]): (
            str(entry["unit_id"]),
            base_plan.start_date.toordinal() + int(entry["day"]),
        )
        for entry in base_plan.visits
        if entry.get("locked")
    }


def plan_input_build(
    *,
    operator_id: int,
    start: dt.date,
    days: int,
    excluded_units: frozenset[int] = frozenset(),
    base_plan: Plan | None = None,
) -> PlanInput:
    """The planner input for ``operator_id`` over ``days`` days from ``start``.

    ``excluded_units`` work no day (a what-if without them); ``base_plan``'s locked entries
    are kept where they still fit (same request, unit and date, inside this horizon).
    """
    horizon = PlanHorizon(start=start, days=days)
    units = plan_units(operator_id=operator_id, horizon=horizon, excluded=excluded_units)
    works = {(unit.id, day) for unit in units for day in unit.available_days}
    base_locks = _base_plan_locks(base_plan)
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
        request_id = str(sr.pk)
        if visit is not None and 0 <= horizon.index(visit.date) < days:
            unit_id, day = str(visit.unit_id), horizon.index(visit.date)
            if (visit.status in UNDER_WAY or visit.locked) and (unit_id, day) in works:
                locked.append(LockedVisit(request_id=request_id, unit_id=unit_id, day=day))
            else:
                previous.append(PreviousVisit(request_id=request_id, unit_id=unit_id, day=day))
        elif request_id in base_locks:
            unit_id, ordinal = base_locks[request_id]
            day = ordinal - start.toordinal()
            if 0 <= day < days and (unit_id, day) in works:
                locked.append(LockedVisit(request_id=request_id, unit_id=unit_id, day=day))
    return PlanInput(
        units=units,
        requests=tuple(requests),
        days=days,
        locked=tuple(locked),
        previous=tuple(previous),
    )
