"""Turnaround by priority against the SLA: routing to the signed report.

A task counts when it was **routed** within the date range (cancelled tasks never count).
Turnaround is ``report.signed_at - task.routed_at`` of signed reports; median and p90 use
``percentile_cont`` (core/quality/base.py).
A **breach** is a task signed after its deadline, or not signed and already past it (``now``);
the deadline is the one routing stored (``routed_at`` + the pool's SLA for the priority).
An operator sees the tasks of studies its units acquired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.utils import timezone

from core.quality.base import (
    Dashboard,
    Table,
    bar_chart,
    duration_percentiles,
    minutes,
    percentile_aggregates,
    rate,
)
from core.quality.filters import DashboardFilters
from core.quality.scope import pools_in_scope
from dicom.choices import Priority
from telerad.choices import TaskStatus
from telerad.models import ReadingTask

PRIORITIES = [Priority.STAT, Priority.URGENT, Priority.ROUTINE]
FRACTIONS = (0.5, 0.9)
_SLA_FIELD = {
    Priority.STAT: "sla_stat_minutes",
    Priority.URGENT: "sla_urgent_minutes",
    Priority.ROUTINE: "sla_routine_minutes",
}
COLUMNS = [
    ("priority", "Priority"),
    ("sla_minutes", "SLA (min)"),
    ("routed", "Routed"),
    ("signed", "Signed"),
    ("median_minutes", "Median TAT (min)"),
    ("p90_minutes", "p90 TAT (min)"),
    ("within_sla_percent", "Signed within SLA (%)"),
    ("breaches", "Breaches"),
    ("breaches_signed_late", "Signed late"),
    ("breaches_open", "Open past deadline"),
]


def turnaround_tasks(filters: DashboardFilters) -> QuerySet[ReadingTask]:
    tasks = ReadingTask.objects.filter(
        routed_at__gte=filters.start_at, routed_at__lt=filters.end_before
    ).exclude(status=TaskStatus.CANCELLED)
    if filters.operator_id is not None:
        tasks = tasks.filter(study__unit__operator_id=filters.operator_id)
    if filters.hospital_id is not None:
        tasks = tasks.filter(hospital_id=filters.hospital_id)
    if filters.unit_id is not None:
        tasks = tasks.filter(study__unit_id=filters.unit_id)
    if filters.pool_id is not None:
        tasks = tasks.filter(pool_id=filters.pool_id)
    return tasks


def _sla_labels(filters: DashboardFilters) -> dict[str, tuple[str, int | None]]:
    """Per priority: the SLA in minutes as shown ("60", or "60-90" when the pools differ) and
    its maximum (for the chart). The chosen pool's, else every active pool's; for an operator,
    only pools that read its studies (``pools_in_scope``)."""
    pools = pools_in_scope(filters.operator_id)
    pools = pools.filter(pk=filters.pool_id) if filters.pool_id else pools.filter(is_active=True)
    bounds = pools.aggregate(
        **{f"{p}_min": Min(field) for p, field in _SLA_FIELD.items()},
        **{f"{p}_max": Max(field) for p, field in _SLA_FIELD.items()},
    )
    labels: dict[str, tuple[str, int | None]] = {}
    for priority in PRIORITIES:
        low, high = bounds[f"{priority}_min"], bounds[f"{priority}_max"]
        text = "" if low is None else (str(low) if low == high else f"{low}-{high}")
        labels[priority] = (text, high)
    return labels


def turnaround(filters: DashboardFilters, *, now: dt.datetime | None = None) -> Dashboard:
    """Rows per priority (STAT, urgent, routine; zero rows included). Two queries on PostgreSQL,
    three on SQLite."""
    now = now or timezone.now()
    tasks = turnaround_tasks(filters)
    signed = Q(report__signed_at__isnull=False)
    late = Q(report__signed_at__gt=F("deadline"))
    open_overdue = Q(report__signed_at__isnull=True, deadline__lt=now)
    # PostgreSQL computes the percentiles in the same pass as the counts (one scan of the tasks);
    # SQLite gets them from a second query (durations to Python).
    in_db = connection.vendor == "postgresql"
    extra = percentile_aggregates("routed_at", "report__signed_at", FRACTIONS) if in_db else {}
    counts: dict[str, Mapping[str, Any]] = {
        row["priority"]: row
        for row in tasks.order_by()
        .values("priority")
        .annotate(
            routed=Count("id"),
            signed=Count("id", filter=signed),
            signed_late=Count("id", filter=late),
            open_overdue=Count("id", filter=open_overdue),
            **extra,
        )
    }
    percentiles: Mapping[Any, list[float | None]]
    if in_db:
        percentiles = {p: [row["p0"], row["p1"]] for p, row in counts.items()}
    else:
        percentiles = duration_percentiles(
            tasks,
            group="priority",
            start_field="routed_at",
            end_field="report__signed_at",
            fractions=FRACTIONS,
        )
    sla = _sla_labels(filters)
    rows = []
    for priority in PRIORITIES:
        c: Mapping[str, Any] = counts.get(priority, {})
        median, p90 = percentiles.get(priority, [None, None])
        n_signed, n_late, n_open = c.get("signed", 0), c.get("signed_late", 0), c.get("open_overdue", 0)
        rows.append(
            {
                "priority": Priority(priority).label,
                "sla_minutes": sla[priority][0],
                "routed": c.get("routed", 0),
                "signed": n_signed,
                "median_minutes": minutes(median),
                "p90_minutes": minutes(p90),
                "within_sla_percent": rate(n_signed - n_late, n_signed),
                "breaches": n_late + n_open,
                "breaches_signed_late": n_late,
                "breaches_open": n_open,
            }
        )
    chart = bar_chart(
        [row["priority"] for row in rows],
        [
            ("Median (min)", [row["median_minutes"] for row in rows]),
            ("p90 (min)", [row["p90_minutes"] for row in rows]),
            ("SLA (min)", [sla[p][1] for p in PRIORITIES]),
        ],
        y_label="minutes from routing to signature",
    )
    table = Table(key="turnaround", title="Turnaround by priority", columns=COLUMNS, rows=rows)
    return Dashboard(key="turnaround", title="Turnaround against SLA", tables=[table], chart=chart)
