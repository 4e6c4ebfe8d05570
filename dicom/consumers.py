"""Websocket consumers of the DICOM domain."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dicom.events import unit_qc_group
from dicom.selectors import user_may_watch_unit


class UnitQCConsumer(AsyncJsonWebsocketConsumer):
    """QC verdicts of one unit's studies, live, for its technologists (and dispatch/QC staff)."""

    group: str | None = None

    async def connect(self):
        user = self.scope.get("user")
        unit_id = int(self.scope["url_route"]["kwargs"]["unit_id"])
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await database_sync_to_async(user_may_watch_unit)(user, unit_id):
            await self.close(code=4403)
            return
        self.group = unit_qc_group(unit_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def qc_result(self, event):
        await self.send_json(
            {key: value for key, value in event.items() if key != "type"} | {"event": "qc.result"}
        )
