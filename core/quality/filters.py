"""The dashboards' filters, parsed from GET parameters; bad input is a 400 with a message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.utils import timezone

from core.exceptions import InvalidInput

DEFAULT_DAYS = 30
MAX_DAYS = 366


class FilterError(InvalidInput):
    """A dashboard filter that cannot be understood (HTTP 400)."""

    status_code = 400
    code = "bad_filter"


@dataclass(frozen=True)
class DashboardFilters:
    """Inclusive local-date range plus optional hospital, unit and reading-pool ids, within the
    viewer's tenancy.

    ``operator_id`` is the tenancy: only that operator's units, their visits and the studies they
    acquired (and the reading, reports, critical results and peer reviews of those studies), and
    its contracts. ``None`` is platform-wide (superusers only). The view sets it from the signed-in
    user (``for_operator``); it is never read from the query string.
    """

    start: dt.date
    end: dt.date
    hospital_id: int | None = None
    unit_id: int | None = None
    pool_id: int | None = None
    operator_id: int | None = None

    @property
    def start_at(self) -> dt.datetime:
        """The first instant of ``start`` in the current time zone."""
        return _midnight(self.start)

    @property
    def end_before(self) -> dt.datetime:
        """The first instant after ``end`` (the range is half-open: ``[start_at, end_before)``)."""
        return _midnight(self.end + dt.timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_query(self) -> dict[str, str]:
        """The filters as GET parameters (for export links)."""
        query = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        for key in ("hospital", "unit", "pool"):
            value = getattr(self, f"{key}_id")
            if value is not None:
                query[key] = str(value)
        return query

    def for_operator(self, operator_id: int | None) -> DashboardFilters:
        """The same filters within one operator's tenancy (``None``: platform-wide)."""
        return replace(self, operator_id=operator_id)

    @classmethod
    def default(cls, today: dt.date | None = None) -> DashboardFilters:
        today = today or timezone.localdate()
        return cls(start=today - dt.timedelta(days=DEFAULT_DAYS - 1), end=today)

    @classmethod
    def from_query(cls, params: Mapping[str, str], *, today: dt.date | None = None) -> DashboardFilters:
        """Parse ``start``/``end`` (YYYY-MM-DD, default: the last 30 days up to today) and the
        ``hospital``/``unit``/``pool`` ids (blank: all). Raises ``FilterError``."""
        default = cls.default(today)
        start = _date(params, "start", default.start)
        end = _date(params, "end", default.end)
        if start > end:
            raise FilterError(f"start ({start}) is after end ({end})")
        if (end - start).days + 1 > MAX_DAYS:
            raise FilterError(
                f"The date range is {(end - start).days + 1} days; at most {MAX_DAYS} are allowed"
            )
        return cls(
            start=start,
            end=end,
            hospital_id=_id(params, "hospital"),
            unit_id=_id(params, "unit"),
            pool_id=_id(params, "pool"),
        )


def _midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _date(params: Mapping[str, str], key: str, default: dt.date) -> dt.date:
    raw = (params.get(key) or "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{key}: {raw[:40]!r} is not a date (YYYY-MM-DD)") from None


def _id(params: Mapping[str, str], key: str) -> int | None:
    raw = (params.get(key) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 12:
        raise FilterError(f"{key}: {raw[:40]!r} is not an id")
    return int(raw)
