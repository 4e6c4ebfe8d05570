"""Sign-in, sign-out and failed sign-in as audit entries (ATNA "User Authentication", DCM 110114).

Called by the login and logout views and the API token endpoint, not by Django's auth signals:
the views know the request (source IP) and whether the attempt was for the web or the API. A
failed attempt records the username tried (truncated), never the password. The failure that
trips the lockout (django-axes, settings.AUTH_LOCKOUT_FAILURES) adds an ``auth.lockout`` entry,
and an attempt refused while locked is an ``auth.login_failed`` with ``reason: locked_out``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from core.models import User
from core.services.audit import audit_record

USERNAME_MAX = 150


def auth_login_record(*, user: User, request: HttpRequest, channel: str) -> None:
    audit_record(actor=user, action="auth.login", obj=user, details={"channel": channel}, request=request)


def auth_login_failed_record(
    *, username: str, request: HttpRequest, channel: str, locked_out: bool = False
) -> None:
    """A refused sign-in; ``locked_out`` when refused for a lockout, before any password check."""
    details = {"channel": channel, "username": (username or "")[:USERNAME_MAX]}
    if locked_out:
        details["reason"] = "locked_out"
    audit_record(
        actor=None, action="auth.login_failed", object_type="core.user", details=details, request=request
    )


def auth_lockout_record(*, username: str, request: HttpRequest, channel: str, failures: int) -> None:
    """The failure that locked ``username`` at the caller's address (settings.AUTH_LOCKOUT_*)."""
    audit_record(
        actor=None,
        action="auth.lockout",
        object_type="core.user",
        details={
            "channel": channel,
            "username": (username or "")[:USERNAME_MAX],
            "failures": failures,
            "minutes": settings.AUTH_LOCKOUT_MINUTES,
        },
        request=request,
    )


def auth_logout_record(*, user: User, request: HttpRequest) -> None:
    audit_record(actor=user, action="auth.logout", obj=user, details={"channel": "web"}, request=request)


def auth_login_refused_record(*, username: str, request: HttpRequest, channel: str) -> bool:
    """Audit a refused sign-in from what django-axes noted on ``request``; True when locked out.

    The failure that reaches AUTH_LOCKOUT_FAILURES is recorded as a failure and a lockout; an
    attempt while locked (refused before its password was checked) as a locked-out failure.
    """
    locked = bool(getattr(request, "axes_locked_out", False))
    failures = getattr(request, "axes_failures_since_start", None)
    # Set by the failure that was counted; absent when refused for an existing lock.
    lock_started = locked and failures is not None
    auth_login_failed_record(
        username=username, request=request, channel=channel, locked_out=locked and not lock_started
    )
    if locked and failures is not None:
        auth_lockout_record(username=username, request=request, channel=channel, failures=int(failures))
    return locked
