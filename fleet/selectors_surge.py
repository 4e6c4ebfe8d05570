"""Emergency surge reads: which units can reach an incident first, and which are busy on one.

The ETA model (docs/surge.md) is a pure function, ``fleet.surge_eta.rank_units``, over plain
data (``SurgeUnit``); ``surge_ranking`` loads that data from the database and calls it.

ETA = minutes from ``at`` (now) until the unit arrives at the incident location:

* idle (available, returning) or en route to a visit: travel from its latest position
  (``UnitPosition``; else its depot);
* at a hospital (on site, scanning): ``PACK_UP_MINUTES`` to pack away, then travel from its
  position (else the visit's hospital, else the depot): option "leave_now"; or, when exams of
  the current visit remain, also "finish_current": remaining exams x minutes per exam of the
  modality (``DEFAULT_MINUTES_PER_EXAM``), pack away, then travel. Remaining exams = booked
  (``Visit.exams_booked``, else the visit's live orders) minus orders already acquired.

Travel is ``GeodesicTravel`` (geodesic x 1.3 road factor at 50 km/h). Units out of service,
withdrawn, in maintenance (status or window), without valid licences or already on another open
incident are not offered; they are listed as excluded with the reasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Count, Prefetch, Q
from django.utils import timezone

from dicom.choices import OrderStatus
from dicom.models import Order
from fleet.choices import Modality, VisitStatus
from fleet.models import Incident, IncidentStatus, IncidentUnit, MaintenanceWindow, Unit, Visit
from fleet.planning.model import Point
from fleet.planning.travel import GeodesicTravel
from fleet.selectors import unit_dispatch_blockers
from fleet.surge_eta import AT_SITE_STATUSES, SurgeUnit, SurgeVisit, choose, rank_units

OPEN_INCIDENT_STATUSES = (IncidentStatus.DECLARED, IncidentStatus.DISPATCHED)
# Routine visits an incident cancels: not yet started.
CANCELLABLE_VISIT_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE)


# --- loading -------------------------------------------------------------------------------------


def _current_visits(units: list[Unit], day: dt.date) -> dict[int, SurgeVisit]:
    """The visit each unit at a hospital works at today, with its remaining exams."""
    at_site = [unit.pk for unit in units if unit.status in AT_SITE_STATUSES]
    if not at_site:
        return {}
    visits = (
        Visit.objects.filter(unit_id__in=at_site, date=day)
        .exclude(status__in=(VisitStatus.DONE, VisitStatus.CANCELLED))
        .select_related("hospital")
        .order_by("unit_id", "sequence", "pk")
    )
    current: dict[int, Visit] = {}
    for visit in visits:
        best = current.get(visit.unit_id)
        # On site first, then one arrived at and not left, then the first of the day.
        rank = (
            visit.status != VisitStatus.ON_SITE,
            visit.arrived_at is None or visit.departed_at is not None,
        )
        if best is None or rank < (
            best.status != VisitStatus.ON_SITE,
            best.arrived_at is None or best.departed_at is not None,
        ):
            current[visit.unit_id] = visit
    result = {}
    for unit_id, visit in current.items():
        orders = Order.objects.filter(
            unit_id=unit_id, scheduled_date=day, hospital_id=visit.hospital_id
        ).aggregate(
            live=Count("pk", filter=~Q(status=OrderStatus.CANCELLED)),
            done=Count("pk", filter=Q(status=OrderStatus.ACQUIRED)),
        )
        booked = visit.exams_booked or orders["live"]
        hospital = visit.hospital
        point = (
            (hospital.latitude, hospital.longitude)
            if hospital.latitude is not None and hospital.longitude is not None
            else None
        )
        result[unit_id] = SurgeVisit(visit.pk, hospital.name, point, max(0, booked - orders["done"]))
    return result


def _busy_elsewhere(operator_id: int, exclude_incident_id: int | None) -> dict[int, int]:
    rows = IncidentUnit.objects.filter(
        incident__operator_id=operator_id,
        incident__status__in=OPEN_INCIDENT_STATUSES,
        released_at__isnull=True,
    )
    if exclude_incident_id is not None:
        rows = rows.exclude(incident_id=exclude_incident_id)
    return dict(rows.values_list("unit_id", "incident_id"))


def surge_units(*, operator_id: int, modalities: Iterable[str], at: dt.datetime, exclude_incident_id=None):
    """The operator's units of ``modalities`` as ``SurgeUnit`` (plain data for ``rank_units``)."""
    units = list(
        Unit.objects.filter(operator_id=operator_id, modality__in=list(modalities))
        .select_related("position")
        .prefetch_related(
            "licences",
            Prefetch("maintenance_windows", queryset=MaintenanceWindow.objects.filter(ends_at__gt=at)),
        )
        .order_by("name")
    )
    current = _current_visits(units, timezone.localdate(at))
    elsewhere = _busy_elsewhere(operator_id, exclude_incident_id)
    result = []
    for unit in units:
        position = getattr(unit, "position", None)
        result.append(
            SurgeUnit(
                id=unit.pk,
                name=unit.name,
                modality=unit.modality,
                status=unit.status,
                position=(position.latitude, position.longitude) if position is not None else None,
                depot=(unit.depot_latitude, unit.depot_longitude),
                blockers=tuple(unit_dispatch_blockers(unit, at=at)),
                other_incident=elsewhere.get(unit.pk),
                current_visit=current.get(unit.pk),
            )
        )
    return result


