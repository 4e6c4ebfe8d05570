"""Live reading events over /ws/reading/: authentication, audience and order."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import transaction

from telerad.choices import EventKind
from telerad.models import ReadingEvent
from telerad.services.events import event_emit
from tests.core.factories import OrganisationFactory, UserFactory
from tests.telerad.ws_support import (
    _open,
    _own_channel_layer,  # noqa: F401  (autouse fixture: a fresh channel layer per test)
    _pool,
    _reader,
    _receive,
    _refused_with,
    _session_cookie,
    _token,
    emit,
)

pytestmark = pytest.mark.django_db(transaction=True)


# --- authentication ------------------------------------------------------------------------------


def test_anonymous_is_refused_with_4401():
    assert async_to_sync(_refused_with)("/ws/reading/") == 4401


def test_bad_token_is_refused_even_with_a_valid_session():
    pool = _pool("P1")
    user = _reader(pool)
    cookie = _session_cookie(user)

    async def scenario():
        by_query = await _refused_with("/ws/reading/?token=not-a-token", [cookie])
        by_protocol = await _refused_with("/ws/reading/", [cookie], subprotocols=["token." + "0" * 40])
        return by_query, by_protocol

    assert async_to_sync(scenario)() == (4401, 4401)


def test_token_of_inactive_user_is_refused():
    user = _reader(_pool("P1"))
    key = _token(user)
    user.is_active = False
    user.save()
    assert async_to_sync(_refused_with)(f"/ws/reading/?token={key}") == 4401


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "", "1&since=2"])
def test_malformed_since_is_refused_with_4400(since):
    key = _token(_reader(_pool("P1")))
    assert async_to_sync(_refused_with)(f"/ws/reading/?token={key}&since={since}") == 4400


def test_token_in_query_and_in_subprotocol_are_accepted():
    pool = _pool("P1")
    user = _reader(pool)
    key = _token(user)

    async def scenario():
        by_query, ok_q, proto_q = await _open(f"/ws/reading/?token={key}")
        by_proto, ok_p, proto_p = await _open("/ws/reading/", subprotocols=[f"token.{key}"])
        seq = await emit(pool=pool)
        got = (await by_query.receive_json_from(timeout=5), await by_proto.receive_json_from(timeout=5))
        await by_query.disconnect()
        await by_proto.disconnect()
        return ok_q, proto_q, ok_p, proto_p, seq, got

    ok_q, proto_q, ok_p, proto_p, seq, got = async_to_sync(scenario)()
    assert (ok_q, proto_q) == (True, None)
    # The server must echo the subprotocol that carried the token, or browsers drop the socket.
    assert (ok_p, proto_p) == (True, f"token.{key}")
    assert [m["seq"] for m in got] == [seq, seq]


# --- audience and order --------------------------------------------------------------------------


def test_reader_gets_own_pools_in_order_never_another_pool():
    p1, p2, p3 = _pool("P1"), _pool("P2"), _pool("P3")
    reader = _reader(p1, p2)
    other = _reader(p3)
    key = _token(reader)

    async def scenario():
        communicator, connected, _ = await _open(f"/ws/reading/?token={key}")
        assert connected
        mine = []
        for pool in (p1, p3, p2, p3, p1):
            seq = await emit(pool=pool)
            if pool != p3:
                mine.append(seq)
        mine.append(await emit(user=reader))
        await emit(user=other)
        # Addressed to the reader's pool and to the reader: reaches them through two groups, sent once.
        mine.append(await emit(pool=p1, user=reader))
        got = await _receive(communicator, len(mine))
        nothing_else = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return mine, got, nothing_else

    mine, got, nothing_else = async_to_sync(scenario)()
    assert [m["seq"] for m in got] == mine
    assert mine == sorted(mine)
    assert {m["kind"] for m in got} == {"study.added"}
    assert nothing_else


def test_hospital_user_gets_only_their_hospital_and_other_roles_only_their_own():
    hospital_a, hospital_b = OrganisationFactory(), OrganisationFactory()
    pool = _pool("P1")
    pool.hospitals.add(hospital_a)
    clerk = UserFactory(roles=["hospital_user"], organisation=hospital_a)
    dispatcher = UserFactory(roles=["dispatcher"], organisation=OrganisationFactory(kind="operator"))
    dispatcher_key = _token(dispatcher)
    clerk_cookie = _session_cookie(clerk)  # the hospital user comes in with a browser session

    async def scenario():
        hospital_ws, ok_h, _ = await _open("/ws/reading/", [clerk_cookie])
        dispatch_ws, ok_d, _ = await _open(f"/ws/reading/?token={dispatcher_key}")
        assert ok_h and ok_d
        a = await emit(hospital=hospital_a)
        await emit(hospital=hospital_b)
        await emit(pool=pool)
        to_clerk = await emit(user=clerk)
        to_dispatcher = await emit(user=dispatcher)
        got_h = await _receive(hospital_ws, 2)
        got_d = await _receive(dispatch_ws, 1)
        quiet = await hospital_ws.receive_nothing(0.3) and await dispatch_ws.receive_nothing(0.1)
        await hospital_ws.disconnect()
        await dispatch_ws.disconnect()
        return [m["seq"] for m in got_h], [a, to_clerk], [m["seq"] for m in got_d], [to_dispatcher], quiet

    got_h, want_h, got_d, want_d, quiet = async_to_sync(scenario)()
    assert got_h == want_h
    assert got_d == want_d
    assert quiet


def test_event_of_a_rolled_back_transaction_is_never_delivered_nor_replayed():
    pool = _pool("P1")
    key = _token(_reader(pool))

    def emit_then_roll_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            event_emit(kind=EventKind.STUDY_CLAIMED, payload={}, pool=pool)
            raise RuntimeError("claim failed")

    async def scenario():
        communicator, _, _ = await _open(f"/ws/reading/?token={key}")
        await database_sync_to_async(emit_then_roll_back)()
        committed = await emit(pool=pool)
        live = await communicator.receive_json_from(timeout=5)
        quiet = await communicator.receive_nothing(0.3)
        await communicator.disconnect()
        again, _, _ = await _open(f"/ws/reading/?token={key}&since=0")
        replayed = await again.receive_json_from(timeout=5)
        quiet_again = await again.receive_nothing(0.3)
        await again.disconnect()
        return committed, live, quiet, replayed, quiet_again

    committed, live, quiet, replayed, quiet_again = async_to_sync(scenario)()
    assert live["seq"] == committed and replayed["seq"] == committed
    assert quiet and quiet_again
    assert ReadingEvent.objects.count() == 1
