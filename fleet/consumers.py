"""The dispatcher's live fleet map over a websocket: ``/ws/fleet/map/`` (docs/fleet-map.md).

The server only sends: each message is ``{"kind": "units", "at", "units": [...]}`` with the
rows of fleet.selectors_map.map_unit_row. Refusals are accept-then-close with a code, so the
browser can tell them from a dropped link: 4401 (not signed in, or a bad token), 4403 (signed
in but not a dispatcher or administrator of a fleet operator).

Each socket joins its operator's group on the channel layer directly: the dispatchers of one
operator are a handful of sockets, not the reading worklist's thousand, so the shared fan-out
of telerad.consumers is not needed here.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from fleet.selectors_map import map_group_name, map_operator_for_user

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class FleetMapConsumer(AsyncJsonWebsocketConsumer):
    """One dispatcher's live unit positions and statuses for their operator."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        subprotocol = self.scope.get("auth_subprotocol")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED, subprotocol)
            return
        operator = await database_sync_to_async(map_operator_for_user)(user)
        if operator is None:
            await self._refuse(CLOSE_FORBIDDEN, subprotocol)
            return
        # Join before accepting: an update committed after the page's snapshot is not missed.
        self.group = map_group_name(operator.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept(subprotocol=subprotocol)

    async def _refuse(self, code: int, subprotocol: str | None) -> None:
        # A close before the handshake reaches a browser as a bare 1006 (daphne answers 403).
        await self.accept(subprotocol=subprotocol)
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; whatever they send is ignored."""

    async def fleet_map(self, message: dict[str, Any]) -> None:
        await self.send_json(message["payload"])
