"""Reads for the dispatcher's plan review pages: the operator's plans, and one plan as a timeline.

A stored ``Plan`` keeps ids only (``visits`` entries name a request and a unit by id, days as
indexes from ``start_date``, minutes from the start of the crew's day); ``plan_timeline`` joins
them with unit, hospital and request names into plain JSON-ready dicts that the page's table,
its vis-timeline and its route map share. Queries only: nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet

from core.access import get_for_user, scope_for_user, user_is_platform_wide
from core.models import Organisation, User
from fleet.access import REGISTER_WRITER_ROLES
from fleet.choices import UnitStatus
from fleet.models import Plan, PlanStatus, ServiceRequest, Unit
from fleet.planning.inputs import WORK_HOURS
from fleet.selectors import MODALITY_SHORT
from fleet.selectors_map import map_operator_for_user

PLAN_LIST_LIMIT = 20
# The crew's day (minute 0 of a route) starts when the working hours open, at the depot.
DAY_STARTS = WORK_HOURS[0]
# vis-timeline item colours by request priority; the table and the legend use the same labels.
PRIORITY_CLASS = {
    "routine": "priority-routine",
    "urgent": "priority-urgent",
    "emergency": "priority-emergency",
}


def plan_operator_for_user(user: User | Any) -> Organisation | None:
    """The operator whose plans ``user`` may review (its dispatchers and administrators), or None."""
    return map_operator_for_user(user)


def plan_list_for_user(user: User | Any) -> QuerySet[Plan]:
    """Plans the user may address through the API: their operator's, for its dispatchers and
    administrators (``core.access``: a plan belongs to its operator alone); superusers all;
    anyone else none, so a plan id answers 404."""
    plans = Plan.objects.all()
    if not user_is_platform_wide(user) and not (
        getattr(user, "is_authenticated", False) and user.has_role(*REGISTER_WRITER_ROLES)
    ):
        return plans.none()
    return scope_for_user(user, plans)


def plan_get_for_user(user: User | Any, pk: int) -> Plan:
    """One plan of ``plan_list_for_user``, else ``NotFound`` (another operator's is not revealed)."""
    return get_for_user(user, plan_list_for_user(user), pk=pk)


def plans_recent(*, operator_id: int, limit: int = PLAN_LIST_LIMIT) -> QuerySet[Plan]:
    """The operator's most recent plans, newest first (the big JSON result columns deferred)."""
    return (
        Plan.objects.filter(operator_id=operator_id)
        .select_related("created_by")
        .defer("inputs", "visits", "unserved")
        .order_by("-created_at", "-id")[:limit]
    )


def plan_for_operator(*, operator_id: int, plan_id: int) -> Plan | None:
    """The operator's plan ``plan_id``, or None (another operator's plan is not revealed)."""
    return Plan.objects.filter(pk=plan_id, operator_id=operator_id).first()


def plan_is_finished(plan: Plan) -> bool:
    return plan.status in (PlanStatus.DONE, PlanStatus.FAILED)


def _clock(day: dt.date, minute: float) -> dt.datetime:
    return dt.datetime.combine(day, DAY_STARTS) + dt.timedelta(minutes=round(float(minute)))


def _int_ids(values: Any) -> set[int]:
    ids = set()
    for value in values:
        try:
            ids.add(int(value))
        except (TypeError, ValueError):
            continue
    return ids


def plan_timeline(plan: Plan) -> dict[str, Any]:
    """The plan as the review page draws it: units (timeline groups), visits (items), unserved
    requests with reasons, stats and the publish state. Dates and times are local ISO strings."""
    visits: list[dict[str, Any]] = list(plan.visits or [])
    unserved: dict[str, str] = dict(plan.unserved or {})
    request_ids = _int_ids([v.get("request_id") for v in visits] + list(unserved))
    requests = {
        str(sr.pk): sr for sr in ServiceRequest.objects.filter(pk__in=request_ids).select_related("hospital")
    }
    unit_ids = _int_ids(v.get("unit_id") for v in visits)
    units = {
        str(unit.pk): unit
        # Every working unit of the operator is a row (an idle one shows as such), plus any unit
        # the plan uses that has been withdrawn since.
        for unit in Unit.objects.filter(
            (Q(operator_id=plan.operator_id) & ~Q(status=UnitStatus.WITHDRAWN)) | Q(pk__in=unit_ids)
        ).order_by("name")
    }

    items: list[dict[str, Any]] = []
    for entry in sorted(
        visits, key=lambda v: (int(v.get("day", 0)), str(v.get("unit_id")), int(v.get("sequence", 0)))
    ):
        request_id = str(entry.get("request_id"))
        unit_id = str(entry.get("unit_id"))
        sr = requests.get(request_id)
        unit = units.get(unit_id)
        date = plan.start_date + dt.timedelta(days=int(entry.get("day", 0)))
        arrive = _clock(date, entry.get("arrive_minute", 0))
        depart = _clock(date, entry.get("depart_minute", entry.get("arrive_minute", 0)))
        modality = sr.modality if sr else (unit.modality if unit else "")
        hospital = sr.hospital if sr else None
        items.append(
            {
                "request_id": request_id,
                "unit_id": unit_id,
                "unit": unit.name if unit else f"unit {unit_id}",
                "day": int(entry.get("day", 0)),
                "date": date.isoformat(),
                "sequence": int(entry.get("sequence", 0)),
                "start": arrive.isoformat(),
                "end": max(depart, arrive + dt.timedelta(minutes=1)).isoformat(),
                "arrive": arrive.strftime("%H:%M"),
                "depart": depart.strftime("%H:%M"),
                "hospital": hospital.name if hospital else f"request {request_id}",
                "hospital_id": hospital.pk if hospital else None,
                "latitude": hospital.latitude if hospital else None,
                "longitude": hospital.longitude if hospital else None,
                "patients": sr.patients if sr else None,
                "modality": MODALITY_SHORT.get(modality, modality),
                "priority": sr.priority if sr else "",
                "priority_label": sr.get_priority_display() if sr else "",
                "priority_class": PRIORITY_CLASS.get(sr.priority, "") if sr else "",
                "locked": bool(entry.get("locked")),
            }
        )

    groups = [
        {
            "id": unit_id,
            "name": unit.name,
            "modality": MODALITY_SHORT.get(unit.modality, unit.modality),
            "depot": unit.depot_name,
            "depot_latitude": unit.depot_latitude,
            "depot_longitude": unit.depot_longitude,
            "visits": sum(1 for item in items if item["unit_id"] == unit_id),
        }
        for unit_id, unit in units.items()
    ]

    unserved_rows = []
    for request_id, reason in sorted(unserved.items(), key=lambda kv: kv[0]):
        sr = requests.get(str(request_id))
        unserved_rows.append(
            {
                "request_id": str(request_id),
                "reason": str(reason),
                "hospital": sr.hospital.name if sr else f"request {request_id}",
                "modality": MODALITY_SHORT.get(sr.modality, sr.modality) if sr else "",
                "patients": sr.patients if sr else None,
                "priority_label": sr.get_priority_display() if sr else "",
                "window": f"{sr.earliest_date.isoformat()} to {sr.latest_date.isoformat()}" if sr else "",
            }
        )

    # Each unit's route per day, depot to depot, for the map.
    routes = []
    by_route: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in items:
        by_route.setdefault((item["unit_id"], item["date"]), []).append(item)
    for (unit_id, route_date), stops in sorted(by_route.items()):
        unit = units.get(unit_id)
        points = [[s["latitude"], s["longitude"]] for s in sorted(stops, key=lambda s: s["sequence"])]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if unit is not None:
            depot = [unit.depot_latitude, unit.depot_longitude]
            points = [depot, *points, depot]
        routes.append({"unit_id": unit_id, "date": route_date, "points": points})

    stats = dict(plan.stats or {})
    end = plan.start_date + dt.timedelta(days=max(plan.days, 1))
    return {
        "plan": {
            "id": plan.pk,
            "status": plan.status,
            "kind": plan.kind,
            "start_date": plan.start_date.isoformat(),
            "end_date": (end - dt.timedelta(days=1)).isoformat(),
            "days": plan.days,
            "published": plan.published_at is not None,
            "published_at": plan.published_at.isoformat() if plan.published_at else None,
        },
        "window": {
            "start": dt.datetime.combine(plan.start_date, dt.time.min).isoformat(),
            "end": dt.datetime.combine(end, dt.time.min).isoformat(),
        },
        "groups": groups,
        "items": items,
        "unserved": unserved_rows,
        "routes": routes,
        "stats": {
            "served": stats.get("served", len(items)),
            "requests": stats.get("requests", len(items) + len(unserved_rows)),
            "weighted_served": stats.get("weighted_served"),
            "km": stats.get("km"),
            "solver": stats.get("solver", ""),
            "solver_status": stats.get("status", ""),
            "wall_seconds": stats.get("wall_seconds"),
            "changes": stats.get("changes"),
            "violations": list(stats.get("violations") or []),
        },
        "locked": sum(1 for item in items if item["locked"]),
        "publish_summary": dict(plan.publish_summary or {}),
        "publish_summary_rows": [
            {"key": key, "label": key.replace("_", " "), "value": value}
            for key, value in (plan.publish_summary or {}).items()
        ],
    }
