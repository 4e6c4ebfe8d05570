"""Websocket authentication by API token, on top of the session cookie.

A non-browser client (or a page that holds a token) authenticates with an API token
(django-rest-knox, core/services/api_tokens.py), given either as the ``token`` query parameter or as a
``Sec-WebSocket-Protocol`` value ``token.<key>``. The subprotocol form keeps the key out of URLs
(and so out of proxy access logs); a consumer that sees ``scope["auth_subprotocol"]`` must
accept with that subprotocol, or browsers drop the connection.

A token that is given but unknown, expired or revoked (or belongs to an inactive user) makes the connection
anonymous even if a valid session cookie came with it: a wrong credential fails loudly rather
than silently falling back to another one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

TOKEN_SUBPROTOCOL_PREFIX = "token."


def token_from_scope(scope: dict[str, Any]) -> tuple[str | None, str | None]:
    """The token key offered by the client, and the subprotocol that carried it (if any)."""
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :], protocol
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    keys = query.get("token")
    if keys:
        return keys[0], None
    return None, None


@database_sync_to_async
def _user_for_token(key: str) -> Any:
    from core.services.api_tokens import api_token_user

    return api_token_user(key) or AnonymousUser()


class TokenAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from an API token when one is offered; otherwise leaves the session user."""

    async def __call__(self, scope, receive, send):
        key, subprotocol = token_from_scope(scope)
        if key is not None:
            scope = dict(scope)
            scope["user"] = await _user_for_token(key)
            scope["auth_method"] = "token"
            if subprotocol is not None:
                scope["auth_subprotocol"] = subprotocol
        return await super().__call__(scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802  (named like Channels' AuthMiddlewareStack)
    """Session cookie first (AuthMiddlewareStack), then a token, if offered, overrides it."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
