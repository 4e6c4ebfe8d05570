"""A cancelled task that is talking to Redis must end: nothing in our stack may swallow the cancel.

When a socket read timeout is set, redis-py wraps every read in ``asyncio.timeout()``, and on
our Python (3.11.2) a cancel that lands there is lost: the read fails, the command is retried
on a new connection and returns, and the task goes on. redis-py 8 sets a 5 s timeout by
default. Measured with 400 random cancels of a ZADD loop: 102 lost with the default, 0 with
``socket_timeout=None``; with a blocking BZPOPMIN (what channels-redis's receive does) and a
15 s timeout, 5-8 in 100. A ``while True`` loop around Redis calls (the reading fan-out's pump)
then never ends, and event loops hang in their shutdown: a websocket test waited forever in
``asyncio.run``'s task cancellation in CI. config/settings.py gives the channel layer no read
timeout (TCP keepalive instead), and the fan-out stops its pump with a message on the pump's own
channel rather than trusting the cancel (a cancel was still lost about once in 40 group
lifetimes without a read timeout); these tests use the layer exactly as configured.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid

import pytest
from asgiref.sync import async_to_sync

from telerad.consumers import ReadingFanout

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset: no real Redis configured (CI sets it)"
)
ROUNDS = 150


def _configured_host() -> dict:
    from django.conf import settings

    return dict(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0])


def _cancel_lands(loop_body) -> int:
    """Runs ``loop_body`` forever in a task, cancels it at a random moment, ROUNDS times.

    Returns how many of those tasks were still running half a second after their cancel.
    """

    async def scenario():
        rnd = random.Random(7)
        lost = 0
        for _ in range(ROUNDS):

            async def forever():
                while True:
                    await loop_body()

            task = asyncio.ensure_future(forever())
            await asyncio.sleep(rnd.random() * 0.004)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=0.5)
            if not done:
                lost += 1
                while not task.done():  # a swallowed cancel: cancel again until it ends
                    task.cancel()
                    await asyncio.wait([task], timeout=0.1)
        return lost

    return async_to_sync(scenario)()


def test_cancelled_redis_command_ends_the_task():
    from channels_redis.utils import create_pool
    from redis import asyncio as aioredis

    client: aioredis.Redis | None = None
    key = f"caravan-test-cancel-{uuid.uuid4().hex}"

    async def command():
        nonlocal client
        if client is None:  # a connection made the way the channel layer makes its own
            client = aioredis.Redis(connection_pool=create_pool(_configured_host()))
        await client.zadd(key, {"member": 1.0})
        await client.bzpopmin(f"{key}-empty", timeout=1)

    lost = _cancel_lands(command)
    assert lost == 0, f"{lost} of {ROUNDS} cancelled tasks went on running (redis-py lost the cancel)"


def test_reading_fanout_pump_ends_when_its_group_is_left():
    """The pump blocks in channels-redis's receive; leaving the group must stop it, every time."""
    from channels_redis.core import RedisChannelLayer

    class Member:
        async def live_event(self, event, text=None):
            pass

    async def scenario():
        layer = RedisChannelLayer(
            hosts=[os.environ["REDIS_URL"]], prefix=f"caravan-test-{uuid.uuid4().hex[:12]}"
        )
        fanout = ReadingFanout(layer)
        rnd = random.Random(11)
        stuck = 0
        try:
            for n in range(40):
                member = Member()
                await fanout.join(f"g{n}", member)
                pump = fanout.groups[f"g{n}"].pump
                assert pump is not None
                for _ in range(rnd.randrange(3)):
                    await layer.group_send(f"g{n}", {"type": "reading.event", "event": {"seq": n}})
                await asyncio.sleep(rnd.random() * 0.01)
                await fanout.leave(f"g{n}", member)
                done, _ = await asyncio.wait([pump], timeout=2)
                stuck += not done

            return stuck
        finally:
            await layer.flush()

    assert async_to_sync(scenario)() == 0