def surge_ranking(
    *,
    incident: Incident | None = None,
    operator_id: int | None = None,
    location: Point | None = None,
    needs: Mapping[str, int] | None = None,
    at: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Per needed modality: ``{modality, needed, candidates, chosen, excluded}`` (JSON-ready).

    Give an ``incident`` or its ``operator_id``, ``location`` (lat, lon) and ``needs``.
    ``chosen`` are the unit ids of the first ``needed`` distinct units of ``candidates``.
    """
    at = at or timezone.now()
    if incident is not None:
        operator_id, location, needs = (
            incident.operator_id,
            (incident.latitude, incident.longitude),
            incident.needs,
        )
    if operator_id is None or location is None or needs is None:
        raise TypeError("surge_ranking needs an incident, or operator_id, location and needs")
    units = surge_units(
        operator_id=operator_id,
        modalities=needs.keys(),
        at=at,
        exclude_incident_id=incident.pk if incident is not None else None,
    )
    travel = GeodesicTravel()
    result = []
    for modality in [m for m in Modality.values if m in needs]:
        candidates, excluded = rank_units(units, target=location, modality=modality, travel=travel)
        result.append(
            {
                "modality": modality,
                "needed": needs[modality],
                "candidates": [c.as_dict(at=at) for c in candidates],
                "chosen": [c.unit_id for c in choose(candidates, needs[modality])],
                "excluded": [e.as_dict() for e in excluded],
            }
        )
    return result


def incident_window(incident: Incident, *, at: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    """[first, end) days whose routine visits the incident takes: from the start day (not before
    today: past visits are history) for ``days`` days."""
    start = timezone.localdate(incident.starts_at)
    today = timezone.localdate(at or timezone.now())
    return max(start, today), start + dt.timedelta(days=incident.days)


def visits_to_cancel(*, unit_ids: Iterable[int], first: dt.date, end: dt.date):
    """Routine visits of ``unit_ids`` not yet started with first <= date < end."""
    return (
        Visit.objects.filter(
            unit_id__in=list(unit_ids), date__gte=first, date__lt=end, status__in=CANCELLABLE_VISIT_STATUSES
        )
        .select_related("hospital", "unit")
        .prefetch_related("service_requests")
        .order_by("date", "unit__name", "sequence", "pk")
    )


def visit_row(visit: Visit) -> dict[str, Any]:
    return {
        "visit_id": visit.pk,
        "unit_id": visit.unit_id,
        "unit_name": visit.unit.name,
        "hospital_id": visit.hospital_id,
        "hospital_name": visit.hospital.name,
        "hospital_latitude": visit.hospital.latitude,
        "hospital_longitude": visit.hospital.longitude,
        "date": visit.date.isoformat(),
        "status": visit.status,
        "locked": visit.locked,
        "exams_booked": visit.exams_booked,
        "requests": sorted(request.pk for request in visit.service_requests.all()),
    }


def units_on_incident(*, operator_id: int, start: dt.date, days: int) -> dict[int, set[int]]:
    """Unit id -> day indexes (0..days-1 from ``start``) it is busy on incident work.

    A unit sent to a dispatched incident is busy from the earlier of the start day and the day it
    was sent, to the start day + ``days`` - 1 or, once released, its release day; an incident still
    open past its expected length keeps its units busy through today.
    """
    today = timezone.localdate()
    rows = IncidentUnit.objects.filter(
        incident__operator_id=operator_id,
        incident__status__in=(IncidentStatus.DISPATCHED, IncidentStatus.CLOSED),
    ).select_related("incident")
    busy: dict[int, set[int]] = {}
    for row in rows:
        incident = row.incident
        begins = timezone.localdate(incident.starts_at)
        first = min(begins, timezone.localdate(row.dispatched_at))
        if row.released_at is not None:
            last = timezone.localdate(row.released_at)
        elif incident.status == IncidentStatus.CLOSED:
            continue
        else:
            last = max(begins + dt.timedelta(days=incident.days - 1), today)
        indexes = {d for d in range(days) if first <= start + dt.timedelta(days=d) <= last}
        if indexes:
            busy.setdefault(row.unit_id, set()).update(indexes)
    return busy


def incident_list_for_operator(*, operator_id: int):
    return Incident.objects.filter(operator_id=operator_id).select_related("hospital", "created_by")


def incident_get_for_operator(*, operator_id: int, pk: int) -> Incident | None:
    return incident_list_for_operator(operator_id=operator_id).filter(pk=pk).first()


def incident_assignments(incident: Incident):
    return incident.units.select_related("unit", "unit__position").order_by("eta_minutes", "unit__name")
