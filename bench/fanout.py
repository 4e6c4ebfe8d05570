"""Live-update fan-out latency (target: a worklist event reaches 1,000 readers, p99 <= 50 ms).

Two measurements in one run, on the same Redis:
  baseline   1,000 bare channels-redis channels in one group, in this process: ``group_send``
             a timestamped message, time until each channel's ``receive()`` has it (no Django,
             no daphne, no websocket): what the channel layer alone costs.
  websocket  a real daphne (subprocess, free loopback port) serving ``/ws/reading/``; 1,000
             readers of one pool connect with API tokens; this process emits events through
             ``event_emit`` (database row, commit, after-commit ``group_send``) and times each
             event from just before ``event_emit`` to the moment its frame reaches each client.

All clients live on one asyncio loop; they are minimal RFC 6455 clients (an
``asyncio.Protocol`` that timestamps frames in ``data_received``), so the measurement is not
dominated by a client library's per-message overhead on this 2-core machine. Needs REDIS_URL:
daphne and this process must share a channel layer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._serve import serve

TARGET_P99_MS = 50.0
NEEDS_REDIS = (
    "bench fanout needs REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0): the websocket path "
    "runs through daphne in another process, which only a shared channels-redis layer can reach."
)


# --- a minimal websocket client ------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """Handshake, then record (arrival time, payload) of every text frame; answer pings."""

    def __init__(self, request: bytes, run: _Run):
        self.request = request
        self.run = run
        self.buf = bytearray()
        self.open = False
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.perf_counter()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(head.split(b"\r\n", 1)[0].decode()))
                return
            self.open = True
            self.opened.set_result(True)
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self.buf
        while len(buf) >= 2:
            opcode, size, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, offset = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + size:
                return
            payload = bytes(buf[offset : offset + size])
            del buf[: offset + size]
            if opcode == 0x1:
                self.run.frame(now, payload)
            elif opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005

    def _send(self, opcode: int, payload: bytes) -> None:
        # Client frames are masked (RFC 6455 5.3); pongs and the close are all this client sends.
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self._send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()

    def connection_lost(self, exc):
        self.transport = None
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


class _Run:
    """Frames received across all clients, and a wake-up when an event reached everyone."""

    def __init__(self, clients: int):
        self.clients = clients
        self.frames: list[tuple[float, bytes]] = []
        self.want = 0
        self.done: asyncio.Future | None = None

    def expect(self, total: int) -> asyncio.Future:
        self.want = total
        self.done = asyncio.get_running_loop().create_future()
        if len(self.frames) >= total:
            self.done.set_result(True)
        return self.done

    def frame(self, now: float, payload: bytes) -> None:
        self.frames.append((now, payload))
        if self.done is not None and not self.done.done() and len(self.frames) >= self.want:
            self.done.set_result(True)


async def _connect(port: int, key: str, run: _Run) -> _Client:
    handshake = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/reading/?token={key} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {handshake}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: _Client(request, run), "127.0.0.1", port)
    await asyncio.wait_for(client.opened, 30)
    return client


# --- setup -----------------------------------------------------------------------------------------


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _readers(n: int):
    """One pool, ``n`` radiologists in it, an API token each (bulk-created: setup is not timed)."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.utils import timezone
    from knox.models import AuthToken, get_digest_token
    from knox.settings import CONSTANTS, knox_settings

    from core.choices import OrganisationKind, Role
    from core.models import Organisation, User
    from telerad.models import Radiologist, ReadingPool

    group = Organisation.objects.create(
        name="Bench reading group", kind=OrganisationKind.READING_GROUP, region_code="BENCH"
    )
    pool = ReadingPool.objects.create(reading_group=group, name="Bench pool", modalities=["CT"])
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"bench-reader-{i}", organisation=group, password=unusable) for i in range(n)]
    )
    role = Group.objects.get(name=Role.RADIOLOGIST)
    User.groups.through.objects.bulk_create([User.groups.through(user=u, group=role) for u in users])
    readers = Radiologist.objects.bulk_create([Radiologist(user=u) for u in users])
    Radiologist.pools.through.objects.bulk_create(
        [Radiologist.pools.through(radiologist=r, readingpool=pool) for r in readers]
    )
    keys = []
    rows = []
    expiry = timezone.now() + knox_settings.TOKEN_TTL
    for u in users:
        digest, key = get_digest_token()
        keys.append(key)
        rows.append(
            AuthToken(digest=digest, token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], user=u, expiry=expiry)
        )
    AuthToken.objects.bulk_create(rows)
    return pool, keys


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


# --- the two measurements --------------------------------------------------------------------------


