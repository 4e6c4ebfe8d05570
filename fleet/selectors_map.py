"""Reads for the dispatcher's live fleet map (docs/fleet-map.md): who may watch, and what they see.

The map shows one operator's units (at their last GPS position, or at their depot when none
has arrived yet), the depots and the hospitals they serve, and each unit's visits of the day.
Everything is plain JSON-ready dicts so the page, the JSON endpoint and the websocket push
share one shape.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from core.choices import OrganisationKind, Role
from core.models import Organisation
from dicom.choices import OrderStatus
from dicom.models import Order
from fleet.choices import SiteKind, UnitStatus
from fleet.models import CrewMember, Site, Unit, Visit

MAP_ROLES = (Role.DISPATCHER, Role.ADMIN)

# Marker colours by unit status; the page's legend and the table use the same map.
STATUS_COLOURS: dict[str, str] = {
    UnitStatus.AVAILABLE: "#2e7d32",
    UnitStatus.EN_ROUTE: "#1565c0",
    UnitStatus.ON_SITE: "#6a1b9a",
    UnitStatus.SCANNING: "#00838f",
    UnitStatus.RETURNING: "#5c6bc0",
    UnitStatus.MAINTENANCE: "#ef6c00",
    UnitStatus.OUT_OF_SERVICE: "#b3261e",
    UnitStatus.WITHDRAWN: "#757575",
}


def map_operator_for_user(user: Any) -> Organisation | None:
    """The operator whose fleet ``user`` may watch, or None (hospital users, other roles, anonymous)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    organisation = user.organisation
    if organisation is None or organisation.kind != OrganisationKind.OPERATOR:
        return None
    if not (user.is_superuser or user.has_role(*MAP_ROLES)):
        return None
    return organisation


def map_group_name(operator_id: int) -> str:
    """The channel-layer group of one operator's map sockets."""
    return f"fleet-map-{operator_id}"


def map_units(*, operator_id: int) -> QuerySet[Unit]:
    """The operator's units with their latest position, by name."""
    return Unit.objects.filter(operator_id=operator_id).select_related("position").order_by("name")


def map_visits_on(*, operator_id: int, date: datetime.date) -> QuerySet[Visit]:
    """The operator's visits on ``date`` with their hospital, in unit then sequence order."""
    return (
        Visit.objects.filter(unit__operator_id=operator_id, date=date)
        .select_related("hospital")
        .order_by("unit_id", "sequence", "pk")
    )


def day_url(unit_id: int, date: datetime.date) -> str:
    try:
        return reverse("fleet-unit-day", kwargs={"unit_id": unit_id, "day": date.isoformat()})
    except NoReverseMatch:  # fleet.web.urls not included (yet): the details simply lack the link
        return ""


def map_unit_row(unit: Unit, *, now: datetime.datetime) -> dict[str, Any]:
    """One unit as the map draws it: where, in which state, and how fresh the position is."""
    position = getattr(unit, "position", None)
    if position is not None:
        latitude, longitude, source = position.latitude, position.longitude, "gps"
        last_seen: datetime.datetime | None = position.device_time
    else:
        latitude, longitude, source = unit.depot_latitude, unit.depot_longitude, "depot"
        last_seen = None
    return {
        "id": unit.pk,
        "name": unit.name,
        "modality": unit.modality,
        "modality_label": unit.get_modality_display(),
        "status": unit.status,
        "status_label": unit.get_status_display(),
        "colour": STATUS_COLOURS.get(unit.status, "#555555"),
        "latitude": latitude,
        "longitude": longitude,
        "source": source,
        "depot": unit.depot_name,
        "last_seen": last_seen.isoformat() if last_seen else None,
        "last_seen_age_s": max(0, int((now - last_seen).total_seconds())) if last_seen else None,
        "speed_mps": position.speed_mps if position is not None else None,
        "heading_deg": position.heading_deg if position is not None else None,
    }


def map_unit_rows(*, operator_id: int, unit_ids: list[int] | None = None, now=None) -> list[dict[str, Any]]:
    units = map_units(operator_id=operator_id)
    if unit_ids is not None:
        units = units.filter(pk__in=unit_ids)
    now = now or timezone.now()
    return [map_unit_row(unit, now=now) for unit in units]


def _visit_row(visit: Visit) -> dict[str, Any]:
    return {
        "id": visit.pk,
        "sequence": visit.sequence,
        "hospital": visit.hospital.name,
        "status": visit.status,
        "status_label": visit.get_status_display(),
    }


