"""Unit utilisation: days on site against days available, exams per visit against capacity.

Per unit over the date range (local days, inclusive):

- **available days**: days in the range minus days touched by one of the unit's maintenance
  windows (any part of the local day);
- **days on site**: distinct dates of the unit's visits that were worked (arrived, or status
  on site / done);
- **visits worked**, **exams booked** (sum over not-cancelled visits), **exams done** (studies
  from the unit whose study day is in the range, as in the QC dashboard);
- **exams per visit** = exams done / visits worked; **capacity** = ``capacity_per_day`` x days on
  site; **utilisation** = exams done / capacity; **on site** = days on site / available days.

Filters: dates, unit, hospital (visits to and studies of that hospital; available days are the
unit's whatever the hospital). Not pool. An operator sees its own units.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from core.quality.base import Dashboard, Table, bar_chart, rate, study_day_q
from core.quality.filters import DashboardFilters
from core.quality.scope import units_in_scope
from dicom.models import Study
from fleet.choices import VisitStatus
from fleet.models import MaintenanceWindow, Visit

COLUMNS = [
    ("unit", "Unit"),
    ("capacity_per_day", "Capacity/day"),
    ("available_days", "Available days"),
    ("days_on_site", "Days on site"),
    ("on_site_percent", "On site (%)"),
    ("visits_worked", "Visits worked"),
    ("exams_booked", "Exams booked"),
    ("exams_done", "Exams done"),
    ("exams_per_visit", "Exams per visit"),
    ("capacity", "Capacity"),
    ("utilisation_percent", "Utilisation (%)"),
]
WORKED = Q(arrived_at__isnull=False) | Q(status__in=[VisitStatus.ON_SITE, VisitStatus.DONE])


def _maintenance_days(filters: DashboardFilters, unit_ids: list[int]) -> dict[int, set[dt.date]]:
    windows = MaintenanceWindow.objects.filter(
        unit_id__in=unit_ids, starts_at__lt=filters.end_before, ends_at__gt=filters.start_at
    ).values_list("unit_id", "starts_at", "ends_at")
    days: dict[int, set[dt.date]] = defaultdict(set)
    for unit_id, starts_at, ends_at in windows:
        day = max(timezone.localdate(starts_at), filters.start)
        # A window ending exactly at midnight does not touch the next day.
        last = timezone.localdate(ends_at - dt.timedelta(microseconds=1))
        while day <= min(last, filters.end):
            days[unit_id].add(day)
            day += dt.timedelta(days=1)
    return days


def utilisation(filters: DashboardFilters) -> Dashboard:
    """One row per unit (withdrawn units only when they worked in the range). Four queries."""
    units = units_in_scope(filters.operator_id).order_by("name")
    if filters.unit_id is not None:
        units = units.filter(pk=filters.unit_id)
    unit_rows = list(units.values("id", "name", "capacity_per_day", "status"))
    ids = [u["id"] for u in unit_rows]
    visits = Visit.objects.filter(unit_id__in=ids, date__gte=filters.start, date__lte=filters.end).exclude(
        status=VisitStatus.CANCELLED
    )
    studies = Study.objects.filter(study_day_q(filters), unit_id__in=ids)
    if filters.hospital_id is not None:
        visits = visits.filter(hospital_id=filters.hospital_id)
        studies = studies.filter(hospital_id=filters.hospital_id)
    visit_counts = {
        v["unit_id"]: v
        for v in visits.order_by()
        .values("unit_id")
        .annotate(
            days=Count("date", filter=WORKED, distinct=True),
            worked=Count("id", filter=WORKED),
            booked=Sum("exams_booked"),
        )
    }
    exams = dict(studies.order_by().values("unit_id").annotate(n=Count("id")).values_list("unit_id", "n"))
    maintenance = _maintenance_days(filters, ids)
    rows = []
    for unit in unit_rows:
        v: Mapping[str, Any] = visit_counts.get(unit["id"], {})
        days_on_site, worked, done = v.get("days", 0), v.get("worked", 0), exams.get(unit["id"], 0)
        if unit["status"] == "withdrawn" and not (worked or done):
            continue
        capacity = unit["capacity_per_day"] * days_on_site
        available = filters.days - len(maintenance.get(unit["id"], ()))
        rows.append(
            {
                "unit": unit["name"],
                "capacity_per_day": unit["capacity_per_day"],
                "available_days": available,
                "days_on_site": days_on_site,
                "on_site_percent": rate(days_on_site, available),
                "visits_worked": worked,
                "exams_booked": v.get("booked") or 0,
                "exams_done": done,
                "exams_per_visit": round(done / worked, 2) if worked else None,
                "capacity": capacity,
                "utilisation_percent": rate(done, capacity),
            }
        )
    chart = bar_chart(
        [r["unit"] for r in rows],
        [
            ("Available days", [r["available_days"] for r in rows]),
            ("Days on site", [r["days_on_site"] for r in rows]),
        ],
        y_label="days",
    )
    table = Table("utilisation", "Unit utilisation", COLUMNS, rows)
    return Dashboard(
        key="utilisation",
        title="Unit utilisation",
        tables=[table],
        chart=chart,
        filters_used=("dates", "hospital", "unit"),
    )
