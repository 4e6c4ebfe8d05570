"""Live map updates over /ws/fleet/map/: who may listen, what fleet_map_publish sends, the throttle."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client
from knox.models import AuthToken

from config.asgi import application
from core.choices import Role
from fleet import live
from fleet.live import fleet_map_publish
from fleet.models import UnitPosition
from tests.fleet.map_factories import (
    OperatorFactory,
    UnitFactory,
    UnitPositionFactory,
    dispatcher,
    hospital_user,
)

ORIGIN = (b"origin", b"http://localhost")
pytestmark = pytest.mark.django_db(transaction=True)


def _cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def _open(headers=(), subprotocols=None):
    communicator = WebsocketCommunicator(
        application, "/ws/fleet/map/", headers=[ORIGIN, *headers], subprotocols=subprotocols
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def _close_code(headers=()) -> int:
    communicator = await _open(headers)
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close"
    await communicator.wait()
    return closing["code"]


def _move(unit, lat: float, lon: float) -> list[int]:
    """Store a new position and publish it in one transaction, as the telemetry ingest does."""
    with transaction.atomic():
        UnitPosition.objects.filter(unit=unit).update(latitude=lat, longitude=lon)
        return fleet_map_publish(unit_ids=[unit.pk])


move = database_sync_to_async(_move)


def test_anonymous_is_refused_with_4401():
    assert async_to_sync(_close_code)() == 4401


def test_hospital_user_and_technologist_are_refused_with_4403():
    operator = OperatorFactory()
    cookies = [_cookie(hospital_user()), _cookie(dispatcher(operator, role=Role.TECHNOLOGIST))]

    async def scenario():
        return [await _close_code([cookie]) for cookie in cookies]

    assert async_to_sync(scenario)() == [4403, 4403]


def test_dispatcher_gets_the_update_after_commit_and_other_operators_do_not():
    operator, other = OperatorFactory(), OperatorFactory()
    unit = UnitFactory(operator=operator, name="Live CT 7", status="en_route")
    UnitPositionFactory(unit=unit, latitude=30.0, longitude=111.0)
    mine, theirs = _cookie(dispatcher(operator)), _cookie(dispatcher(other, role=Role.ADMIN))

    async def scenario():
        watcher = await _open([mine])
        stranger = await _open([theirs])
        sent = await move(unit, 30.5, 112.25)
        message = await watcher.receive_json_from(timeout=5)
        assert await stranger.receive_nothing(timeout=0.3)
        assert await watcher.receive_nothing(timeout=0.1)  # exactly one message for the batch
        await watcher.disconnect()
        await stranger.disconnect()
        return sent, message

    sent, message = async_to_sync(scenario)()
    assert sent == [unit.pk]
    assert message["kind"] == "units"
    (row,) = message["units"]
    assert (row["id"], row["name"], row["status"], row["source"]) == (unit.pk, "Live CT 7", "en_route", "gps")
    assert (row["latitude"], row["longitude"]) == (30.5, 112.25)
    assert row["last_seen"] is not None


def test_token_subprotocol_is_accepted():
    operator = OperatorFactory()
    _, token = AuthToken.objects.create(user=dispatcher(operator))

    async def scenario():
        communicator = WebsocketCommunicator(
            application, "/ws/fleet/map/", headers=[ORIGIN], subprotocols=[f"token.{token}"]
        )
        connected, subprotocol = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, subprotocol

    assert async_to_sync(scenario)() == (True, f"token.{token}")


def test_rolled_back_batch_sends_nothing(django_capture_on_commit_callbacks):
    unit = UnitFactory()
    UnitPositionFactory(unit=unit)
    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                fleet_map_publish(unit_ids=[unit.pk])
                raise RuntimeError("ingest failed")
        except RuntimeError:
            pass
    assert callbacks == []


def test_one_message_per_call_for_several_units(django_capture_on_commit_callbacks, monkeypatch):
    operator = OperatorFactory()
    units = [UnitFactory(operator=operator, name=f"Van {n}") for n in range(3)]
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        "core.on_commit.layer_group_send", lambda layer, group, message: sent.append((group, message))
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert fleet_map_publish(unit_ids=[u.pk for u in units] + [units[0].pk]) == [u.pk for u in units]
    assert len(sent) == 1
    group, message = sent[0]
    assert group == f"fleet-map-{operator.pk}"
    assert message["type"] == "fleet.map"
    assert [row["name"] for row in message["payload"]["units"]] == ["Van 0", "Van 1", "Van 2"]
    # Never positioned: the depot, as on the page.
    assert {row["source"] for row in message["payload"]["units"]} == {"depot"}


def test_throttle_sends_one_message_per_unit_per_window(django_capture_on_commit_callbacks, monkeypatch):
    first, second = UnitFactory(), UnitFactory()
    sent: list[dict] = []
    monkeypatch.setattr("core.on_commit.layer_group_send", lambda layer, group, message: sent.append(message))
    with django_capture_on_commit_callbacks(execute=True):
        assert fleet_map_publish(unit_ids=[first.pk]) == [first.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert fleet_map_publish(unit_ids=[first.pk]) == []  # within the window: nothing at all
    with django_capture_on_commit_callbacks(execute=True):
        assert fleet_map_publish(unit_ids=[first.pk, second.pk]) == [second.pk]
    assert [[row["id"] for row in m["payload"]["units"]] for m in sent] == [[first.pk], [second.pk]]

    # After the window the unit is sent again.
    from django.core.cache import cache

    cache.delete(live._throttle_key(first.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert fleet_map_publish(unit_ids=[first.pk]) == [first.pk]
    assert len(sent) == 3


def test_throttle_over_the_websocket_two_publishes_one_message():
    operator = OperatorFactory()
    unit = UnitFactory(operator=operator)
    UnitPositionFactory(unit=unit, latitude=30.0, longitude=111.0)
    cookie = _cookie(dispatcher(operator))

    async def scenario():
        watcher = await _open([cookie])
        await move(unit, 30.1, 111.1)
        await move(unit, 30.2, 111.2)  # inside the 2 s window: dropped
        first = await watcher.receive_json_from(timeout=5)
        quiet = await watcher.receive_nothing(timeout=0.5)
        await watcher.disconnect()
        return first, quiet

    first, quiet = async_to_sync(scenario)()
    assert (first["units"][0]["latitude"], first["units"][0]["longitude"]) == (30.1, 111.1)
    assert quiet


def test_a_telemetry_batch_moves_the_unit_on_the_dispatchers_map():
    """End to end: the device posts a batch; the dispatcher's map socket gets one message with it."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.fleet.telemetry_factories import device_key, fix, post_fixes

    operator = OperatorFactory()
    unit = UnitFactory(operator=operator, name="Telemetry CT 3", status="en_route")
    _, key = device_key(unit)
    watcher_cookie = _cookie(dispatcher(operator))
    now = timezone.now()
    batch = [
        fix(now - timedelta(seconds=10 - 5 * i), 30.60 + 0.001 * i, 114.30, fix_id=f"f{i}") for i in range(3)
    ]

    async def scenario():
        watcher = await _open([watcher_cookie])
        response = await database_sync_to_async(post_fixes)(unit.pk, key, batch)
        message = await watcher.receive_json_from(timeout=5)
        quiet = await watcher.receive_nothing(timeout=0.3)
        await watcher.disconnect()
        return response, message, quiet

    response, message, quiet = async_to_sync(scenario)()
    assert response.status_code == 200 and response.json()["accepted"] == 3
    (row,) = message["units"]
    assert (row["id"], row["latitude"], row["longitude"]) == (unit.pk, 30.602, 114.30)
    assert quiet
