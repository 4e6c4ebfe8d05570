"""Sign-in, sign-out and failed sign-in as audit entries (ATNA "User Authentication", DCM 110114).

Called by the login and logout views and the API token endpoint, not by Django's auth signals:
the views know the request (source IP) and whether the attempt was for the web or the API. A
failed attempt records the username tried (truncated), never the password.
"""

from __future__ import annotations

from django.http import HttpRequest

from core.models import User
from core.services.audit import audit_record

USERNAME_MAX = 150


def auth_login_record(*, user: User, request: HttpRequest, channel: str) -> None:
    audit_record(actor=user, action="auth.login", obj=user, details={"channel": channel}, request=request)


def auth_login_failed_record(*, username: str, request: HttpRequest, channel: str) -> None:
    audit_record(
        actor=None,
        action="auth.login_failed",
        object_type="core.user",
        details={"channel": channel, "username": (username or "")[:USERNAME_MAX]},
        request=request,
    )


def auth_logout_record(*, user: User, request: HttpRequest) -> None:
    audit_record(actor=user, action="auth.logout", obj=user, details={"channel": "web"}, request=request)
