"""Retention (thinning and expiry), its Celery task, and the device token command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from fleet.choices import GeofenceEventKind
from fleet.models import DeviceToken, GeofenceEvent, GpsFix
from fleet.services.telemetry import device_key_hash
from fleet.services.telemetry_retention import telemetry_thin
from fleet.tasks import telemetry_thin_task
from tests.fleet.factories import UnitFactory
from tests.fleet.telemetry_factories import SiteFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _fixes(unit, start: datetime, n: int, step_s: int, **extra) -> list[GpsFix]:
    return GpsFix.objects.bulk_create(
        GpsFix(
            unit=unit, device_time=start + timedelta(seconds=i * step_s), received_at=NOW,
            latitude=30.0, longitude=111.0, **extra,
        )
        for i in range(n)
    )  # fmt: skip


def test_thinning_keeps_one_per_window_plus_flagged_and_referenced():
    unit, other = UnitFactory(), UnitFactory()
    old_start = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)  # 55 days before NOW, window-aligned
    old = _fixes(unit, old_start, 60, 5)  # 5 minutes at 5 s: 5 windows of 60 s
    other_old = _fixes(other, old_start, 24, 5)  # 2 windows
    flagged = _fixes(unit, old_start + timedelta(seconds=2), 1, 5, flagged=True, flag_reason="jump")[0]
    referenced = old[13]  # inside the second window, not its first fix
    GeofenceEvent.objects.create(
        unit=unit,
        site=SiteFactory(),
        kind=GeofenceEventKind.ARRIVAL,
        at=referenced.device_time,
        fix=referenced,
    )
    recent = _fixes(unit, NOW - timedelta(days=2), 30, 5)
    expired = _fixes(unit, NOW - timedelta(days=400), 10, 5)

    result = telemetry_thin(older_than_days=30, keep_every_s=60, max_age_days=365, now=NOW)

    kept = set(GpsFix.objects.values_list("pk", flat=True))
    expected = {old[i].pk for i in (0, 12, 24, 36, 48)} | {other_old[0].pk, other_old[12].pk}
    expected |= {flagged.pk, referenced.pk} | {f.pk for f in recent}
    assert kept == expected
    assert result.expired == len(expired)
    assert result.thinned == (60 - 5 - 1) + (24 - 2)
    assert GeofenceEvent.objects.get().fix_id == referenced.pk
    # Running it again removes nothing more.
    again = telemetry_thin(older_than_days=30, keep_every_s=60, max_age_days=365, now=NOW)
    assert (again.expired, again.thinned) == (0, 0)
    assert set(GpsFix.objects.values_list("pk", flat=True)) == expected


def test_expiry_removes_even_referenced_fixes():
    unit = UnitFactory()
    ancient = _fixes(unit, NOW - timedelta(days=400), 2, 5)
    event = GeofenceEvent.objects.create(
        unit=unit,
        site=SiteFactory(),
        kind=GeofenceEventKind.ARRIVAL,
        at=ancient[0].device_time,
        fix=ancient[0],
    )
    result = telemetry_thin(older_than_days=30, keep_every_s=60, max_age_days=365, now=NOW)
    assert result.expired == 2 and GpsFix.objects.count() == 0
    event.refresh_from_db()
    assert event.fix is None  # the event itself stays


def test_task_uses_the_settings(settings):
    settings.TELEMETRY_THIN_AFTER_DAYS = 1
    settings.TELEMETRY_THIN_KEEP_EVERY_S = 3600
    settings.TELEMETRY_RETENTION_DAYS = 10
    unit = UnitFactory()
    from django.utils import timezone

    start = timezone.now() - timedelta(days=3)
    start = start.replace(minute=0, second=0, microsecond=0)
    _fixes(unit, start, 12, 60)  # one hour window -> one kept
    _fixes(unit, timezone.now() - timedelta(days=11), 3, 5)
    assert telemetry_thin_task.delay().get() == {"expired": 3, "thinned": 11}
    assert GpsFix.objects.count() == 1


def test_device_token_command_issues_and_revokes(capsys):
    unit = UnitFactory(name="CT Van Command")
    call_command("device_token", "issue", "CT Van Command", "--label", "SN-1")
    out = capsys.readouterr().out.strip().splitlines()
    raw = out[-1]
    token = DeviceToken.objects.get(unit=unit)
    assert token.key_hash == device_key_hash(raw) and token.label == "SN-1"
    call_command("device_token", "revoke", str(token.pk))
    assert DeviceToken.objects.get(pk=token.pk).revoked_at is not None
    with pytest.raises(CommandError, match="already revoked"):
        call_command("device_token", "revoke", str(token.pk))
    with pytest.raises(CommandError, match="No unit named"):
        call_command("device_token", "issue", "nope")


def test_window_limits_thinning_to_recent_history():
    unit = UnitFactory()
    cutoff = NOW - timedelta(days=30)
    in_window = _fixes(unit, cutoff - timedelta(hours=12), 12, 5)  # one 60 s window
    beyond = _fixes(unit, cutoff - timedelta(days=3), 12, 5)  # left for a backfill run
    result = telemetry_thin(older_than_days=30, keep_every_s=60, window_days=1, now=NOW)
    assert result.thinned == 11
    kept = set(GpsFix.objects.values_list("pk", flat=True))
    assert kept == {in_window[0].pk} | {f.pk for f in beyond}
