"""Pre-built websocket frames: byte-identical to autobahn's own framing, written to daphne's
transport only when daphne's send would have written it."""

from __future__ import annotations

import base64
import functools
import os

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from daphne.server import Server
from twisted.internet.testing import StringTransport

from telerad.ws_frames import daphne_raw_writer, text_frame


def _open_protocol() -> tuple[WebSocketServerProtocol, StringTransport]:
    """An autobahn server protocol (daphne's base class) after a real opening handshake, on
    Twisted's in-memory test transport."""
    factory = WebSocketServerFactory("ws://127.0.0.1:9000")
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.dataReceived(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert protocol.state == protocol.STATE_OPEN, transport.value()
    transport.clear()
    return protocol, transport


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frames_match_autobahns_for_every_length_encoding(size):
    payload = b"x" * size
    protocol, transport = _open_protocol()
    protocol.sendMessage(payload, isBinary=False)
    assert text_frame(payload) == transport.value()


def test_the_writer_writes_only_where_daphne_would():
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}
    protocol, transport = _open_protocol()
    writer = daphne_raw_writer(functools.partial(server.handle_reply, protocol))
    assert writer is not None
    frame = text_frame(b'{"seq": 1}')

    assert writer(frame) is True and transport.value() == b""  # not a known connection: dropped
    server.connections[protocol] = {"connected": True}
    assert writer(frame) is True and transport.value() == frame
    server.connections[protocol]["disconnected"] = True
    assert writer(frame) is True and transport.value() == frame  # disconnected: nothing more
    protocol.state = protocol.STATE_CLOSING
    assert writer(frame) is False  # the normal path decides


def test_no_writer_for_anything_but_daphnes_send():
    async def send(message):  # e.g. channels' test communicator
        return None

    assert daphne_raw_writer(send) is None
    assert daphne_raw_writer(functools.partial(send)) is None
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}
    protocol, _ = _open_protocol()
    protocol._perMessageCompress = object()  # compression negotiated: frames differ per socket
    assert daphne_raw_writer(functools.partial(server.handle_reply, protocol)) is None
