"""Shared pieces of the dashboards: tables (page + CSV), percentiles on either database.

Percentiles are **continuous with linear interpolation between closest ranks** (PostgreSQL's
``percentile_cont``; numpy's default "linear"; ``statistics.quantiles(method="inclusive")``):
for n sorted values and fraction q, the position is ``q * (n - 1)`` counted from 0, and the value
is interpolated between the two neighbours. The median of 10, 20, 30, 40 is 25; their p90 is 37.
PostgreSQL computes it in the database; SQLite (the embedded demo) gets the same numbers from
Python over the durations.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Expression, F, FloatField, Func, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate

from core.quality.filters import DashboardFilters


@dataclass
class Table:
    """One dashboard table: ``key`` names it in ``?export=<key>``; rows are dicts by column key."""

    key: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    export_url: str = ""

    @property
    def cells(self) -> list[list[Any]]:
        """The rows as lists in column order (for the template)."""
        return [[row.get(key) for key, _ in self.columns] for row in self.rows]


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` by linear interpolation (see the module doc)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate ``percentile_cont(f) WITHIN GROUP (ORDER BY x)``."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


def seconds_between(start_field: str, end_field: str) -> Expression:
    """``end - start`` in seconds (PostgreSQL; the expression the percentiles order by)."""
    return Func(
        F(end_field) - F(start_field),
        template="EXTRACT(EPOCH FROM %(expressions)s)",
        output_field=FloatField(),
    )


def percentile_aggregates(
    start_field: str, end_field: str, fractions: Iterable[float]
) -> dict[str, Aggregate]:
    """PostgreSQL only: ``p0``, ``p1``... aggregates of ``end - start`` in seconds, to add to a
    query's other aggregates (rows where either is NULL are ignored by ``percentile_cont``)."""
    seconds = seconds_between(start_field, end_field)
    return {f"p{i}": PercentileCont(seconds, fraction) for i, fraction in enumerate(fractions)}


def study_day_q(filters: DashboardFilters, prefix: str = "") -> Q:
    """Studies whose **study day** is in the range: the DICOM StudyDate, else (no StudyDate) the
    local day the study was first ingested. Written as an OR of plain column ranges rather than
    a filter on ``Coalesce(...)``, so PostgreSQL estimates the rows it will get (and aggregates
    in memory instead of sorting on disk)."""
    return Q(**{f"{prefix}study_date__gte": filters.start, f"{prefix}study_date__lte": filters.end}) | Q(
        **{
            f"{prefix}study_date__isnull": True,
            f"{prefix}ingested_at__gte": filters.start_at,
            f"{prefix}ingested_at__lt": filters.end_before,
        }
    )


def study_day() -> Coalesce:
    """The study day as an expression (for grouping): StudyDate, else the local ingest day."""
    return Coalesce("study_date", TruncDate("ingested_at"))


def duration_percentiles(
    queryset: QuerySet,
    *,
    group: str | None,
    start_field: str,
    end_field: str,
    fractions: Iterable[float] = (0.5, 0.9),
) -> dict[Hashable, list[float | None]]:
    """Per value of ``group`` (``None``: one group, key ``None``): the percentiles (seconds) of
    ``end - start`` over rows where both are set. One query on either database."""
    fractions = list(fractions)
    rows = queryset.filter(**{f"{start_field}__isnull": False, f"{end_field}__isnull": False}).order_by()
    if connection.vendor == "postgresql":
        aggregates = percentile_aggregates(start_field, end_field, fractions)
        if group is None:
            one = rows.aggregate(**aggregates)
            return {} if one["p0"] is None else {None: [one[f"p{i}"] for i in range(len(fractions))]}
        result = rows.values(group).annotate(**aggregates)
        return {row[group]: [row[f"p{i}"] for i in range(len(fractions))] for row in result}
    durations: dict[Hashable, list[float]] = defaultdict(list)
    if group is None:
        for start, end in rows.values_list(start_field, end_field):
            durations[None].append((end - start).total_seconds())
    else:
        for key, start, end in rows.values_list(group, start_field, end_field):
            durations[key].append((end - start).total_seconds())
    return {key: [percentile_cont(values, f) for f in fractions] for key, values in durations.items()}


def minutes(seconds: float | None) -> float | None:
    """Seconds to minutes, one decimal (None stays None)."""
    return None if seconds is None else round(seconds / 60, 1)


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` as a percentage with one decimal (None when ``whole`` is 0)."""
    return None if not whole else round(100 * part / whole, 1)


@dataclass
class Dashboard:
    """One section of the page: its tables and one chart (Chart.js ``type``/``data``/``options``)."""

    key: str
    title: str
    tables: list[Table]
    chart: dict[str, Any]
    # Which filters this dashboard honours (the page says so under its title).
    filters_used: tuple[str, ...] = ("dates", "hospital", "unit", "pool")
    note: str = ""

    @property
    def chart_id(self) -> str:
        """The id of the page's json_script element holding the chart."""
        return f"chart-{self.key}"


def bar_chart(
    labels: list[str], datasets: list[tuple[str, list]], *, y_label: str, stacked: bool = False
) -> dict:
    """A Chart.js bar chart config (data only; colours come from dashboard.js)."""
    return {
        "type": "bar",
        "labels": labels,
        "datasets": [{"label": label, "data": data} for label, data in datasets],
        "y_label": y_label,
        "stacked": stacked,
    }
