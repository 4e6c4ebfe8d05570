"""Parsing and range checks of the fixes in a telemetry batch (one error per bad field)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fleet.services.telemetry_config import telemetry_setting

FIX_ID_MAX = 64


@dataclass(frozen=True)
class FixIn:
    """A fix that passed every check, in model units."""

    index: int
    fix_id: str | None
    device_time: datetime
    latitude: float
    longitude: float
    speed_mps: float | None
    heading_deg: float | None


@dataclass(frozen=True)
class FixError:
    """Why one field of one fix was refused; ``index`` is its position in the batch."""

    index: int
    fix_id: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "fix_id": self.fix_id, "field": self.field, "message": self.message}


def _number(raw: dict, field: str, low: float, high: float, *, required: bool) -> tuple[float | None, str]:
    value = raw.get(field)
    if value is None:
        return None, ("is required" if required else "")
    # bool is an int in Python, but "lat": true is not a latitude.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, "must be a number"
    number = float(value)
    if not math.isfinite(number):
        return None, "must be a finite number"
    if not low <= number <= high:
        return None, f"must be between {low:g} and {high:g}"
    return number, ""


def _device_time(raw: dict, now: datetime) -> tuple[datetime | None, str]:
    value = raw.get("device_time")
    if value is None:
        return None, "is required"
    if not isinstance(value, str):
        return None, "must be an ISO 8601 string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, "must be an ISO 8601 date-time such as 2026-11-25T09:30:00+08:00"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None, "must include a UTC offset (e.g. +08:00 or Z)"
    skew = timedelta(seconds=telemetry_setting("TELEMETRY_CLOCK_SKEW_S"))
    if parsed > now + skew:
        return None, f"is more than {skew.total_seconds():g} s in the future"
    max_age_days = telemetry_setting("TELEMETRY_MAX_FIX_AGE_DAYS")
    if parsed < now - timedelta(days=max_age_days):
        return None, f"is more than {max_age_days} days old"
    return parsed, ""


def _fix_id(raw: dict) -> tuple[str | None, str]:
    value = raw.get("fix_id")
    if value is None:
        return None, ""
    if not isinstance(value, str) or not value.strip():
        return None, "must be a non-empty string"
    if len(value) > FIX_ID_MAX:
        return None, f"must be at most {FIX_ID_MAX} characters"
    return value, ""


def fix_parse(raw: Any, *, index: int, now: datetime) -> tuple[FixIn | None, list[FixError]]:
    """Check one fix of a batch: the parsed fix, or the errors of every bad field."""
    if not isinstance(raw, dict):
        return None, [FixError(index, None, "non_field_errors", "each fix must be a JSON object")]
    fix_id, fix_id_error = _fix_id(raw)
    reported_id = raw.get("fix_id") if isinstance(raw.get("fix_id"), str) else None
    max_speed = float(telemetry_setting("TELEMETRY_MAX_REPORTED_SPEED_MPS"))
    lat, lat_error = _number(raw, "lat", -90, 90, required=True)
    lon, lon_error = _number(raw, "lon", -180, 180, required=True)
    speed, speed_error = _number(raw, "speed", 0, max_speed, required=False)
    heading, heading_error = _number(raw, "heading", 0, 360, required=False)
    device_time, time_error = _device_time(raw, now)
    problems = {
        "fix_id": fix_id_error,
        "lat": lat_error,
        "lon": lon_error,
        "speed": speed_error,
        "heading": heading_error,
        "device_time": time_error,
    }
    errors = [FixError(index, reported_id, field, message) for field, message in problems.items() if message]
    if errors:
        return None, errors
    assert lat is not None and lon is not None and device_time is not None
    return FixIn(index, fix_id, device_time, lat, lon, speed, heading), []


def fixes_parse(raws: list[Any], *, now: datetime) -> tuple[list[FixIn], list[FixError]]:
    """Check every fix of a batch; good ones and the errors of the bad ones, in batch order."""
    good: list[FixIn] = []
    errors: list[FixError] = []
    for index, raw in enumerate(raws):
        fix, fix_errors = fix_parse(raw, index=index, now=now)
        if fix is not None:
            good.append(fix)
        errors.extend(fix_errors)
    return good, errors
