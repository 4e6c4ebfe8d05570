"""Coverage gaps: hospitals overdue on their contracted service interval on the range's last day.

The rule is the coverage page's (``fleet.selectors_coverage.coverage_rows``, docs/coverage-exit.md):
last not-cancelled visit by a unit of the contract's operator and modality, due ``interval_days``
later, overdue from the day after. Filters: the end date (the day asked about) and hospital. An
operator sees its own contracts only.
"""

from __future__ import annotations

from core.quality.base import Dashboard, Table, bar_chart
from core.quality.filters import DashboardFilters
from fleet.selectors_coverage import CoverageState, coverage_rows

COLUMNS = [
    ("hospital", "Hospital"),
    ("modality", "Modality"),
    ("interval_days", "Interval (days)"),
    ("last_visit", "Last visit"),
    ("due_on", "Due on"),
    ("days_overdue", "Days overdue"),
    ("next_visit", "Next visit booked"),
]


def coverage_gaps(filters: DashboardFilters) -> Dashboard:
    """Overdue contracts, most overdue first. One query."""
    rows = []
    for row in coverage_rows(on=filters.end, operator_id=filters.operator_id):
        if row.state != CoverageState.OVERDUE:
            continue
        if filters.hospital_id is not None and row.hospital_id != filters.hospital_id:
            continue
        rows.append(
            {
                "hospital": row.hospital_name,
                "modality": row.modality,
                "interval_days": row.interval_days,
                "last_visit": row.last_visit.isoformat() if row.last_visit else None,
                "due_on": row.due_on.isoformat(),
                "days_overdue": row.days_overdue,
                "next_visit": row.next_visit.isoformat() if row.next_visit else None,
            }
        )
    chart = bar_chart(
        [f"{r['hospital']} ({r['modality']})" for r in rows],
        [("Days overdue", [r["days_overdue"] for r in rows])],
        y_label="days past due",
    )
    table = Table(
        "coverage",
        f"Hospitals overdue on {filters.end.isoformat()}",
        COLUMNS,
        rows,
        note="Contracts whose interval has run out without a visit.",
    )
    return Dashboard(
        key="coverage",
        title="Coverage gaps",
        tables=[table],
        chart=chart,
        filters_used=("end date", "hospital"),
    )
