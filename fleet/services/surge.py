"""Emergency surge: declare an incident (ranking + proposal), confirm it (dispatch, cancel routine
visits, notify hospitals, ask for a re-plan), close it (release the units). docs/surge.md.

declared -> dispatched -> closed (declared -> closed: stood down before dispatch). Transitions
are compare-and-swaps on the status, audited in the same transaction; the re-plan is asked for
after commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.choices import OrganisationKind
from core.exceptions import Conflict, DomainError, InvalidInput
from core.models import Organisation, User
from core.on_commit import on_commit
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import Modality
from fleet.models import (
    Incident,
    IncidentStatus,
    IncidentUnit,
    ServiceRequestStatus,
    Unit,
)
from fleet.selectors_surge import (
    incident_window,
    surge_ranking,
    visit_row,
    visits_to_cancel,
)
from fleet.services.surge_effects import cancel_visit, dispatch_unit, interrupt_visit

logger = logging.getLogger(__name__)

NEED_MIN, NEED_MAX = 1, 10
DAYS_MIN, DAYS_MAX = 1, 30
NAME_MAX, NOTES_MAX = 200, 2000
PAST_LIMIT = dt.timedelta(days=1)
FUTURE_LIMIT = dt.timedelta(days=30)
# Requests whose visit is cancelled go back to be planned again.
S = ServiceRequestStatus
UNSCHEDULABLE = (ServiceRequestStatus.PLANNED, ServiceRequestStatus.SCHEDULED)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code="invalid", extra={"field": field})


def _clean_needs(needs: Any) -> dict[str, int]:
    if not isinstance(needs, Mapping) or not needs:
        raise _invalid("needs", 'a non-empty object of modality -> units, e.g. {"CT": 2}')
    cleaned = {}
    for modality, count in needs.items():
        if modality not in Modality.values:
            raise _invalid("needs", f"unknown modality {modality!r}; valid: {', '.join(Modality.values)}")
        if isinstance(count, bool) or not isinstance(count, int) or not NEED_MIN <= count <= NEED_MAX:
            raise _invalid("needs", f"{modality}: {NEED_MIN}..{NEED_MAX} units")
        cleaned[modality] = count
    return {m: cleaned[m] for m in Modality.values if m in cleaned}


def _clean_point(latitude: Any, longitude: Any) -> tuple[float, float]:
    for field, value, bound in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
            raise _invalid(field, f"a number in -{bound}..{bound}")
    return float(latitude), float(longitude)


def _proposal(incident: Incident, at: dt.datetime) -> dict[str, Any]:
    ranking = surge_ranking(incident=incident, at=at)
    chosen = []
    for block in ranking:
        by_unit = {c["unit_id"]: c for c in reversed(block["candidates"])}  # fastest option wins
        for unit_id in block["chosen"]:
            c = by_unit[unit_id]
            chosen.append(
                {
                    "unit_id": unit_id,
                    "unit_name": c["unit_name"],
                    "modality": c["modality"],
                    "option": c["option"],
                    "finish_current": c["finish_current"],
                    "eta_minutes": c["eta_minutes"],
                }
            )
    first, end = incident_window(incident, at=at)
    visits = visits_to_cancel(unit_ids=[c["unit_id"] for c in chosen], first=first, end=end)
    return {
        "computed_at": at.isoformat(),
        "window": {"first": first.isoformat(), "end": end.isoformat()},
        "ranking": ranking,
        "chosen": chosen,
        "shortfall": {
            b["modality"]: b["needed"] - len(b["chosen"]) for b in ranking if len(b["chosen"]) < b["needed"]
        },
        "visits": [visit_row(visit) for visit in visits],
    }


@transaction.atomic
def incident_declare(
    *,
    actor: User,
    operator: Organisation,
    name: str,
    latitude: float,
    longitude: float,
    needs: Mapping[str, int],
    starts_at: dt.datetime,
    days: int = 3,
    hospital: Organisation | None = None,
    notes: str = "",
) -> Incident:
    """Record the incident and store its proposal (ranking, units chosen, visits to cancel)."""
    check_register_writer(actor, operator.pk)
    if operator.kind != OrganisationKind.OPERATOR:
        raise _invalid("operator", "not a fleet operator")
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > NAME_MAX:
        raise _invalid("name", f"1..{NAME_MAX} characters")
    latitude, longitude = _clean_point(latitude, longitude)
    cleaned = _clean_needs(needs)
    now = timezone.now()
    if not isinstance(starts_at, dt.datetime) or timezone.is_naive(starts_at):
        raise _invalid("starts_at", "a date and time with a time zone")
    if starts_at < now - PAST_LIMIT:
        raise _invalid("starts_at", "at most one day in the past")
    if starts_at > now + FUTURE_LIMIT:
        raise _invalid("starts_at", "at most 30 days ahead")
    if isinstance(days, bool) or not isinstance(days, int) or not DAYS_MIN <= days <= DAYS_MAX:
        raise _invalid("days", f"{DAYS_MIN}..{DAYS_MAX}")
    if hospital is not None and hospital.kind != OrganisationKind.HOSPITAL:
        raise _invalid("hospital", "not a hospital")
    notes = (notes or "").strip()
    if len(notes) > NOTES_MAX:
        raise _invalid("notes", f"at most {NOTES_MAX} characters")
    incident = Incident.objects.create(
        operator=operator,
        name=name,
        latitude=latitude,
        longitude=longitude,
        hospital=hospital,
        needs=cleaned,
        starts_at=starts_at,
        days=days,
        notes=notes,
        created_by=actor,
    )
    incident.proposal = _proposal(incident, now)
    incident.save(update_fields=["proposal"])
    audit_record(
        actor=actor,
        action="incident.declare",
        obj=incident,
        details={
            "needs": cleaned,
            "location": [latitude, longitude],
            "starts_at": starts_at,
            "days": days,
            "chosen": [c["unit_id"] for c in incident.proposal["chosen"]],
            "visits": [v["visit_id"] for v in incident.proposal["visits"]],
        },
    )
    return incident


def _offered(incident: Incident, at: dt.datetime) -> tuple[dict[int, dict[bool, dict]], dict[int, list[str]]]:
    """unit id -> {finish_current: candidate} of the fresh ranking, and unit id -> exclusion reasons."""
    offered: dict[int, dict[bool, dict]] = {}
    excluded: dict[int, list[str]] = {}
    for block in surge_ranking(incident=incident, at=at):
        for candidate in block["candidates"]:
            offered.setdefault(candidate["unit_id"], {})[candidate["finish_current"]] = candidate
        for row in block["excluded"]:
            excluded[row["unit_id"]] = row["reasons"]
    return offered, excluded


def request_replan(*, operator: Organisation, reason: str, actor: User | None) -> None:
    """Ask the planner to re-plan the operator's horizon; a planner that is missing or refuses is
    logged, never raised: the dispatch is committed already."""
    try:
        from fleet.services.plans import replan_request

        replan_request(operator=operator, reason=reason, actor=actor)
    except (ImportError, NotImplementedError) as exc:
        logger.warning("re-plan (%s) skipped: the planner is not available (%s)", reason, exc)
    except DomainError as exc:
        logger.warning("re-plan (%s) refused: %s", reason, exc.message)


def _ask_replan(operator: Organisation, incident: Incident, actor: User) -> None:
    # Through the module attribute so that a test can stand in for the planner.
    on_commit(
        lambda: globals()["request_replan"](operator=operator, reason=f"incident {incident.pk}", actor=actor)
    )


@transaction.atomic
def incident_confirm(
    *,
    actor: User,
    incident: Incident,
    unit_ids: list[int] | None = None,
    finish_current: Mapping[int, bool] | None = None,
) -> Incident:
    """Dispatch the units (default: the proposal's), cancel their routine visits in the incident's
    window, put the visits' requests back to submitted, notify the hospitals, ask for a re-plan."""
    check_register_writer(actor, incident.operator_id)
    now = timezone.now()
    proposal = incident.proposal or {}
    defaults = {c["unit_id"]: c["finish_current"] for c in proposal.get("chosen", [])}
    if unit_ids is None:
        unit_ids = list(defaults)
    if not isinstance(unit_ids, list) or any(isinstance(u, bool) or not isinstance(u, int) for u in unit_ids):
        raise _invalid("units", "a list of unit ids")
    if not unit_ids:
        raise _invalid("units", "at least one unit")
    if len(set(unit_ids)) != len(unit_ids):
        raise _invalid("units", "each unit once")
    finish = {u: defaults.get(u, False) for u in unit_ids}
    for unit_id, value in (finish_current or {}).items():
        if unit_id not in finish:
            raise _invalid("finish_current", f"unit {unit_id} is not among the units sent")
        finish[unit_id] = bool(value)
    if incident.status != IncidentStatus.DECLARED:
        raise Conflict(
            f"Incident {incident.pk} is {incident.status}; only a declared one is confirmed",
            code="incident_not_declared",
        )
    offered, excluded = _offered(incident, now)
    chosen: dict[int, dict] = {}
    for unit_id in unit_ids:
        options = offered.get(unit_id)
        if options is None:
            reasons = excluded.get(unit_id) or ["not a unit of a needed modality of this operator"]
            raise Conflict(
                f"Unit {unit_id} cannot be sent: {'; '.join(reasons)}",
                code="unit_not_offered",
                extra={"unit": unit_id, "reasons": reasons},
            )
        if finish[unit_id] and True not in options:
            raise _invalid("finish_current", f"unit {unit_id} has no current visit to finish")
        chosen[unit_id] = options[finish[unit_id]]
    if not Incident.objects.filter(pk=incident.pk, status=IncidentStatus.DECLARED).update(
        status=IncidentStatus.DISPATCHED, confirmed_by=actor, confirmed_at=now
    ):
        raise Conflict(
            f"Incident {incident.pk} was confirmed or closed meanwhile", code="incident_not_declared"
        )
    incident.refresh_from_db()

    reason = f"incident {incident.pk}: {incident.name}"[:500]
    units = {unit.pk: unit for unit in Unit.objects.filter(pk__in=unit_ids)}
    interrupted: list[int] = []
    for unit_id in unit_ids:
        candidate = chosen[unit_id]
        IncidentUnit.objects.create(
            incident=incident,
            unit_id=unit_id,
            eta_minutes=candidate["eta_minutes"],
            finishes_current_visit=candidate["finish_current"],
            dispatched_at=now,
        )
        dispatch_unit(units[unit_id], actor=actor, leave=not candidate["finish_current"], reason=reason)
        if candidate["option"] == "leave_now" and candidate["visit_id"] and candidate["remaining_exams"]:
            interrupted.append(interrupt_visit(units[unit_id], candidate))

    first, end = incident_window(incident, at=now)
    cancelled, freed = [], []
    for visit in visits_to_cancel(unit_ids=unit_ids, first=first, end=end):
        row = visit_row(visit)
        requests = cancel_visit(visit, actor=actor, incident=incident, now=now)
        if requests is not None:
            cancelled.append(row)
            freed.extend(requests)
    incident.proposal = {
        **proposal,
        "confirmed": {
            "at": now.isoformat(),
            "units": [chosen[u] for u in unit_ids],
            "cancelled_visits": cancelled,
            "requests_resubmitted": freed,
            "interrupted_visits": interrupted,
        },
    }
    incident.save(update_fields=["proposal"])
    audit_record(
        actor=actor,
        action="incident.confirm",
        obj=incident,
        details={
            "units": {
                str(u): {
                    "eta_minutes": chosen[u]["eta_minutes"],
                    "finish_current": chosen[u]["finish_current"],
                }
                for u in unit_ids
            },
            "visits_cancelled": [v["visit_id"] for v in cancelled],
            "requests_resubmitted": freed,
        },
    )
    _ask_replan(incident.operator, incident, actor)
    return incident


@transaction.atomic
def incident_close(*, actor: User, incident: Incident) -> Incident:
    """Close the incident and release its units to routine planning (their status is the crew's)."""
    check_register_writer(actor, incident.operator_id)
    now = timezone.now()
    current = Incident.objects.filter(pk=incident.pk).values_list("status", flat=True).first()
    if current not in (IncidentStatus.DECLARED, IncidentStatus.DISPATCHED) or not Incident.objects.filter(
        pk=incident.pk, status=current
    ).update(status=IncidentStatus.CLOSED, closed_at=now):
        raise Conflict(f"Incident {incident.pk} is already closed", code="incident_closed")
    released = list(
        IncidentUnit.objects.filter(incident=incident, released_at__isnull=True).values_list(
            "unit_id", flat=True
        )
    )
    IncidentUnit.objects.filter(incident=incident, released_at__isnull=True).update(released_at=now)
    incident.refresh_from_db()
    audit_record(
        actor=actor, action="incident.close", obj=incident, details={"from": current, "released": released}
    )
    if released:
        _ask_replan(incident.operator, incident, actor)
    return incident
