"""The dashboard page's contents: every dashboard, or the one holding a table to export."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from core.quality.acquisition_qc import acquisition_qc
from core.quality.base import Dashboard
from core.quality.coverage import coverage_gaps
from core.quality.critical import critical_ack
from core.quality.filters import DashboardFilters, FilterError
from core.quality.peer import peer_review
from core.quality.turnaround import turnaround
from core.quality.utilisation import utilisation

# Page order; each builder takes the filters and returns one Dashboard.
BUILDERS: dict[str, Callable[[DashboardFilters], Dashboard]] = {
    "turnaround": turnaround,
    "qc": acquisition_qc,
    "peer": peer_review,
    "utilisation": utilisation,
    "coverage": coverage_gaps,
    "critical": critical_ack,
}
# ?export=<table> -> the dashboard that holds the table.
TABLES: dict[str, str] = {
    "turnaround": "turnaround",
    "qc_units": "qc",
    "qc_technologists": "qc",
    "qc_rules": "qc",
    "peer": "peer",
    "utilisation": "utilisation",
    "coverage": "coverage",
    "critical": "critical",
}


def dashboards_all(filters: DashboardFilters) -> list[Dashboard]:
    return [build(filters) for build in BUILDERS.values()]


def dashboard_table(filters: DashboardFilters, key: str):
    """The table named ``key`` (FilterError naming the valid keys when there is none)."""
    if key not in TABLES:
        raise FilterError(f"export: no table {key[:40]!r}; one of {', '.join(TABLES)}")
    dashboard = BUILDERS[TABLES[key]](filters)
    return next(table for table in dashboard.tables if table.key == key)


def csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