async def _baseline(clients: int, events: int, warmup: int, prefix: str) -> dict[str, float]:
    from channels_redis.core import RedisChannelLayer
    from django.conf import settings

    layer = RedisChannelLayer(hosts=[settings.REDIS_URL], prefix=f"{prefix}-bare")
    group = "bench-fanout"
    channels = [await layer.new_channel() for _ in range(clients)]
    for channel in channels:
        await layer.group_add(group, channel)
    arrivals: list[tuple[float, float, int]] = []
    want = {"n": 0}
    done: dict[str, asyncio.Future] = {}

    async def listen(channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            arrivals.append((time.perf_counter(), message["t0"], message["i"]))
            if len(arrivals) >= want["n"] and not done["f"].done():
                done["f"].set_result(True)

    listeners = [asyncio.ensure_future(listen(channel)) for channel in channels]
    try:
        await asyncio.sleep(0.2)  # let every receive() be waiting
        for i in range(warmup + events):
            want["n"] = clients * (i + 1)
            done["f"] = asyncio.get_running_loop().create_future()
            await layer.group_send(group, {"type": "bench", "t0": time.perf_counter(), "i": i})
            await asyncio.wait_for(done["f"], 10)
            await asyncio.sleep(0.05)
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await layer.flush()
    samples = [(at - t0) * 1000 for at, t0, i in arrivals if i >= warmup]
    assert len(samples) == clients * events, "baseline lost messages"
    return _percentiles(samples)


async def _websocket(port: int, keys: list[str], pool, events: int, warmup: int) -> dict[str, float]:
    from telerad.choices import EventKind
    from telerad.services.events import event_emit

    run = _Run(len(keys))
    clients: list[_Client] = []
    t_connect = time.perf_counter()
    for start in range(0, len(keys), 50):  # batches: daphne's handshake timeout is 5 s
        batch = keys[start : start + 50]
        # One port: the kernel spreads the connections over the processes (SO_REUSEPORT).
        clients += await asyncio.gather(*(_connect(port, key, run) for key in batch))
    connect_s = time.perf_counter() - t_connect

    emit_ms: list[float] = []

    def emit(i: int) -> None:
        t0 = time.perf_counter()
        event_emit(kind=EventKind.STUDY_ADDED, payload={"bench_t0": t0, "bench_i": i}, pool=pool)
        emit_ms.append((time.perf_counter() - t0) * 1000)

    loop = asyncio.get_running_loop()
    # The emitter is a plain sync thread (as a Celery worker is), so the loop keeps receiving.
    with ThreadPoolExecutor(max_workers=1) as emitter:
        try:
            for i in range(warmup + events):
                done = run.expect(len(keys) * (i + 1))
                await loop.run_in_executor(emitter, emit, i)
                try:
                    await asyncio.wait_for(done, 10)
                except TimeoutError:
                    lost = sum(1 for c in clients if c.transport is None or c.transport.is_closing())
                    raise RuntimeError(
                        f"event {i}: {len(run.frames) - len(keys) * i} of {len(keys)} clients got it "
                        f"within 10 s ({lost} connections lost); see the daphne log"
                    ) from None
                await asyncio.sleep(0.05)
        finally:
            for client in clients:
                client.close()
    refused = [c.close_code for c in clients if c.close_code not in (None, 1000)]
    if refused:
        raise RuntimeError(f"{len(refused)} clients were closed by the server, e.g. code {refused[0]}")
    samples = []
    for at, payload in run.frames:
        event = json.loads(payload)
        if event["bench_i"] >= warmup:
            samples.append((at - event["bench_t0"]) * 1000)
    assert len(samples) == len(keys) * events, "websocket clients missed events"
    result = _percentiles(samples)
    result["connect_s"] = connect_s
    result["emit_p50"] = statistics.median(emit_ms[warmup:])
    return result


async def _flush(prefix: str) -> None:
    from channels_redis.core import RedisChannelLayer
    from django.conf import settings

    await RedisChannelLayer(hosts=[settings.REDIS_URL], prefix=prefix).flush()


def run(*, clients: int = 1000, events: int = 50, warmup: int = 5, servers: int = 1) -> dict:
    from channels.layers import channel_layers
    from django.conf import settings

    if not os.environ.get("REDIS_URL"):
        raise SystemExit(NEEDS_REDIS)
    _raise_fd_limit(clients * 2 + 256)
    prefix = f"caravan-bench-{os.getpid()}"
    layers: dict = settings.CHANNEL_LAYERS
    layers["default"]["CONFIG"]["prefix"] = prefix  # shared with daphne, ours alone
    channel_layers.backends.clear()

    pool, keys = _readers(clients)
    baseline = asyncio.run(_baseline(clients, events, warmup, prefix))
    port = _free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="caravan-fanout-"))
    try:
        with serve(
            port, servers, log_dir / "serve.log", env={"CHANNEL_PREFIX": prefix}, probe="/api/health/"
        ):
            websocket = asyncio.run(_websocket(port, keys, pool, events, warmup))
    finally:
        asyncio.run(_flush(prefix))  # group keys would otherwise stay in Redis for a day
    return {
        "clients": clients,
        "events": events,
        "servers": servers,
        "baseline": baseline,
        "websocket": websocket,
    }


def print_table(result: dict) -> bool:
    base, ws = result["baseline"], result["websocket"]
    print(
        f"\nLive-update fan-out ({result['clients']:,} clients x {result['events']} events, "
        f"{result['servers']} daphne process{'es' if result['servers'] > 1 else ''})\n"
    )
    header = f"{'path':36} {'samples':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'met':>4}"
    print(header)
    print("-" * len(header))
    print(
        f"{'baseline: bare channels-redis group':36} {base['n']:>8,} {base['p50']:>8.1f} "
        f"{base['p95']:>8.1f} {base['p99']:>8.1f} {base['max']:>8.1f} {'':>4}"
    )
    met = ws["p99"] <= TARGET_P99_MS
    print(
        f"{'event_emit -> daphne -> websocket':36} {ws['n']:>8,} {ws['p50']:>8.1f} "
        f"{ws['p95']:>8.1f} {ws['p99']:>8.1f} {ws['max']:>8.1f} {'yes' if met else 'NO':>4}"
    )
    print(
        f"\nratio websocket/baseline: p50 {ws['p50'] / base['p50']:.2f}, p99 {ws['p99'] / base['p99']:.2f}"
        f"   (target: p99 <= {TARGET_P99_MS:.0f} ms)"
    )
    print(
        f"event_emit call (row + commit + group_send) p50 {ws['emit_p50']:.1f} ms; "
        f"{result['clients']:,} clients connected in {ws['connect_s']:.1f} s"
    )
    return met
