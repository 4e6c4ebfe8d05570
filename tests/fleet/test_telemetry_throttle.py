"""Telemetry ingestion is throttled per device token (TELEMETRY_THROTTLE_RATE): 429 with Retry-After."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.models import GpsFix
from tests.core.auth_support import Clock
from tests.fleet.factories import UnitFactory
from tests.fleet.telemetry_factories import device_key, fix, post_fixes

pytestmark = pytest.mark.django_db


def _one_fix(i: int) -> list[dict]:
    return [fix(timezone.now() - timedelta(minutes=5) + timedelta(seconds=10 * i), 30.0, 111.0, f"t{i}")]


def test_the_default_rate_leaves_room_for_a_van_catching_up(settings):
    # A van posts a batch every 10-60 s; after a dead spot it sends its backlog in bursts.
    assert settings.TELEMETRY_THROTTLE_RATE == "600/min"


def test_a_device_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored(settings, monkeypatch):
    clock = Clock(monkeypatch)
    settings.TELEMETRY_THROTTLE_RATE = "3/min"
    unit, other_unit = UnitFactory(), UnitFactory()
    _, key = device_key(unit)
    _, other_key = device_key(other_unit)

    assert [post_fixes(unit.pk, key, _one_fix(i)).status_code for i in range(3)] == [200, 200, 200]
    refused = post_fixes(unit.pk, key, _one_fix(3))
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert GpsFix.objects.filter(unit=unit).count() == 3
    # Another van's device has its own budget.
    assert post_fixes(other_unit.pk, other_key, _one_fix(0)).status_code == 200

    clock.advance(seconds=61)
    assert post_fixes(unit.pk, key, _one_fix(4)).status_code == 200
    assert GpsFix.objects.filter(unit=unit).count() == 4


def test_a_bad_device_token_is_401_before_any_throttle(settings):
    settings.TELEMETRY_THROTTLE_RATE = "1/min"
    unit = UnitFactory()
    for _ in range(3):
        assert post_fixes(unit.pk, "not-a-key", _one_fix(0)).status_code == 401
