"""Live reading events over a websocket: ``/ws/reading/?since=<seq>``.

Protocol (see docs/live-updates.md): the server only sends; every message is one event
``{"seq", "kind", "at", "task", ...payload}`` or ``{"kind": "resync", "seq"}``. Refusals are
close codes: 4401 (not authenticated, or a bad token), 4400 (bad ``since``).

Replay/live boundary. A reconnecting client gives the last ``seq`` it saw. The consumer joins
its groups *before* reading the replay from the database, so an event committed while the
replay query runs is either in the replay (committed before the query's snapshot) or arrives
live (committed after it; ``event_emit`` serialises appends, so it also has a larger id than
anything replayed). Joining after the query would lose events committed in between. Live
events that arrive while the replay is being sent are buffered and flushed after it, dropping
those already replayed, so the client sees each event once and in order across the boundary.
The replay runs as a task beside the consumer's dispatch loop so the buffer grows in the
consumer, not in the channel layer's bounded per-channel queue (which drops on overflow).

Fan-out. Consumers do not each hold a channel-layer channel: channels-redis wakes every
waiting ``receive()`` in a process through one lock, which costs hundreds of milliseconds per
event at 1,000 sockets (bench/fanout.py measured it). Instead ``ReadingFanout`` keeps one
channel per *group* per process, and hands each message to the local members directly,
JSON-encoded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from telerad.selectors_events import (
    REPLAY_LIMIT,
    ReadingAudience,
    reading_audience_for_user,
    reading_events_replay,
)
from telerad.ws_frames import RawWriter, daphne_raw_writer, text_frame

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
_RECENT = 512  # sequence numbers remembered to drop the second copy of a multi-audience event
_GROUP_REFRESH_S = 3600.0  # channels-redis forgets group members after a day (group_expiry)
_YIELD_EVERY = 50
_NO_LAYER = "reading-consumers-use-the-fanout"
_STOP = "reading.fanout.stop"  # an alias that does not exist: no per-socket channel


@dataclass(eq=False)
class _Group:
    channel: str
    ready: asyncio.Future
    members: set[ReadingConsumer] = field(default_factory=set)
    pump: asyncio.Task | None = None
    closed: bool = False


class ReadingFanout:
    """Per process and event loop: one channel-layer channel per group, shared by local sockets."""

    def __init__(self, layer: Any):
        self.layer = layer
        self.groups: dict[str, _Group] = {}
        self._refresher: asyncio.Task | None = None

    async def join(self, name: str, consumer: ReadingConsumer) -> None:
        """Returns once the group membership is in the channel layer (events sent later arrive)."""
        while True:
            group = self.groups.get(name)
            if group is None:
                group = await self._add_group(name)
                break
            try:
                await asyncio.shield(group.ready)
                break
            except asyncio.CancelledError:
                if not group.ready.cancelled() or _cancel_requested():
                    raise  # this socket's own connect was cancelled
            # The socket creating the group failed or went away before it was joined: try again.
        group.members.add(consumer)

    async def _add_group(self, name: str) -> _Group:
        loop = asyncio.get_running_loop()
        group = _Group(channel=await self.layer.new_channel(prefix="reading"), ready=loop.create_future())
        self.groups[name] = group
        try:
            await self.layer.group_add(name, group.channel)
        except BaseException:
            del self.groups[name]
            group.ready.cancel()
            raise
        group.ready.set_result(True)
        group.pump = asyncio.ensure_future(self._pump(name, group))
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh())
        return group

    async def leave(self, name: str, consumer: ReadingConsumer) -> None:
        group = self.groups.get(name)
        if group is None:
            return
        group.members.discard(consumer)
        if group.members or not group.ready.done():
            return
        del self.groups[name]
        group.closed = True
        with contextlib.suppress(Exception):
            await self.layer.group_discard(name, group.channel)
        # Stop the pump by a message on its own channel, not only by a cancel: a cancel that
        # lands inside the Redis client can be lost (tests/test_redis_cancellation.py), and the
        # pump would then wait in BZPOPMIN for ever. The cancel stays as the fallback for when
        # Redis cannot take the message.
        try:
            await self.layer.send(group.channel, {"type": _STOP})
        except Exception:
            if group.pump is not None:
                group.pump.cancel()

    async def _pump(self, name: str, group: _Group) -> None:
        while not group.closed:
            try:
                message = await self.layer.receive(group.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if group.closed or _cancel_requested():
                    return
                # A Redis hiccup must not silence the group for every socket in this process.
                self._receive_failed(name, exc)
                await asyncio.sleep(0.2)
                continue
            if group.closed:
                return
            if message.get("type") != "reading.event":
                continue
            event = message["event"]
            text = json.dumps(event)
            frame = text_frame(text.encode("utf-8"))  # the same bytes for every socket
            for n, consumer in enumerate(list(group.members), 1):
                try:
                    await consumer.live_event(event, text, frame)
                except Exception:
                    logger.warning("reading fan-out: delivery failed", exc_info=True)
                if n % _YIELD_EVERY == 0:
                    # A websocket send only queues the frame; yielding lets the server write the
                    # first frames out while the rest are still being queued.
                    await asyncio.sleep(0)

    def _receive_failed(self, name: str, exc: Exception) -> None:
        global _timeout_warned
        if type(exc).__name__ == "TimeoutError" and type(exc).__module__.startswith("redis"):
            # channels-redis blocks 5 s in BZPOPMIN; a redis-py socket_timeout of 5 s (its
            # default) times the idle read out first. Say so once, not every 5 s.
            if not _timeout_warned:
                _timeout_warned = True
                logger.warning(
                    "reading fan-out: Redis read timed out while idle; give the channel layer a "
                    "socket_timeout above 5 s (channels-redis blocks that long). Retrying."
                )
            return
        logger.warning("reading fan-out: receive on %s failed; retrying", name, exc_info=exc)

    async def _refresh(self) -> None:
        while self.groups:
            await asyncio.sleep(_GROUP_REFRESH_S)
            for name, group in list(self.groups.items()):
                with contextlib.suppress(Exception):
                    await self.layer.group_add(name, group.channel)


def _cancel_requested() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


_timeout_warned = False
_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadingFanout] = weakref.WeakKeyDictionary()


def reading_fanout() -> ReadingFanout:
    """The fan-out of this event loop on the current default channel layer."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    fanout = _fanouts.get(loop)
    if fanout is None or fanout.layer is not layer:
        fanout = _fanouts[loop] = ReadingFanout(layer)
    return fanout


