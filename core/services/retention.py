"""Retention: delete what is only kept for a while (docs/retention.md).

What is swept, each with its own setting: GPS telemetry (fleet's thinning and expiry, the
``TELEMETRY_*`` settings), rotated application log files in ``LOG_DIR`` (``LOG_RETENTION_DAYS``),
read notifications not tied to a critical result (``NOTIFICATION_RETENTION_DAYS``) and the
live-worklist replay rows (``READING_EVENT_RETENTION_DAYS``).

Never swept, whatever the settings: the audit log (append-only, and the database refuses),
reports, report versions, addenda, studies, orders, critical results and their notifications.
``NEVER_SWEPT`` names them; a test keeps this module honest.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from core.services.audit import audit_record

logger = logging.getLogger(__name__)

NEVER_SWEPT = frozenset(
    {
        "core.AuditEntry",
        "core.AuditCheck",
        "telerad.Report",
        "telerad.ReportVersion",
        "telerad.Addendum",
        "telerad.CriticalResult",
        "dicom.Study",
        "dicom.Order",
    }
)
# Our files: "caravan-<pid>.log" and its rotations "caravan-<pid>.log.YYYY-MM-DD".
LOG_FILE_PATTERN = re.compile(r"^caravan(-\d+)?\.log(\.\d{4}-\d{2}-\d{2})?$")
DELETE_CHUNK = 1000


def _delete_in_chunks(queryset) -> int:
    deleted = 0
    while ids := list(queryset.values_list("pk", flat=True)[:DELETE_CHUNK]):
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted


def log_files_sweep(*, log_dir: Path | None, days: int, now: float | None = None) -> int:
    """Delete our log files in ``log_dir`` last written more than ``days`` ago.

    TimedRotatingFileHandler's backupCount already prunes each live process's rotations; this
    catches files of processes that have gone (a restart starts a new per-process file). Only
    names we write match: anything else an operator keeps there is left alone.
    """
    if log_dir is None or not log_dir.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - days * 86400
    deleted = 0
    for path in log_dir.iterdir():
        if not LOG_FILE_PATTERN.match(path.name) or not path.is_file():
            continue
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def notifications_sweep(*, before: datetime) -> int:
    """Read notifications older than ``before``; those about a critical result are kept."""
    from telerad.models import Notification

    return _delete_in_chunks(
        Notification.objects.filter(
            read_at__isnull=False, created_at__lt=before, critical_result__isnull=True
        ).order_by("pk")
    )


def reading_events_sweep(*, before: datetime) -> int:
    """Live-worklist replay rows older than ``before`` (a client that far behind reloads)."""
    from telerad.models import ReadingEvent

    return _delete_in_chunks(ReadingEvent.objects.filter(created_at__lt=before).order_by("pk"))


def retention_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Apply every retention period once; returns what went, by kind, and audits the sweep."""
    from fleet.tasks import telemetry_thin_task

    now = now or timezone.now()
    telemetry = telemetry_thin_task()
    counts = {
        "gps_fixes_expired": int(telemetry["expired"]),
        "gps_fixes_thinned": int(telemetry["thinned"]),
        "log_files": log_files_sweep(
            log_dir=settings.LOG_DIR, days=settings.LOG_RETENTION_DAYS, now=now.timestamp()
        ),
        "notifications": notifications_sweep(
            before=now - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
        ),
        "reading_events": reading_events_sweep(
            before=now - timedelta(days=settings.READING_EVENT_RETENTION_DAYS)
        ),
    }
    logger.info("retention sweep: %s", counts)
    audit_record(actor=None, action="retention.sweep", details=counts)
    return counts
