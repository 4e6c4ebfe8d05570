"""Reads behind the audit trail review (docs/audit.md): search, and who has seen a patient.

Both return querysets; the page paginates them. Reading the audit log is itself audited, by
the caller, through ``core.services.audit_review.audit_review_record`` (one entry per search or
export), because a selector never writes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from core.models import AuditEntry


def _bound(value: date | datetime, *, end: bool) -> datetime:
    """A datetime bound: a date starts at its midnight; a date as ``end`` includes the whole day."""
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    day = value + timedelta(days=1) if end else value
    return timezone.make_aware(datetime.combine(day, time.min))


def _in_range(queryset: QuerySet[AuditEntry], start: Any, end: Any) -> QuerySet[AuditEntry]:
    # start inclusive, end exclusive (a date ``end`` is inclusive: its whole day is in range).
    if start is not None:
        queryset = queryset.filter(timestamp__gte=_bound(start, end=False))
    if end is not None:
        queryset = queryset.filter(timestamp__lt=_bound(end, end=True))
    return queryset


def audit_search(
    *,
    actor: str | int | None = None,
    patient_id: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Audit entries matching every given filter, newest first.

    ``actor`` is a user id (int, or a string of digits that also matches a username) or a
    username (exact, as recorded). ``action`` is a prefix (``report.`` finds every report
    action). ``start``/``end`` are dates or datetimes (see ``_bound``).
    """
    queryset = AuditEntry.objects.all()
    if isinstance(actor, int):
        queryset = queryset.filter(actor_id=actor)
    elif actor:
        match = Q(actor_username=actor)
        if actor.isdigit():
            match |= Q(actor_id=int(actor))
        queryset = queryset.filter(match)
    if patient_id:
        queryset = queryset.filter(patient_id=patient_id)
    if object_type:
        queryset = queryset.filter(object_type=object_type)
    if object_id:
        queryset = queryset.filter(object_id=object_id)
    if action:
        queryset = queryset.filter(action__startswith=action)
    # Ids grow with time (one append-only chain), and -id walks the primary key index.
    return _in_range(queryset, start, end).order_by("-id")


def patient_viewers(
    patient_id: str,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
) -> QuerySet[Any, Any]:
    """Who has seen this patient's data: one row per user, in one GROUP BY query.

    Rows are dicts: ``actor_id``, ``actor_username``, ``role`` (the highest recorded,
    alphabetically, when a user's role changed), ``first_access``, ``last_access``, ``accesses``;
    most recent viewer first. Only entries marked ``patient_data`` count, and only those with a
    user: system work (ingest, routing) is not a person seeing the data.
    """
    queryset = AuditEntry.objects.filter(patient_data=True, patient_id=patient_id, actor_id__isnull=False)
    return (
        _in_range(queryset, start, end)
        .order_by()
        .values("actor_id", "actor_username")
        .annotate(
            role=Max("actor_role"),
            first_access=Min("timestamp"),
            last_access=Max("timestamp"),
            accesses=Count("id"),
        )
        .order_by("-last_access", "actor_id")
    )
