"""API tokens (django-rest-knox): issue, look up, revoke.

A token is 64 random hex characters, shown once when issued; the database keeps its SHA-512
digest and an expiry (``API_TOKEN_TTL_HOURS`` after issue, not extended by use). A token stops
working when it expires, when its user revokes it (``POST /api/auth/logout/``) or all of theirs
(``POST /api/auth/logoutall/``), when the user's password changes and when the user is
deactivated (``User.save`` calls :func:`api_tokens_revoke_for_user` for both). Knox also refuses
any token of an inactive user, so an ``update()`` that bypasses ``save`` still shuts it out.

The DRF API authenticates with ``knox.auth.TokenAuthentication``; the websocket middleware
(core/ws_auth.py) and the DICOMweb proxy, which are not DRF views, use :func:`api_token_user`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.http import HttpRequest
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework.exceptions import AuthenticationFailed

from core.models import User
from core.services.audit import audit_record
from core.services.auth_audit import auth_login_record

# A raw key is hex; anything longer than this is not one of ours (and is not hashed).
_MAX_KEY_LENGTH = 256


@transaction.atomic
def api_token_issue(*, user: User, request: HttpRequest) -> tuple[str, datetime]:
    """A new token for ``user`` (who has just proved their password): the raw key and its expiry."""
    instance, key = AuthToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)
    auth_login_record(user=user, request=request, channel="api")
    return key, instance.expiry


@transaction.atomic
def api_token_revoke(*, token: AuthToken, request: HttpRequest) -> None:
    """The caller's own token ends now (API sign-out); their other tokens go on."""
    user = token.user
    token.delete()
    audit_record(
        actor=user,
        action="auth.logout",
        obj=user,
        details={"channel": "api", "tokens_revoked": 1},
        request=request,
    )


@transaction.atomic
def api_tokens_revoke_all(*, user: User, request: HttpRequest) -> int:
    """Every token of the caller ends now (sign out everywhere); the number revoked."""
    revoked, _ = AuthToken.objects.filter(user=user).delete()
    audit_record(
        actor=user,
        action="auth.logout",
        obj=user,
        details={"channel": "api", "tokens_revoked": revoked, "scope": "all"},
        request=request,
    )
    return revoked


@transaction.atomic
def api_tokens_revoke_for_user(*, user: User, reason: str) -> int:
    """End every token of ``user`` because their password changed or they were deactivated.

    Audited (without an actor: the model does not know who saved it) only when tokens existed.
    """
    revoked, _ = AuthToken.objects.filter(user=user).delete()
    if revoked:
        audit_record(
            actor=None,
            action="auth.tokens_revoke",
            obj=user,
            details={"reason": reason, "tokens_revoked": revoked},
        )
    return revoked


def api_token_user(key: str) -> User | None:
    """The active user of a valid, unexpired token, else None (an expired token is deleted)."""
    if not key or len(key) > _MAX_KEY_LENGTH:
        return None
    try:
        user, _ = TokenAuthentication().authenticate_credentials(key.encode())
    except AuthenticationFailed:
        return None
    return user
