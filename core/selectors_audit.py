"""Reads behind the audit trail review (docs/audit.md): search, and who has seen a patient.

Both return querysets; the page paginates them. Reading the audit log is itself audited, by
the caller, through ``core.services.audit_review.audit_review_record`` (one entry per search or
export), because a selector never writes.

Both are tenant-scoped when given a ``user`` (``audit_in_tenancy``): a reviewer sees the entries
of their own organisation's users and the entries about objects in their tenancy, whoever wrote
them; a superuser sees the whole trail.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import CharField, Count, Max, Min, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from core.access import scope_for_user, tenant_lookup, user_is_platform_wide, user_organisation_kind
from core.models import AuditEntry

# Entries naming an object by something other than its primary key: object type -> (model, field).
# A van's worklist queries are recorded against its AE title.
_KEYED_BY_FIELD = {"dicom.worklist": ("fleet.Unit", "ae_title")}


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


def _tenanted_models(kind: str) -> list[type[models.Model]]:
    """Models that declare their tenancy (core.access) and are visible to organisations of ``kind``."""
    found = []
    for model in apps.get_models():
        declared = getattr(model, "tenant_lookups", None) or getattr(model, "organisation_lookup", None)
        if declared is not None and tenant_lookup(model, kind) is not None:
            found.append(model)
    return found


def _keys_in_scope(user, model: type[models.Model], field: str = "pk") -> QuerySet[Any, Any]:
    # ``object_id`` is text: compare with the scoped keys cast to text, as a subquery (no id list
    # in Python, however many rows the tenancy holds).
    return (
        scope_for_user(user, model._default_manager.all())
        .order_by()
        .annotate(audit_key=Cast(field, output_field=CharField()))
        .values("audit_key")
    )


def audit_in_tenancy(user, entries: QuerySet[AuditEntry] | None = None) -> QuerySet[AuditEntry]:
    """The ``entries`` (default: all) that ``user`` may review.

    Everything for a superuser. For anyone else, the union of:

    - entries whose actor belongs to the user's organisation;
    - entries naming an object (``object_type``, ``object_id``) that is in the user's tenancy
      (``core.access.scope_for_user``) — every model that declares its tenancy, whoever acted:
      a hospital user or a radiologist opening a study an operator's van acquired is in that
      operator's trail, and so is system work (ingest, routing) on it;
    - a van's worklist queries (``dicom.worklist``, named by the unit's AE title).

    Entries by other organisations' users that name no single object (``order.list``,
    ``portal.studies_view``, ``critical_result.list``: the objects are listed in ``details``)
    are not shown to other tenants. Signed out or without an organisation: nothing.

    One SQL statement: ``id IN (branch UNION branch ...)``, each branch one index-backed lookup,
    so the planner never holds a whole tenancy's ids in one in-memory list.
    """
    entries = AuditEntry.objects.all() if entries is None else entries
    if user_is_platform_wide(user):
        return entries
    kind = user_organisation_kind(user)
    if kind is None:
        return entries.none()
    base = entries.order_by()
    branches = [base.filter(actor__organisation_id=user.organisation_id)]
    for model in _tenanted_models(kind):
        keys = _keys_in_scope(user, model)
        branches.append(base.filter(object_type=model._meta.label_lower, object_id__in=keys))
    for object_type, (label, field) in _KEYED_BY_FIELD.items():
        model = apps.get_model(label)
        if tenant_lookup(model, kind) is not None:
            keys = _keys_in_scope(user, model, field)
            branches.append(base.filter(object_type=object_type, object_id__in=keys))
    ids = [branch.values("pk") for branch in branches]
    return entries.filter(pk__in=ids[0].union(*ids[1:], all=True))


def audit_search(
    *,
    user=None,
    actor: str | int | None = None,
    patient_id: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Audit entries matching every given filter, newest first.

    ``user``: only the entries that user may review (``audit_in_tenancy``); None: the whole
    trail (the ``audit_export`` command, run with shell access). ``actor`` is a user id (int, or
    a string of digits that also matches a username) or a username (exact, as recorded).
    ``action`` is a prefix (``report.`` finds every report action). ``start``/``end`` are dates
    or datetimes (see ``_bound``).
    """
    queryset: QuerySet[AuditEntry] = AuditEntry.objects.all()
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
    queryset = _in_range(queryset, start, end)
    if user is not None:
        # After the filters, so each branch of the tenancy's union is already narrowed by them.
        queryset = audit_in_tenancy(user, queryset)
    # Ids grow with time (one append-only chain), and -id walks the primary key index.
    return queryset.order_by("-id")


def patient_viewers(
    patient_id: str,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    user=None,
) -> QuerySet[Any, Any]:
    """Who has seen this patient's data: one row per user, in one GROUP BY query.

    Rows are dicts: ``actor_id``, ``actor_username``, ``role`` (the highest recorded,
    alphabetically, when a user's role changed), ``first_access``, ``last_access``, ``accesses``;
    most recent viewer first. Only entries marked ``patient_data`` count, and only those with a
    user: system work (ingest, routing) is not a person seeing the data. With ``user``, only
    the entries that user may review (``audit_in_tenancy``).
    """
    queryset: QuerySet[AuditEntry] = AuditEntry.objects.filter(
        patient_data=True, patient_id=patient_id, actor_id__isnull=False
    )
    queryset = _in_range(queryset, start, end)
    if user is not None:
        queryset = audit_in_tenancy(user, queryset)
    return (
        queryset.order_by()
        .values("actor_id", "actor_username")
        .annotate(
            role=Max("actor_role"),
            first_access=Min("timestamp"),
            last_access=Max("timestamp"),
            accesses=Count("id"),
        )
        .order_by("-last_access", "actor_id")
    )
