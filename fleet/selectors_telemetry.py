"""Telemetry reads."""

from __future__ import annotations

from django.db.models import QuerySet

from fleet.models import DeviceToken, GpsFix
from fleet.services.telemetry import device_key_hash


def device_token_for_key(raw_key: str) -> DeviceToken | None:
    """The live (not revoked) token whose key is ``raw_key``; only its hash is ever compared."""
    if not raw_key:
        return None
    return (
        DeviceToken.objects.select_related("unit")
        .filter(key_hash=device_key_hash(raw_key), revoked_at__isnull=True)
        .first()
    )


def unit_fixes(*, unit_id: int) -> QuerySet[GpsFix]:
    """A unit's fixes in device-time order."""
    return GpsFix.objects.filter(unit_id=unit_id).order_by("device_time", "pk")
