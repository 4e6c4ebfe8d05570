"""Reads about sign-in lockouts (django-axes' failure records)."""

from __future__ import annotations

import math

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.utils import timezone


def login_lockout_seconds_left(*, username: str, ip_address: str) -> int:
    """Seconds until ``username`` may sign in again from ``ip_address`` (0: not locked by time).

    The lock lasts AUTH_LOCKOUT_MINUTES from the last counted failure; attempts while locked
    are not counted (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT is off), so this is exact.
    """
    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    if last is None:
        return 0
    left = last + settings.AXES_COOLOFF_TIME - timezone.now()
    return max(0, math.ceil(left.total_seconds()))
