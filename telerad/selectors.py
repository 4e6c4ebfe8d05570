"""Reads of the tele-reading domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from core.access import get_for_user, scope_for_user
from core.choices import OrganisationKind
from core.exceptions import InvalidInput
from core.models import Organisation
from fleet.choices import Modality
from telerad.choices import TaskStatus
from telerad.models import CriticalResult, Notification, Radiologist, ReadingPool, ReadingTask

OPEN_STATUSES = (TaskStatus.UNCLAIMED, TaskStatus.CLAIMED)
WORKLIST_ORDER = ("priority_rank", "deadline", "id")

# Columns the worklist shows; patient identifiers are deliberately not among them (the worklist
# is for triage; the patient is seen in the viewer, where opening a study is audited).
WORKLIST_FIELDS = (
    "id",
    "study",
    "pool",
    "hospital",
    "modality",
    "body_part",
    "subspecialty",
    "priority",
    "priority_rank",
    "status",
    "routed_at",
    "deadline",
    "assigned_to",
    "assigned_to__user",
    "claimed_by",
    "claimed_at",
    "claim_expires_at",
    "sla_warned_at",
    "sla_breached_at",
    "escalated_at",
    "reported_at",
    "study__study_instance_uid",
    "study__accession_number",
    "study__description",
    "study__study_date",
    "hospital__name",
    "hospital__region_code",
    "pool__name",
    "claimed_by__username",
    "claimed_by__first_name",
    "claimed_by__last_name",
    "assigned_to__user__username",
    "assigned_to__user__first_name",
    "assigned_to__user__last_name",
)


@dataclass(frozen=True)
class ReaderScope:
    """Who the reader is in the reading domain: their profile id and the pools they belong to."""

    radiologist_id: int | None
    pool_ids: tuple[int, ...]


def reader_scope(user) -> ReaderScope:
    """One query: the reader's profile id and pool ids (none of either for anyone else)."""
    if not getattr(user, "is_authenticated", False):
        return ReaderScope(None, ())
    rows = list(Radiologist.objects.filter(user_id=user.pk).values_list("id", "pools").order_by("pools"))
    if not rows:
        return ReaderScope(None, ())
    return ReaderScope(rows[0][0], tuple(pool for _, pool in rows if pool is not None))


def reader_tasks(user, *, scope: ReaderScope | None = None) -> QuerySet[ReadingTask]:
    """Tasks in the reader's pools that they are eligible for (no ordering, no status filter).

    A task assigned to the reader is among them: assignment only ever picks an eligible reader
    (``task_assign`` refuses anyone else), so "eligible or assigned" is "eligible". Eligibility
    is an EXISTS probe of the (task, radiologist) unique index, so a task with many eligible
    readers appears once and the database can walk the worklist index in order.
    """
    scope = scope or reader_scope(user)
    if scope.radiologist_id is None or not scope.pool_ids:
        return ReadingTask.objects.none()
    eligible = ReadingTask.eligible.through.objects.filter(
        readingtask_id=OuterRef("pk"), radiologist_id=scope.radiologist_id
    )
    return ReadingTask.objects.filter(pool_id__in=scope.pool_ids).filter(Exists(eligible))


def tasks_visible_to_reader(user) -> QuerySet[ReadingTask]:
    """Tasks a reader may address by id: any task of their pools, or one assigned to them.

    Anything else is reported as not found, so ids of other pools' studies reveal nothing;
    whether they may *claim* it is the claim service's decision (403 when not eligible).
    """
    if not getattr(user, "is_authenticated", False):
        return ReadingTask.objects.none()
    member = ReadingPool.readers.through.objects.filter(
        readingpool_id=OuterRef("pool_id"), radiologist__user_id=user.pk
    )
    return ReadingTask.objects.filter(Q(Exists(member)) | Q(assigned_to__user_id=user.pk))


def tasks_assignable_by(user) -> QuerySet[ReadingTask]:
    """Tasks the user may assign: their pools' for pool leads; for an operator's administrators
    the tasks of studies its vans acquired (``core.access`` tenancy); all for superusers."""
    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return ReadingTask.objects.none()
    if user.is_superuser:
        return ReadingTask.objects.all()
    led = ReadingTask.objects.filter(pool__lead_id=user.pk)
    if user.has_role("admin"):
        return led | scope_for_user(user, ReadingTask.objects.all())
    return led


def _validate(modality: str | None, status: str | None) -> None:
    if modality is not None and modality not in Modality.values:
        raise InvalidInput(f"modality must be one of {', '.join(Modality.values)}")
    if status is not None and status not in TaskStatus.values:
        raise InvalidInput(f"status must be one of {', '.join(TaskStatus.values)}")


def _filtered(
    tasks: QuerySet[ReadingTask],
    *,
    modality: str | None,
    hospital: int | None,
    overdue: bool,
    now: datetime | None,
) -> QuerySet[ReadingTask]:
    if modality:
        tasks = tasks.filter(modality=modality)
    if hospital is not None:
        tasks = tasks.filter(hospital_id=hospital)
    if overdue:
        tasks = tasks.filter(deadline__lt=now or timezone.now(), reported_at__isnull=True)
    return tasks


def with_worklist_columns(tasks: QuerySet[ReadingTask]) -> QuerySet[ReadingTask]:
    return tasks.select_related("study", "hospital", "pool", "claimed_by", "assigned_to__user").only(
        *WORKLIST_FIELDS
    )


