"""Telemetry writes: device tokens and the ingest of a van's batch of GPS fixes.

A batch is stored whole or refused whole only for reasons of the batch (size, token); within
it, each fix is judged alone: bad fixes are refused with reasons, duplicates (same ``fix_id``,
or same device time and place when the device sends no id) are counted and skipped, fixes that
imply an impossible jump are stored flagged and ignored for position and geofences.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.exceptions import Conflict, InvalidInput
from core.models import User
from core.services import audit_record
from fleet.models import DeviceToken, GeofenceEvent, GpsFix, Unit, UnitPosition
from fleet.services.telemetry_config import telemetry_setting
from fleet.services.telemetry_geo import farther_than, geodesic_m
from fleet.services.telemetry_geofence import geofence_process
from fleet.services.telemetry_validation import FixError, FixIn, fixes_parse

KEY_PREFIX = "dev_"
LABEL_MAX = 100


def device_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8", "replace")).hexdigest()


@transaction.atomic
def device_token_issue(*, unit: Unit, actor: User | None, label: str = "") -> tuple[DeviceToken, str]:
    """A new token for the unit's device; the raw key is returned once and never stored."""
    if len(label) > LABEL_MAX:
        raise InvalidInput(f"label is at most {LABEL_MAX} characters")
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = DeviceToken.objects.create(unit=unit, key_hash=device_key_hash(raw_key), label=label)
    audit_record(
        actor=actor, action="device_token.issue", obj=token, details={"unit": unit.pk, "label": label}
    )
    return token, raw_key


@transaction.atomic
def device_token_revoke(*, token: DeviceToken, actor: User | None) -> DeviceToken:
    """Refuse the token from now on (kept, for the audit trail)."""
    now = timezone.now()
    if not DeviceToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        raise Conflict(f"Device token {token.pk} is already revoked", code="already_revoked")
    token.revoked_at = now
    audit_record(actor=actor, action="device_token.revoke", obj=token, details={"unit": token.unit_id})
    return token


