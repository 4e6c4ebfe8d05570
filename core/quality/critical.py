"""Critical-result acknowledgement times: flagged by the reader to acknowledged by the hospital.

A critical result counts when it was **flagged** in the date range. Acknowledgement time is
``acknowledged_at - flagged_at``; median and p90 as in core/quality/base.py, over acknowledged
results only; "open" ones are still waiting. Filters: dates, hospital, unit (of the study), pool
(of the report's reading task). An operator sees the results on studies its units acquired.
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from core.quality.base import Dashboard, Table, bar_chart, duration_percentiles, minutes
from core.quality.filters import DashboardFilters
from telerad.models import CriticalResult

COLUMNS = [
    ("hospital", "Hospital"),
    ("flagged", "Flagged"),
    ("acknowledged", "Acknowledged"),
    ("open", "Open"),
    ("median_minutes", "Median to ack (min)"),
    ("p90_minutes", "p90 to ack (min)"),
    ("max_minutes", "Longest (min)"),
]
TOTAL = "All hospitals"


def critical_results(filters: DashboardFilters) -> QuerySet[CriticalResult]:
    results = CriticalResult.objects.filter(
        flagged_at__gte=filters.start_at, flagged_at__lt=filters.end_before
    )
    if filters.operator_id is not None:
        results = results.filter(study__unit__operator_id=filters.operator_id)
    if filters.hospital_id is not None:
        results = results.filter(hospital_id=filters.hospital_id)
    if filters.unit_id is not None:
        results = results.filter(study__unit_id=filters.unit_id)
    if filters.pool_id is not None:
        results = results.filter(report__task__pool_id=filters.pool_id)
    return results


def critical_ack(filters: DashboardFilters) -> Dashboard:
    """One row per hospital plus a total; the longest wait is the 100th percentile. Three queries."""
    results = critical_results(filters)
    acked = Q(acknowledged_at__isnull=False)
    grouped = list(
        results.order_by()
        .values("hospital_id", "hospital__name")
        .annotate(n=Count("id"), acked=Count("id", filter=acked))
    )
    per_hospital = duration_percentiles(
        results,
        group="hospital_id",
        start_field="flagged_at",
        end_field="acknowledged_at",
        fractions=(0.5, 0.9, 1.0),
    )
    overall = duration_percentiles(
        results, group=None, start_field="flagged_at", end_field="acknowledged_at", fractions=(0.5, 0.9, 1.0)
    )

    def row(name: str, n: int, n_acked: int, pcts: list) -> dict:
        median, p90, top = pcts
        return {
            "hospital": name,
            "flagged": n,
            "acknowledged": n_acked,
            "open": n - n_acked,
            "median_minutes": minutes(median),
            "p90_minutes": minutes(p90),
            "max_minutes": minutes(top),
        }

    rows = sorted(
        (
            row(g["hospital__name"], g["n"], g["acked"], per_hospital.get(g["hospital_id"], [None] * 3))
            for g in grouped
        ),
        key=lambda r: r["hospital"],
    )
    total = row(
        TOTAL,
        sum(r["flagged"] for r in rows),
        sum(r["acknowledged"] for r in rows),
        overall.get(None, [None] * 3),
    )
    chart = bar_chart(
        [r["hospital"] for r in rows],
        [
            ("Median (min)", [r["median_minutes"] for r in rows]),
            ("p90 (min)", [r["p90_minutes"] for r in rows]),
        ],
        y_label="minutes from flag to acknowledgement",
    )
    table = Table("critical", "Critical-result acknowledgement per hospital", COLUMNS, [*rows, total])
    return Dashboard(key="critical", title="Critical-result acknowledgement", tables=[table], chart=chart)
