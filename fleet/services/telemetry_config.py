"""Telemetry settings with their defaults (override any of them in config/settings.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Most fixes one POST may carry; more is refused whole (400).
    "TELEMETRY_MAX_BATCH": 1000,
    # A fix may claim to be this far in the future (device clock ahead of ours).
    "TELEMETRY_CLOCK_SKEW_S": 120,
    # A fix older than this on arrival is refused (a device's outbox should not hold weeks).
    "TELEMETRY_MAX_FIX_AGE_DAYS": 7,
    # Reported speed above this is refused as a sensor error (70 m/s = 252 km/h).
    "TELEMETRY_MAX_REPORTED_SPEED_MPS": 70.0,
    # Implied speed from the previous trusted fix above this flags the fix (50 m/s = 180 km/h).
    "TELEMETRY_TELEPORT_SPEED_MPS": 50.0,
    # A unit inside a site leaves it only beyond max(radius x factor, radius + margin).
    "TELEMETRY_GEOFENCE_EXIT_FACTOR": 1.5,
    "TELEMETRY_GEOFENCE_EXIT_MARGIN_M": 50.0,
    # Retention: fixes older than THIN_AFTER_DAYS keep one per unit per KEEP_EVERY_S window
    # (plus flagged ones and those a geofence event points at); all go after RETENTION_DAYS.
    "TELEMETRY_THIN_AFTER_DAYS": 30,
    "TELEMETRY_THIN_KEEP_EVERY_S": 60,
    "TELEMETRY_RETENTION_DAYS": 365,
    # The daily task thins only fixes at most this many days past THIN_AFTER_DAYS (thinned
    # history is not rescanned); a week covers a beat outage of a few days.
    "TELEMETRY_THIN_WINDOW_DAYS": 7,
}


def telemetry_setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
