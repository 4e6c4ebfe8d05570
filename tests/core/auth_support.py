"""Shared pieces of the sign-in lockout, throttle and API token tests: a movable clock."""

from __future__ import annotations

import time
from datetime import timedelta

import axes.attempts
import axes.handlers.proxy
import pytest
from django.utils import timezone

from core.api.throttles import SettingRateThrottle

PASSWORD = "pw-Caravan-123"  # tests/core/factories.UserFactory's


class Clock:
    """Wall time as Django, django-axes, knox and our throttles see it, moved forward on demand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.offset = timedelta(0)
        real_now = timezone.now

        def now():
            return real_now() + self.offset

        # axes imported ``now`` by name; everyone else calls ``timezone.now`` through the module.
        for module in (timezone, axes.handlers.proxy, axes.attempts):
            monkeypatch.setattr(module, "now", now)

        def timer(_throttle) -> float:
            return time.time() + self.offset.total_seconds()

        monkeypatch.setattr(SettingRateThrottle, "timer", timer)

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)
