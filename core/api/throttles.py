"""Request-rate limits whose rates are Django settings (env), counted in the default cache.

DRF's own throttles read ``DEFAULT_THROTTLE_RATES`` once, at import; these read the setting on
every request, so an operator's value and a test's ``settings`` override both apply. A refused
request is a 429 with ``Retry-After`` (seconds), from DRF's ``Throttled``.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from core.http import client_ip


class SettingRateThrottle(SimpleRateThrottle):
    """Counts requests per client address at the rate named by ``rate_setting``."""

    rate_setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def get_ident(self, request) -> str:
        # The same address the audit log and the lockout use: X-Forwarded-For only when
        # TRUST_X_FORWARDED_FOR says a proxy sets it (DRF's own get_ident would trust a client's).
        return client_ip(request) or "unknown"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthRateThrottle(SettingRateThrottle):
    """``POST /api/auth/token/`` per client address (AUTH_THROTTLE_RATE), successes included."""

    scope = "auth"
    rate_setting = "AUTH_THROTTLE_RATE"