def worklist_for_reader(
    user,
    *,
    modality: str | None = None,
    hospital: int | None = None,
    status: str | None = None,
    overdue: bool = False,
    now: datetime | None = None,
) -> QuerySet[ReadingTask]:
    """The reader's worklist: priority, then deadline, then id; open tasks unless ``status`` says.

    Rows come with the study, hospital, pool, holder and assignee joined (no per-row queries).
    For pages of a large worklist use ``worklist_page``, which walks the index in order.
    """
    _validate(modality, status)
    tasks = reader_tasks(user)
    tasks = tasks.filter(status=status) if status else tasks.filter(status__in=OPEN_STATUSES)
    tasks = _filtered(tasks, modality=modality, hospital=hospital, overdue=overdue, now=now)
    return with_worklist_columns(tasks).order_by(*WORKLIST_ORDER)


def worklist_rows_query(ids: list[int]) -> QuerySet[ReadingTask]:
    """The rows of a page, everything joined; unordered (the caller knows the order of ``ids``)."""
    return with_worklist_columns(ReadingTask.objects.filter(pk__in=ids)).order_by()


@dataclass(frozen=True)
class WorklistPage:
    """One page of a worklist: its rows in order, and whether pages exist either side."""

    rows: list[ReadingTask]
    number: int
    size: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def worklist_page_key_queries(
    user,
    *,
    limit: int,
    modality: str | None = None,
    hospital: int | None = None,
    status: str | None = None,
    overdue: bool = False,
    now: datetime | None = None,
    scope: ReaderScope | None = None,
) -> list[QuerySet]:
    """Per status, the first ``limit`` (priority_rank, deadline, id) keys of the reader's worklist.

    One query per status, each answered by walking ``task_worklist_idx`` (status, priority_rank,
    deadline, id) in order and probing eligibility until ``limit`` rows matched, so the cost
    follows the page, not the number of studies; a single ``status IN (...)`` query would sort
    every open task instead.
    """
    _validate(modality, status)
    tasks = reader_tasks(user, scope=scope)
    tasks = _filtered(tasks, modality=modality, hospital=hospital, overdue=overdue, now=now)
    statuses = (status,) if status else OPEN_STATUSES
    return [
        tasks.filter(status=s).order_by(*WORKLIST_ORDER).values_list(*WORKLIST_ORDER)[:limit]
        for s in statuses
    ]


def worklist_keys(key_queries: list[QuerySet]) -> list[tuple]:
    """Run the per-status key queries: as one UNION ALL where the database keeps each part's
    ORDER BY/LIMIT (PostgreSQL), else one after the other (SQLite)."""
    first, *rest = key_queries
    if rest and connection.features.supports_slicing_ordering_in_compound:
        return list(first.union(*rest, all=True))
    return [key for query in key_queries for key in query]


def worklist_page(
    user,
    *,
    page: int = 1,
    page_size: int = 50,
    modality: str | None = None,
    hospital: int | None = None,
    status: str | None = None,
    overdue: bool = False,
    now: datetime | None = None,
) -> WorklistPage:
    """One page of the reader's worklist in a constant number of queries, whatever the page size.

    Queries: the reader's scope, the keys per status (one or two), the page's rows with
    everything joined. There is deliberately no total count: counting is linear in the open
    tasks and the page is re-fetched on every live event; ``has_next`` comes from one extra key.
    """
    if page < 1 or page_size < 1:
        raise InvalidInput("page and page_size start at 1")
    offset = (page - 1) * page_size
    key_queries = worklist_page_key_queries(
        user,
        limit=offset + page_size + 1,
        modality=modality,
        hospital=hospital,
        status=status,
        overdue=overdue,
        now=now,
    )
    keys = sorted(worklist_keys(key_queries))[offset : offset + page_size + 1]
    ids = [key[2] for key in keys[:page_size]]
    rows = list(worklist_rows_query(ids)) if ids else []
    position = {pk: i for i, pk in enumerate(ids)}
    rows.sort(key=lambda task: position[task.pk])
    return WorklistPage(rows=rows, number=page, size=page_size, has_next=len(keys) > page_size)


def worklist_hospitals(user) -> list[tuple[int, str]]:
    """(id, name) of the hospitals the reader's pools serve, for the filter menu."""
    from telerad.services.routing import regions_cover

    scope = reader_scope(user)
    pools = list(ReadingPool.objects.filter(pk__in=scope.pool_ids).prefetch_related("hospitals"))
    listed = {h.pk for pool in pools for h in pool.hospitals.all()}
    regions = [code for pool in pools for code in pool.regions]
    hospitals = Organisation.objects.filter(kind=OrganisationKind.HOSPITAL).order_by("name")
    return [
        (h.pk, h.name)
        for h in hospitals.only("id", "name", "region_code")
        if h.pk in listed or regions_cover(regions, h.region_code)
    ]


# --- the caller's own rows ------------------------------------------------------------------------


def radiologist_profile_for_user(user) -> Radiologist | None:
    """The user's own reader profile, or None (not a reader yet: an administrator creates it)."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Radiologist.objects.filter(user_id=user.pk).first()


def notification_list_for_user(user, *, unread: bool = False) -> QuerySet[Notification]:
    """The user's own notifications, newest first; ``unread``: only those not yet read.

    Narrower than the tenancy (``Notification.organisation_lookup``): a notification is its
    recipient's alone, not their organisation's.
    """
    notifications = Notification.objects.filter(recipient_id=user.pk)
    if unread:
        notifications = notifications.filter(read_at__isnull=True)
    return notifications.order_by("-created_at", "-id")


def critical_result_get_for_user(user, pk: int) -> CriticalResult:
    """A critical result within the user's tenancy (``core.access``), else ``NotFound``; who may
    act on it (a hospital user of its hospital) is the service's check."""
    return get_for_user(user, CriticalResult.objects.all(), pk=pk)