class ReadingConsumer(AsyncJsonWebsocketConsumer):
    """One reader's (or hospital user's) live worklist events, resumable from a sequence number."""

    channel_layer_alias = _NO_LAYER
    audience: ReadingAudience | None = None

    async def connect(self):
        self._fanout: ReadingFanout | None = None
        self._joined: list[str] = []
        # Live events are held until the socket is accepted and any replay is sent.
        self._replaying = True
        self._buffer: list[tuple[dict[str, Any], str | None]] = []
        self._floor = 0  # events at or below it are never sent (the client has them)
        self._recent: deque[int] = deque(maxlen=_RECENT)
        self._recent_set: set[int] = set()
        self._replay_task: asyncio.Task | None = None
        self._raw_write: RawWriter | None = None

        user = self.scope.get("user")
        subprotocol = self.scope.get("auth_subprotocol")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED, subprotocol)
            return
        since = _parse_since(self.scope.get("query_string", b""))
        if since is False:
            await self._refuse(CLOSE_BAD_REQUEST, subprotocol)
            return
        self._floor = since or 0

        self.audience = await database_sync_to_async(reading_audience_for_user)(user)
        # Join first, then read the replay: see the module docstring.
        self._fanout = reading_fanout()
        for name in self.audience.groups:
            self._joined.append(name)
            await self._fanout.join(name, self)
        await self.accept(subprotocol=subprotocol)
        self._raw_write = daphne_raw_writer(self.base_send)
        if since is not None:
            self._replay_task = asyncio.ensure_future(self._replay(since))
        else:
            await self._flush_buffer()

    async def _refuse(self, code: int, subprotocol: str | None) -> None:
        # Accept, then close: a close before the handshake reaches a browser as a bare 1006
        # (daphne answers HTTP 403), so the client could not tell "log in again" from a dropped link.
        await self.accept(subprotocol=subprotocol)
        await self.close(code=code)

    async def disconnect(self, code):
        if self._replay_task is not None and not self._replay_task.done():
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replay_task
        if self._fanout is not None:
            for name in self._joined:
                await self._fanout.leave(name, self)
        self._joined = []

    async def receive_json(self, content, **kwargs):
        """Clients only listen; whatever they send is ignored."""

    async def live_event(
        self, event: dict[str, Any], text: str | None = None, frame: bytes | None = None
    ) -> None:
        """Called by the fan-out for each event of one of this socket's groups."""
        if self._replaying:
            self._buffer.append((event, text))
            return
        await self._deliver(event, text, frame)

    async def reading_event(self, message: dict[str, Any]) -> None:
        """The channel-layer message type, for a layer that addresses this consumer directly."""
        await self.live_event(message["event"])

    async def _replay(self, since: int) -> None:
        assert self.audience is not None
        try:
            replay = await database_sync_to_async(reading_events_replay)(
                self.audience, since=since, limit=REPLAY_LIMIT
            )
            if replay.resync_seq is not None:
                await self.send_json({"kind": "resync", "seq": replay.resync_seq})
                self._floor = max(self._floor, replay.resync_seq)
            for event in replay.messages:
                await self._deliver(event)
            if replay.messages:
                self._floor = max(self._floor, replay.messages[-1]["seq"])
            await self._flush_buffer()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reading replay failed")
            await self.close(code=1011)

    async def _flush_buffer(self) -> None:
        # Send the live events that came in meanwhile, dropping what was replayed. live_event
        # keeps appending until the flag drops, and nothing awaits between the last emptiness
        # check and the drop, so no event can slip in behind the flush.
        while self._buffer:
            pending, self._buffer = sorted(self._buffer, key=lambda item: item[0]["seq"]), []
            for event, text in pending:
                await self._deliver(event, text)
        self._replaying = False

    async def _deliver(
        self, event: dict[str, Any], text: str | None = None, frame: bytes | None = None
    ) -> None:
        seq = event["seq"]
        # At or below the floor: the client had it before connecting, or it was replayed (or
        # skipped by a resync). In the recent set: a second copy, e.g. an event addressed to a
        # pool *and* a user reaches a member through both groups.
        if seq <= self._floor or seq in self._recent_set:
            return
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)
        # This runs once per socket per event (1,000 sockets per event in bench/fanout.py): the
        # fan-out's pre-built frame straight to daphne's transport when it can (ws_frames), else
        # straight to the server's send (the consumer's send() only wraps the same message).
        if frame is not None and self._raw_write is not None and self._raw_write(frame):
            return
        payload = text if text is not None else json.dumps(event)
        await self.base_send({"type": "websocket.send", "text": payload})


def _parse_since(query_string: bytes) -> int | None | bool:
    """``None`` when absent, the sequence number when valid, ``False`` when malformed."""
    values = parse_qs(query_string.decode("latin1"), keep_blank_values=True).get("since")
    if not values:
        return None
    raw = values[-1]
    if len(values) > 1 or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return False
    return int(raw)
