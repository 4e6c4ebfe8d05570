"""The retention sweep: old ephemeral data goes, audit and clinical records never do."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from core.models import AuditCheck, AuditEntry
from core.services.retention import LOG_FILE_PATTERN, NEVER_SWEPT, log_files_sweep
from core.tasks import retention_sweep
from dicom.models import Order, Study
from fleet.models import GpsFix
from telerad.choices import EventKind
from telerad.models import Addendum, CriticalResult, Notification, ReadingEvent, Report, ReportVersion
from tests.core.audit_support import record_at
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory
from tests.fleet.factories import UnitFactory
from tests.telerad.test_critical import make_final_report, make_radiologist, make_study

pytestmark = pytest.mark.django_db
DAY = 86400


def _age(path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


@pytest.fixture
def old_world(tmp_path, settings):
    now = timezone.now()
    settings.LOG_DIR = tmp_path
    settings.LOG_RETENTION_DAYS = 30
    settings.NOTIFICATION_RETENTION_DAYS = 90
    settings.READING_EVENT_RETENTION_DAYS = 7

    # Records that must survive however old they are.
    reader = make_radiologist()
    hospital = HospitalFactory()
    study = make_study(hospital)
    report = make_final_report(study, reader)
    ReportVersion.objects.create(report=report, version=1, status=report.status, saved_by=reader)
    Addendum.objects.create(report=report, author=reader, text="Correction.", signed_at=now)
    critical = CriticalResult.objects.create(
        report=report, study=study, hospital=hospital, summary="SDH", flagged_by=reader, flagged_at=now
    )
    OrderFactory()
    for days in (3000, 400, 1):
        record_at(
            now - timedelta(days=days), actor=reader, action="study.view", patient_data=True, patient_id="P1"
        )
    AuditCheck.objects.create(ok=True, entries=3)
    Study.objects.filter(pk=study.pk).update(ingested_at=now - timedelta(days=3000))

    # Ephemeral rows, old and recent.
    unit = UnitFactory()
    for days in (400, 2):
        GpsFix.objects.create(
            unit=unit, device_time=now - timedelta(days=days), received_at=now, latitude=30.0, longitude=111.0
        )
    user = UserFactory()
    notes = {
        "old_read": Notification.objects.create(recipient=user, kind="x", message="m"),
        "old_unread": Notification.objects.create(recipient=user, kind="x", message="m"),
        "recent_read": Notification.objects.create(recipient=user, kind="x", message="m"),
        "old_read_critical": Notification.objects.create(
            recipient=user, kind="critical.result", message="m", critical_result=critical
        ),
    }
    old = now - timedelta(days=91)
    Notification.objects.filter(pk=notes["old_read"].pk).update(created_at=old, read_at=old)
    Notification.objects.filter(pk=notes["old_unread"].pk).update(created_at=old)
    Notification.objects.filter(pk=notes["recent_read"].pk).update(read_at=now)
    Notification.objects.filter(pk=notes["old_read_critical"].pk).update(created_at=old, read_at=old)
    kind = EventKind.values[0]
    old_event = ReadingEvent.objects.create(kind=kind, user=user)
    recent_event = ReadingEvent.objects.create(kind=kind, user=user)
    ReadingEvent.objects.filter(pk=old_event.pk).update(created_at=now - timedelta(days=8))

    files = {
        name: tmp_path / name
        for name in (
            "caravan-11.log.2026-01-01",
            "caravan-11.log",
            "caravan-12.log.2026-11-24",
            "keep-me.txt",
        )
    }
    for path in files.values():
        path.write_text("line\n")
    for name in ("caravan-11.log.2026-01-01", "caravan-11.log", "keep-me.txt"):
        _age(files[name], 40)
    return {"notes": notes, "events": (old_event, recent_event), "files": files}


def _protected_counts() -> dict[str, int]:
    models = (AuditCheck, Report, ReportVersion, Addendum, CriticalResult, Study, Order)
    return {model.__name__: model.objects.count() for model in models}


def test_sweep_removes_old_ephemeral_data_and_never_audit_or_reports(old_world):
    audit_before = list(AuditEntry.objects.order_by("id").values_list("id", "hash"))
    protected = _protected_counts()
    assert protected == {
        "AuditCheck": 1,
        "Report": 1,
        "ReportVersion": 1,
        "Addendum": 1,
        "CriticalResult": 1,
        "Study": 1,
        "Order": 1,
    }

    counts = retention_sweep.delay().get()

    assert counts == {
        "gps_fixes_expired": 1,
        "gps_fixes_thinned": 0,
        "log_files": 2,
        "notifications": 1,
        "reading_events": 1,
    }
    assert _protected_counts() == protected
    audit_after = list(AuditEntry.objects.order_by("id").values_list("id", "hash"))
    assert audit_after[: len(audit_before)] == audit_before  # every entry kept, unchanged
    sweep = AuditEntry.objects.order_by("-id").first()
    assert (sweep.action, sweep.details_data) == ("retention.sweep", counts)
    assert len(audit_after) == len(audit_before) + 1

    notes = old_world["notes"]
    assert set(Notification.objects.values_list("pk", flat=True)) == {
        notes["old_unread"].pk,
        notes["recent_read"].pk,
        notes["old_read_critical"].pk,
    }
    assert list(ReadingEvent.objects.values_list("pk", flat=True)) == [old_world["events"][1].pk]
    assert GpsFix.objects.count() == 1
    files = old_world["files"]
    assert sorted(p.name for p in files.values() if p.exists()) == [
        "caravan-12.log.2026-11-24",
        "keep-me.txt",
    ]


def test_second_sweep_finds_nothing(old_world):
    retention_sweep()
    assert retention_sweep() == {
        "gps_fixes_expired": 0,
        "gps_fixes_thinned": 0,
        "log_files": 0,
        "notifications": 0,
        "reading_events": 0,
    }


def test_log_sweep_without_a_log_dir_does_nothing(tmp_path):
    assert log_files_sweep(log_dir=None, days=1) == 0
    assert log_files_sweep(log_dir=tmp_path / "missing", days=1) == 0


def test_log_file_pattern_matches_only_our_files():
    assert LOG_FILE_PATTERN.match("caravan-123.log") and LOG_FILE_PATTERN.match("caravan-123.log.2026-11-24")
    assert not LOG_FILE_PATTERN.match("caravan.log.bak") and not LOG_FILE_PATTERN.match("postgres.log")


def test_never_swept_names_the_records_the_issue_protects():
    assert {
        "core.AuditEntry",
        "telerad.Report",
        "telerad.ReportVersion",
        "telerad.Addendum",
        "dicom.Study",
        "dicom.Order",
        "telerad.CriticalResult",
    } <= NEVER_SWEPT


def test_sweep_is_on_the_beat_schedule_and_replaces_telemetry_thin():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert schedule["retention-sweep"]["task"] == "core.tasks.retention_sweep"
    assert "telemetry-thin" not in schedule
