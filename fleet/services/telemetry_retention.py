"""Telemetry retention: thin old fixes to one per unit per window, drop the oldest entirely.

Both walk one unit at a time, so every query is a range scan of the (unit, device_time)
index, and delete in chunks, so memory stays bounded whatever the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.exceptions import InvalidInput
from fleet.models import GeofenceEvent, GpsFix, Unit

DELETE_CHUNK = 1000


@dataclass(frozen=True)
class ThinResult:
    """How many fixes went: past the maximum age, and thinned."""

    expired: int
    thinned: int


def _delete_ids(ids: list[int]) -> int:
    deleted = 0
    for start in range(0, len(ids), DELETE_CHUNK):
        # Not a fast delete: GeofenceEvent.fix is SET_NULL, so Django loads each chunk.
        deleted += GpsFix.objects.filter(pk__in=ids[start : start + DELETE_CHUNK]).delete()[0]
    return deleted


def _expire(unit_id: int, before: datetime) -> int:
    deleted = 0
    old = GpsFix.objects.filter(unit_id=unit_id, device_time__lt=before)
    while ids := list(old.values_list("pk", flat=True)[:DELETE_CHUNK]):
        deleted += _delete_ids(ids)
    return deleted


def _thin(unit_id: int, *, since: datetime | None, before: datetime, keep_every_s: int) -> int:
    old = GpsFix.objects.filter(unit_id=unit_id, device_time__lt=before)
    if since is not None:
        # Start on a window boundary, so a window is never split between two runs.
        since = datetime.fromtimestamp(int(since.timestamp()) // keep_every_s * keep_every_s, tz=since.tzinfo)
        old = old.filter(device_time__gte=since)
    referenced = set(
        GeofenceEvent.objects.filter(unit_id=unit_id, fix__in=old).values_list("fix_id", flat=True)
    )
    doomed: list[int] = []
    last_window: int | None = None
    rows = old.order_by("device_time", "pk").values_list("pk", "device_time", "flagged")
    for pk, device_time, flagged in rows.iterator(chunk_size=5000):
        if flagged or pk in referenced:
            continue  # kept, but not the window's representative: a flagged fix is untrusted
        window = int(device_time.timestamp()) // keep_every_s
        if window == last_window:
            doomed.append(pk)
        else:
            last_window = window
    return _delete_ids(doomed)


def telemetry_thin(
    *,
    older_than_days: int,
    keep_every_s: int,
    max_age_days: int | None = None,
    window_days: int | None = None,
    now: datetime | None = None,
) -> ThinResult:
    """Delete fixes past ``max_age_days``; of those older than ``older_than_days`` (and, with
    ``window_days``, not older than that many days more: a daily run need not rescan thinned
    history), keep per unit the first fix (by device time) of each ``keep_every_s`` window,
    every flagged fix and every fix a geofence event points at. Running it again removes
    nothing more."""
    if older_than_days < 0 or keep_every_s < 1:
        raise InvalidInput("older_than_days must be >= 0 and keep_every_s >= 1")
    if max_age_days is not None and max_age_days < older_than_days:
        raise InvalidInput("max_age_days must be at least older_than_days")
    if window_days is not None and window_days < 1:
        raise InvalidInput("window_days must be at least 1")
    now = now or timezone.now()
    cutoff = now - timedelta(days=older_than_days)
    since = None if window_days is None else cutoff - timedelta(days=window_days)
    expired = thinned = 0
    for unit_id in Unit.objects.order_by("pk").values_list("pk", flat=True):
        # One transaction per unit, not one for the run: a long write transaction would hold
        # up ingest (on SQLite it locks the whole database), and a unit done stays done.
        with transaction.atomic():
            if max_age_days is not None:
                expired += _expire(unit_id, now - timedelta(days=max_age_days))
            thinned += _thin(unit_id, since=since, before=cutoff, keep_every_s=keep_every_s)
    return ThinResult(expired=expired, thinned=thinned)
