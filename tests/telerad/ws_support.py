"""Shared helpers of the /ws/reading/ tests: users, tokens, emits, websocket clients, the layer."""

from __future__ import annotations

import copy
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from knox.models import AuthToken

from config.asgi import application
from core.choices import OrganisationKind
from telerad.choices import EventKind
from telerad.models import Radiologist, ReadingPool
from telerad.services.events import event_emit
from tests.core.factories import OrganisationFactory, UserFactory

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def _own_channel_layer(settings):
    """A fresh layer per test; on Redis under a unique prefix, so parallel runs cannot cross-talk."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    if "redis" in layers["default"]["BACKEND"]:
        layers["default"]["CONFIG"]["prefix"] = f"caravan-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = layers  # setting_changed makes channels drop its cached layers
    channel_layers.backends.clear()
    yield
    layer = get_channel_layer()
    if hasattr(layer, "flush") and "redis" in layers["default"]["BACKEND"]:
        async_to_sync(layer.flush)()  # this test's keys only (its own prefix)
    channel_layers.backends.clear()


# --- audience ------------------------------------------------------------------------------------


def _pool(name: str) -> ReadingPool:
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP)
    return ReadingPool.objects.create(reading_group=group, name=name, modalities=["CT"])


def _reader(*pools: ReadingPool):
    user = UserFactory(roles=["radiologist"], organisation=pools[0].reading_group)
    Radiologist.objects.create(user=user).pools.set(pools)
    return user


def _token(user) -> str:
    return AuthToken.objects.create(user=user)[1]


def _session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def _emit(**audience) -> int:
    return event_emit(kind=EventKind.STUDY_ADDED, payload={"n": 1}, **audience).pk


emit = database_sync_to_async(_emit)


# --- websocket helpers ---------------------------------------------------------------------------


async def _open(path: str, headers=None, subprotocols=None, app=None):
    communicator = WebsocketCommunicator(
        app or application, path, headers=[ORIGIN, *(headers or [])], subprotocols=subprotocols
    )
    connected, subprotocol = await communicator.connect(timeout=5)
    return communicator, connected, subprotocol


async def _refused_with(path: str, headers=None, subprotocols=None) -> int:
    """Refusals are accept-then-close so browsers see the code: nothing but the close arrives."""
    communicator, connected, _ = await _open(path, headers, subprotocols)
    assert connected
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close"
    await communicator.wait()
    return closing["code"]


async def _receive(communicator, n: int) -> list[dict]:
    return [await communicator.receive_json_from(timeout=5) for _ in range(n)]
