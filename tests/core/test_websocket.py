import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from tests.core.factories import UserFactory

ORIGIN = (b"origin", b"http://localhost")


async def _connect(headers):
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@pytest.mark.django_db(transaction=True)
def test_anonymous_websocket_is_refused():
    async def scenario():
        communicator, connected, code = await _connect([ORIGIN])
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4401)


@pytest.mark.django_db(transaction=True)
def test_logged_in_websocket_is_accepted_and_echoes():
    user = UserFactory(roles=["dispatcher"])
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        communicator, connected, _ = await _connect([ORIGIN, (b"cookie", cookie)])
        assert connected
        await communicator.send_json_to({"hello": 1})
        reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return reply

    assert async_to_sync(scenario)() == {"type": "pong", "echo": {"hello": 1}}


@pytest.mark.django_db(transaction=True)
def test_foreign_origin_is_refused():
    async def scenario():
        communicator, connected, _ = await _connect([(b"origin", b"http://evil.example")])
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