def map_places(*, operator_id: int) -> dict[str, list[dict[str, Any]]]:
    """Hospitals and depots to draw: fleet Sites first, then organisations/units not covered by one."""
    hospitals: list[dict[str, Any]] = []
    depots: list[dict[str, Any]] = []
    covered_orgs: set[int] = set()
    seen_depots: set[tuple[str, float, float]] = set()
    # Hospital sites are shared; a depot site is the operator's own (or nobody's in particular).
    sites = Site.objects.filter(
        Q(kind=SiteKind.HOSPITAL) | Q(organisation__isnull=True) | Q(organisation_id=operator_id)
    )
    for site in sites.order_by("kind", "name"):
        row = {"name": site.name, "latitude": site.latitude, "longitude": site.longitude, "source": "site"}
        if site.kind == SiteKind.HOSPITAL:
            hospitals.append(row)
            if site.organisation_id is not None:
                covered_orgs.add(site.organisation_id)
        else:
            depots.append(row)
            seen_depots.add((site.name, round(site.latitude, 4), round(site.longitude, 4)))
    organisations = Organisation.objects.filter(
        kind=OrganisationKind.HOSPITAL, is_active=True, latitude__isnull=False, longitude__isnull=False
    ).exclude(pk__in=covered_orgs)
    for org in organisations.order_by("name"):
        hospitals.append(
            {"name": org.name, "latitude": org.latitude, "longitude": org.longitude, "source": "organisation"}
        )
    for unit in map_units(operator_id=operator_id):
        key = (unit.depot_name, round(unit.depot_latitude, 4), round(unit.depot_longitude, 4))
        if key in seen_depots:
            continue
        seen_depots.add(key)
        depots.append(
            {
                "name": unit.depot_name,
                "latitude": unit.depot_latitude,
                "longitude": unit.depot_longitude,
                "source": "unit",
            }
        )
    return {"hospitals": hospitals, "depots": depots}


def map_snapshot(*, operator: Organisation, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Everything the map page draws, as served by the JSON endpoint and embedded in the page."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    visits: dict[int, list[dict[str, Any]]] = {}
    for visit in map_visits_on(operator_id=operator.pk, date=today):
        visits.setdefault(visit.unit_id, []).append(_visit_row(visit))
    units = []
    for row in map_unit_rows(operator_id=operator.pk, now=now):
        row["visits_today"] = visits.get(row["id"], [])
        row["day_url"] = day_url(row["id"], today)
        units.append(row)
    return {
        "operator": {"id": operator.pk, "name": operator.name},
        "generated_at": now.isoformat(),
        "date": today.isoformat(),
        "units": units,
        **map_places(operator_id=operator.pk),
        "statuses": [
            {"value": value, "label": label, "colour": STATUS_COLOURS.get(value, "#555555")}
            for value, label in UnitStatus.choices
        ],
    }


def unit_for_day_view(*, operator_id: int, unit_id: int) -> Unit | None:
    """The unit if it belongs to the operator; None otherwise (the view answers 404 either way)."""
    return Unit.objects.filter(operator_id=operator_id, pk=unit_id).first()


def unit_day(*, unit: Unit, date: datetime.date) -> dict[str, Any]:
    """The unit's visits that day, each with its orders, and exams done against booked.

    Orders are matched to a visit by unit, date and hospital; orders of that day at a hospital
    with no visit are listed apart. The patient fields are not even loaded: the day view is a
    logistics page that shows accession numbers and procedures, so it needs no audited access.
    """
    visits = list(
        Visit.objects.filter(unit=unit, date=date)
        .select_related("hospital")
        .prefetch_related(Prefetch("crew", queryset=CrewMember.objects.order_by("full_name")))
        .order_by("sequence", "pk")
    )
    orders_by_hospital: dict[int, list[Order]] = {}
    orders = (
        Order.objects.filter(unit=unit, scheduled_date=date)
        .select_related("hospital")
        .defer("patient_id", "patient_name", "patient_sex", "patient_birth_date")
    )
    for order in orders.order_by("hospital__name", "accession_number"):
        orders_by_hospital.setdefault(order.hospital_id, []).append(order)
    done_statuses = {OrderStatus.ACQUIRED}
    rows = []
    for visit in visits:
        its_orders = orders_by_hospital.get(visit.hospital_id, [])
        live = [order for order in its_orders if order.status != OrderStatus.CANCELLED]
        rows.append(
            {
                "visit": visit,
                "crew": list(visit.crew.all()),
                "orders": its_orders,
                "done": sum(1 for order in live if order.status in done_statuses),
                "booked": visit.exams_booked or len(live),
            }
        )
    visited = {visit.hospital_id for visit in visits}
    unplanned = [
        order
        for hospital_id, its in orders_by_hospital.items()
        if hospital_id not in visited
        for order in its
    ]
    return {
        "visits": rows,
        "unplanned_orders": unplanned,
        "done": sum(row["done"] for row in rows),
        "booked": sum(row["booked"] for row in rows),
    }