@dataclass
class IngestResult:
    """What one batch did. ``moved_unit_ids`` lists the units whose position changed (for the map)."""

    unit_id: int
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    flagged: int = 0
    errors: list[FixError] = field(default_factory=list)
    position: UnitPosition | None = None
    moved_unit_ids: list[int] = field(default_factory=list)
    events: list[GeofenceEvent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        position = self.position
        return {
            "unit": self.unit_id,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "flagged": self.flagged,
            "errors": [error.as_dict() for error in self.errors],
            "moved": bool(self.moved_unit_ids),
            "position": None
            if position is None
            else {
                "lat": position.latitude,
                "lon": position.longitude,
                "speed": position.speed_mps,
                "heading": position.heading_deg,
                "device_time": position.device_time.isoformat(),
            },
            "events": [
                {
                    "kind": event.kind,
                    "site": event.site_id,
                    "at": event.at.isoformat(),
                    "visit": event.visit_id,
                }
                for event in self.events
            ],
        }


def _drop_duplicates(unit: Unit, fixes: list[FixIn]) -> tuple[list[FixIn], int]:
    """Fixes not yet stored. Without a ``fix_id``, same device time and place means the same fix."""
    ids = {fix.fix_id for fix in fixes if fix.fix_id is not None}
    times = {fix.device_time for fix in fixes if fix.fix_id is None}
    stored_ids: set[str | None] = set()
    stored_points: set[tuple[datetime, float, float]] = set()
    if ids:
        stored_ids = set(GpsFix.objects.filter(unit=unit, fix_id__in=ids).values_list("fix_id", flat=True))
    if times:
        rows = GpsFix.objects.filter(unit=unit, fix_id__isnull=True, device_time__in=times)
        stored_points = set(rows.values_list("device_time", "latitude", "longitude"))
    fresh: list[FixIn] = []
    for fix in fixes:
        if fix.fix_id is not None:
            if fix.fix_id in stored_ids:
                continue
            stored_ids.add(fix.fix_id)  # a repeat inside the batch is a duplicate too
        else:
            point = (fix.device_time, fix.latitude, fix.longitude)
            if point in stored_points:
                continue
            stored_points.add(point)
        fresh.append(fix)
    return fresh, len(fixes) - len(fresh)


def _flag_teleports(unit: Unit, rows: list[GpsFix], position: UnitPosition | None) -> None:
    """Flag each new fix whose implied speed from the previous trusted fix (by device time) is impossible.

    The previous trusted fix may be stored already (late and out-of-order batches) or earlier in
    this batch; a flagged fix never becomes the reference for the next one.
    """
    if not rows:
        return
    limit = float(telemetry_setting("TELEMETRY_TELEPORT_SPEED_MPS"))
    first, last = min(r.device_time for r in rows), max(r.device_time for r in rows)
    stored: list[tuple[datetime, float, float]]
    if position is not None and position.device_time < first:
        # The usual batch, newer than anything stored: the position is the latest trusted fix.
        stored = [(position.device_time, position.latitude, position.longitude)]
    else:
        trusted = GpsFix.objects.filter(unit=unit, flagged=False)
        stored = list(
            trusted.filter(Q(device_time__gte=first, device_time__lte=last)).values_list(
                "device_time", "latitude", "longitude"
            )
        )
        before = trusted.filter(device_time__lt=first).order_by("-device_time")
        stored.extend(before.values_list("device_time", "latitude", "longitude")[:1])
    # Stored fixes sort before new ones at the same instant: they are the reference.
    timeline: list[tuple[datetime, int, float, float, GpsFix | None]] = [
        (t, 0, lat, lon, None) for t, lat, lon in stored
    ]
    timeline += [(r.device_time, 1, r.latitude, r.longitude, r) for r in rows]
    timeline.sort(key=lambda item: (item[0], item[1]))
    reference: tuple[datetime, float, float] | None = None
    for t, _, lat, lon, row in timeline:
        if row is not None and reference is not None:
            seconds = max((t - reference[0]).total_seconds(), 1.0)
            if farther_than(reference[1], reference[2], lat, lon, limit * seconds):
                metres = geodesic_m(reference[1], reference[2], lat, lon)
                row.flagged = True
                row.flag_reason = (
                    f"implied speed {metres / seconds:.0f} m/s from the previous trusted fix "
                    f"({metres:.0f} m in {seconds:.0f} s) exceeds {limit:g} m/s"
                )
                continue
        reference = (t, lat, lon)


def _position_upsert(
    unit: Unit, position: UnitPosition | None, newest: GpsFix, received_at: datetime
) -> tuple[UnitPosition, bool]:
    """Move the unit's position to ``newest`` unless a later fix (by device time) is already there."""
    values = {
        "latitude": newest.latitude,
        "longitude": newest.longitude,
        "speed_mps": newest.speed_mps,
        "heading_deg": newest.heading_deg,
        "device_time": newest.device_time,
        "received_at": received_at,
    }
    if position is None:
        return UnitPosition.objects.create(unit=unit, **values), True
    if position.device_time >= newest.device_time:
        return position, False
    UnitPosition.objects.filter(pk=position.pk).update(**values)
    for name, value in values.items():
        setattr(position, name, value)
    return position, True


@transaction.atomic
def telemetry_ingest(*, unit: Unit, fixes: list[Any], received_at: datetime | None = None) -> IngestResult:
    """Store a batch of raw fixes (dicts as the device sent them) for ``unit``; see the module doc."""
    max_batch = int(telemetry_setting("TELEMETRY_MAX_BATCH"))
    if len(fixes) > max_batch:
        raise InvalidInput(
            f"A batch holds at most {max_batch} fixes; this one has {len(fixes)}", code="batch_too_large"
        )
    now = received_at or timezone.now()
    parsed, errors = fixes_parse(fixes, now=now)
    result = IngestResult(unit_id=unit.pk, errors=errors, rejected=len({e.index for e in errors}))
    if not parsed:
        result.position = UnitPosition.objects.filter(unit_id=unit.pk).first()
        return result
    # One batch per unit at a time: duplicate checks, teleport references and the geofence
    # state all read what the previous batch of the same unit wrote.
    locked = Unit.objects.select_for_update().get(pk=unit.pk)
    fresh, result.duplicates = _drop_duplicates(locked, parsed)
    rows = [
        GpsFix(
            unit=locked,
            fix_id=fix.fix_id,
            device_time=fix.device_time,
            received_at=now,
            latitude=fix.latitude,
            longitude=fix.longitude,
            speed_mps=fix.speed_mps,
            heading_deg=fix.heading_deg,
        )
        for fix in fresh
    ]
    position = UnitPosition.objects.filter(unit=locked).first()
    _flag_teleports(locked, rows, position)
    GpsFix.objects.bulk_create(rows)
    result.accepted = len(rows)
    result.flagged = sum(row.flagged for row in rows)
    trusted = sorted((row for row in rows if not row.flagged), key=lambda row: row.device_time)
    result.position = position
    previous = position.device_time if position else None
    if trusted:
        result.position, moved = _position_upsert(locked, position, trusted[-1], now)
        if moved:
            result.moved_unit_ids = [locked.pk]
    # Geofences only follow the unit forward in device time: fixes older than the position it
    # had before this batch arrived late and cannot reorder arrivals already recorded.
    onward = [row for row in trusted if previous is None or row.device_time > previous]
    result.events = geofence_process(unit=locked, fixes=onward)
    return result
