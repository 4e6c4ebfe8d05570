"""Live reading events: reconnect with ?since=, the replay/live boundary, replay after a restart."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer

import telerad.consumers
import telerad.selectors_events
from config.asgi import build_application
from telerad.consumers import ReadingFanout
from tests.telerad.ws_support import (
    _emit,
    _open,
    _own_channel_layer,  # noqa: F401  (autouse fixture: a fresh channel layer per test)
    _pool,
    _reader,
    _receive,
    _session_cookie,
    _token,
    emit,
)

pytestmark = pytest.mark.django_db(transaction=True)


# --- reconnect and replay ------------------------------------------------------------------------


def test_reconnect_with_since_replays_missed_events_then_live_without_duplicates():
    p1, p2 = _pool("P1"), _pool("P2")
    reader = _reader(p1)
    key = _token(reader)

    async def scenario():
        first, _, _ = await _open(f"/ws/reading/?token={key}")
        seen = await emit(pool=p1)
        last = (await first.receive_json_from(timeout=5))["seq"]
        await first.disconnect()
        missed = [await emit(pool=p1), await emit(user=reader), await emit(pool=p1, user=reader)]
        await emit(pool=p2)
        second, _, _ = await _open(f"/ws/reading/?token={key}&since={last}")
        replayed = await _receive(second, len(missed))
        live_seq = await emit(pool=p1)
        live = await second.receive_json_from(timeout=5)
        quiet = await second.receive_nothing(0.3)
        await second.disconnect()
        return seen, last, missed, [m["seq"] for m in replayed], live_seq, live["seq"], quiet

    seen, last, missed, replayed, live_seq, live, quiet = async_to_sync(scenario)()
    assert last == seen
    assert replayed == missed
    assert live == live_seq > missed[-1]
    assert quiet


def test_event_committed_between_group_join_and_replay_query_is_sent_once(monkeypatch):
    """The boundary race, forced: one event is both in the replay and delivered live."""
    pool = _pool("P1")
    key = _token(_reader(pool))
    old = _emit(pool=pool)
    emitted = {}
    real_replay = telerad.selectors_events.reading_events_replay

    def racing_replay(audience, *, since, limit):
        emitted["during"] = _emit(pool=pool)  # after the group join, before the snapshot
        replay = real_replay(audience, since=since, limit=limit)
        emitted["after"] = _emit(pool=pool)  # after the snapshot: live only
        return replay

    monkeypatch.setattr(telerad.consumers, "reading_events_replay", racing_replay)

    async def scenario():
        communicator, _, _ = await _open(f"/ws/reading/?token={key}&since=0")
        got = await _receive(communicator, 3)
        quiet = await communicator.receive_nothing(0.3)
        await communicator.disconnect()
        return [m["seq"] for m in got], quiet

    got, quiet = async_to_sync(scenario)()
    assert got == [old, emitted["during"], emitted["after"]]
    assert quiet


def test_event_arriving_before_the_socket_is_accepted_is_held_not_lost(monkeypatch):
    """Groups are joined before the handshake completes; an event in between waits for it."""
    pool = _pool("P1")
    key = _token(_reader(pool))
    emitted = {}
    real_join = ReadingFanout.join

    async def join_then_emit(self, name, consumer):
        await real_join(self, name, consumer)
        if name.startswith("reading-pool-") and not emitted:
            emitted["seq"] = await emit(pool=pool)
            await asyncio.sleep(0.05)  # the fan-out hands it over before connect() goes on

    monkeypatch.setattr(ReadingFanout, "join", join_then_emit)

    async def scenario():
        communicator, connected, _ = await _open(f"/ws/reading/?token={key}")
        got = await communicator.receive_json_from(timeout=5)
        quiet = await communicator.receive_nothing(0.3)
        await communicator.disconnect()
        return connected, got["seq"], quiet

    connected, got, quiet = async_to_sync(scenario)()
    assert connected
    assert got == emitted["seq"]
    assert quiet


def test_too_long_a_gap_asks_the_client_to_resync(monkeypatch):
    pool = _pool("P1")
    key = _token(_reader(pool))
    seqs = [_emit(pool=pool) for _ in range(5)]
    monkeypatch.setattr(telerad.consumers, "REPLAY_LIMIT", 3)

    async def scenario():
        communicator, _, _ = await _open(f"/ws/reading/?token={key}&since=0")
        resync = await communicator.receive_json_from(timeout=5)
        nothing_replayed = await communicator.receive_nothing(0.3)
        live_seq = await emit(pool=pool)
        live = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return resync, nothing_replayed, live_seq, live

    resync, nothing_replayed, live_seq, live = async_to_sync(scenario)()
    assert resync == {"kind": "resync", "seq": seqs[-1]}
    assert nothing_replayed
    assert live["seq"] == live_seq


def _restart_scenario(pool, reader, key):
    """Disconnect, events while away, then a new application and channel layer: replay from the DB."""

    async def scenario():
        before_layer = get_channel_layer()
        first, _, _ = await _open(f"/ws/reading/?token={key}")
        await emit(pool=pool)
        last = (await first.receive_json_from(timeout=5))["seq"]
        await first.disconnect()
        missed = [await emit(pool=pool), await emit(user=reader)]

        # "Restart": nothing held in memory survives: a new layer (its client prefix and groups
        # are new) and a newly built application.
        channel_layers.backends.clear()
        restarted = build_application()
        after_layer = get_channel_layer()
        second, ok, _ = await _open(f"/ws/reading/?token={key}&since={last}", app=restarted)
        assert ok
        replayed = [m["seq"] for m in await _receive(second, len(missed))]
        live_seq = await emit(pool=pool)
        live = (await second.receive_json_from(timeout=5))["seq"]
        quiet = await second.receive_nothing(0.3)
        await second.disconnect()
        return before_layer is not after_layer, missed, replayed, live_seq, live, quiet, type(after_layer)

    return async_to_sync(scenario)()


def test_replay_after_a_server_restart_comes_from_the_database():
    pool = _pool("P1")
    reader = _reader(pool)
    new_layer, missed, replayed, live_seq, live, quiet, _ = _restart_scenario(pool, reader, _token(reader))
    assert new_layer
    assert replayed == missed
    assert live == live_seq
    assert quiet


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="REDIS_URL is unset: the real channels-redis layer is not configured (CI sets it)",
)
def test_replay_after_restart_on_the_real_redis_channel_layer():
    from channels_redis.core import RedisChannelLayer

    pool = _pool("P1")
    reader = _reader(pool)
    new_layer, missed, replayed, live_seq, live, quiet, layer_type = _restart_scenario(
        pool, reader, _token(reader)
    )
    assert issubclass(layer_type, RedisChannelLayer)
    assert new_layer
    assert replayed == missed
    assert live == live_seq
    assert quiet


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="REDIS_URL is unset: the real channels-redis layer is not configured (CI sets it)",
)
def test_idle_connection_outlives_the_redis_blocking_read():
    """channels-redis blocks 5 s per BZPOPMIN; a socket idle longer must still get the next event."""
    pool = _pool("P1")
    key = _token(_reader(pool))

    async def scenario():
        communicator, _, _ = await _open(f"/ws/reading/?token={key}")
        await asyncio.sleep(6.5)
        seq = await emit(pool=pool)
        got = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return seq, got["seq"]

    seq, got = async_to_sync(scenario)()
    assert got == seq


# --- the browser client against a real daphne -----------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.browser
@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="REDIS_URL is unset: daphne runs in another process and only channels-redis reaches it",
)
def test_browser_client_receives_live_events_and_replays_after_a_server_restart(settings, monkeypatch):
    """reading-live.js in Chromium: live events, then a daphne restart, then the missed ones."""
    import subprocess
    import time
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections
    from playwright.sync_api import sync_playwright

    from tests.core.test_browser_login import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    pool = _pool("P1")
    reader = _reader(pool)
    reader_cookie = _session_cookie(reader)[1].decode().split("=", 1)[1]

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        db_url = f"sqlite:///{db['NAME']}"
    else:
        db_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        CHANNEL_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        LOG_LEVEL="WARNING",
    )
    port = _free_port()
    daphne_bin = os.path.join(os.path.dirname(sys.executable), "daphne")

    def start():
        proc = subprocess.Popen(
            [daphne_bin, "-b", "127.0.0.1", "-p", str(port), "-v", "0", "config.asgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import socket

        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return proc
            except OSError:
                time.sleep(0.1)
        proc.kill()
        pytest.fail("daphne did not start")

    # event_emit's after-commit send uses async_to_sync, which refuses Playwright's loop thread.
    emitter = ThreadPoolExecutor(max_workers=1)

    def emit_now(**audience) -> int:
        return emitter.submit(_emit, **audience).result()

    base = f"http://127.0.0.1:{port}"
    server = start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": reader_cookie, "url": base}])
            page = context.new_page()
            page.goto(f"{base}/login/")  # any page of the site: the script needs its origin
            page.evaluate(
                """() => {
                  window.got = []; window.states = [];
                  document.body.addEventListener('reading-event', e => window.got.push(e.detail.seq));
                  document.body.addEventListener('reading-status', e => window.states.push(e.detail.state));
                  const s = document.createElement('span');
                  s.setAttribute('data-live-status', '');
                  document.body.appendChild(s);
                }"""
            )
            page.add_script_tag(url="/static/js/reading-live.js")
            page.wait_for_function("window.states.includes('live')", timeout=10_000)
            live = [emit_now(pool=pool), emit_now(pool=pool)]
            page.wait_for_function("window.got.length >= 2", timeout=5_000)
            assert page.locator("[data-live-status]").text_content() == "Live"
            assert page.evaluate("sessionStorage.getItem('caravan.reading.seq')") == str(live[-1])

            server.terminate()
            server.wait(10)
            page.wait_for_function("window.states.includes('offline')", timeout=5_000)
            missed = [emit_now(pool=pool), emit_now(user=reader)]
            server = start()
            page.wait_for_function("window.got.length >= 4", timeout=30_000)
            after = emit_now(pool=pool)
            page.wait_for_function("window.got.length >= 5", timeout=5_000)
            page.wait_for_timeout(300)
            assert page.evaluate("window.got") == [*live, *missed, after]
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
        emitter.submit(connections.close_all).result()  # the thread's own database connection
        emitter.shutdown()
