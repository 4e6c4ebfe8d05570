"""Channel-layer sends from synchronous code over one long-lived event loop per process.

``async_to_sync(layer.group_send)`` outside an event loop makes a new loop for every call, and
channels-redis keeps its connection pools per loop: every live event paid a new TCP connection
to Redis (and its teardown). Here a daemon thread runs one loop for the process's lifetime with
a channel-layer instance of its own (so nobody else's ``flush()`` closes its connections from
another loop), and the connections are reused. A forked child (Celery's prefork pool) starts
its own thread on first use; the parent's does not survive the fork. When the layer settings
change (tests do), the instance is rebuilt and the old one's connections closed.

Only channels-redis goes through the thread: the in-memory layer lives inside one process's
loop(s) and its queues are not thread-safe, so it keeps the plain ``async_to_sync`` path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from django.conf import settings

SEND_TIMEOUT_S = 10.0

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "loop": None, "layers": {}}


def layer_group_send(layer: Any, group: str, message: dict, alias: str = "default") -> None:
    """``group_send`` on the channel layer ``layer`` (of ``alias``) from sync code.

    Raises what the send raised (or TimeoutError after SEND_TIMEOUT_S).
    """
    if not type(layer).__module__.startswith("channels_redis"):
        async_to_sync(layer.group_send)(group, message)
        return
    loop, sender, stale = _sender(alias)
    for old in stale:
        _run(loop, old.close_pools())
    _run(loop, sender.group_send(group, message))


def _sender(alias: str) -> tuple[asyncio.AbstractEventLoop, Any, list[Any]]:
    config = json.dumps(settings.CHANNEL_LAYERS[alias], sort_keys=True, default=str)
    with _lock:
        if _state["pid"] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer-sender", daemon=True).start()
            _state.update(pid=os.getpid(), loop=loop, layers={})
        layers: dict[str, tuple[str, Any]] = _state["layers"]
        stale = []
        current = layers.get(alias)
        if current is None or current[0] != config:
            if current is not None:
                stale.append(current[1])
            current = layers[alias] = (config, channel_layers.make_backend(alias))
        return _state["loop"], current[1], stale


def _run(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> Any:
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        return future.result(SEND_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(Exception):
            future.cancel()
        raise
