"""What a geofence event does: the hospital visit's arrival/departure and the unit's status.

Telemetry never fails a batch because of a status rule: a transition the unit's state machine
refuses is logged and skipped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from core.exceptions import DomainError
from core.services import audit_record
from fleet.choices import GeofenceEventKind, SiteKind, UnitStatus, VisitStatus
from fleet.models import GeofenceEvent, Unit, Visit
from fleet.services.requests import service_requests_fulfil_visit
from fleet.services.units import unit_transition

logger = logging.getLogger(__name__)


def _move_unit(unit: Unit, to_status: str, reason: str) -> bool:
    """Ask the unit state machine for ``to_status``; True if it moved. Refusals are logged."""
    try:
        # A savepoint, so a refused transition leaves nothing half-written in the batch.
        with transaction.atomic():
            moved = unit_transition(unit=unit, to_status=to_status, actor=None, reason=reason)
    except DomainError as exc:
        logger.info("geofence: unit %s not moved to %s: %s", unit.pk, to_status, exc.message)
        return False
    unit.status = moved.status
    return True


def _unit_status(unit: Unit) -> str:
    # Read again: an earlier event of the same batch (or a dispatcher) may have moved it.
    unit.status = Unit.objects.values_list("status", flat=True).get(pk=unit.pk)
    return unit.status


def _visit_arrive(event: GeofenceEvent) -> Visit | None:
    hospital_id = event.site.organisation_id
    if hospital_id is None:
        return None
    day = timezone.localdate(event.at)
    visit = (
        Visit.objects.filter(
            unit_id=event.unit_id,
            hospital_id=hospital_id,
            date=day,
            status__in=[VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE],
        )
        .order_by("sequence", "pk")
        .first()
    )
    if visit is None:
        return None
    changes: dict = {}
    if visit.status != VisitStatus.ON_SITE:
        changes["status"] = VisitStatus.ON_SITE
    if visit.arrived_at is None:
        changes["arrived_at"] = event.at
    # Compare-and-swap on the status read, so a dispatcher's concurrent cancel wins cleanly.
    if changes and Visit.objects.filter(pk=visit.pk, status=visit.status).update(**changes):
        for name, value in changes.items():
            setattr(visit, name, value)
        audit_record(
            actor=None,
            action="visit.arrive",
            obj=visit,
            details={"site": event.site.pk, "at": event.at, "source": "geofence"},
        )
        service_requests_fulfil_visit(visit=visit)
    return visit


def _visit_depart(event: GeofenceEvent) -> Visit | None:
    hospital_id = event.site.organisation_id
    if hospital_id is None:
        return None
    day = timezone.localdate(event.at)
    # A visit that ran past midnight is still the one being left.
    visit = (
        Visit.objects.filter(
            unit_id=event.unit_id,
            hospital_id=hospital_id,
            date__in=[day, day - timedelta(days=1)],
            status=VisitStatus.ON_SITE,
        )
        .order_by("-date", "-sequence", "-pk")
        .first()
    )
    if visit is None:
        return None
    changes: dict = {"status": VisitStatus.DONE}
    if visit.departed_at is None:
        changes["departed_at"] = event.at
    if Visit.objects.filter(pk=visit.pk, status=VisitStatus.ON_SITE).update(**changes):
        for name, value in changes.items():
            setattr(visit, name, value)
        audit_record(
            actor=None,
            action="visit.depart",
            obj=visit,
            details={"site": event.site.pk, "at": event.at, "source": "geofence"},
        )
        service_requests_fulfil_visit(visit=visit)
    return visit


def geofence_effect_apply(*, unit: Unit, event: GeofenceEvent) -> None:
    """Apply one (not yet saved) event's effects; sets ``event.visit`` when a visit is touched."""
    site = event.site
    arrival = event.kind == GeofenceEventKind.ARRIVAL
    verb = "arrived at" if arrival else "departed from"
    reason = f"geofence: {verb} {site.name}"
    if site.kind == SiteKind.HOSPITAL:
        event.visit = _visit_arrive(event) if arrival else _visit_depart(event)
        target = UnitStatus.ON_SITE if arrival else UnitStatus.RETURNING
        if _unit_status(unit) != target:
            _move_unit(unit, target, reason)
    elif arrival:
        if _unit_status(unit) == UnitStatus.RETURNING:
            _move_unit(unit, UnitStatus.AVAILABLE, reason)
    elif _unit_status(unit) == UnitStatus.AVAILABLE:
        _move_unit(unit, UnitStatus.EN_ROUTE, reason)
