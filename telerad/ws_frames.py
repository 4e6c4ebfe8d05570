"""Writing one live event to many websockets without framing it once per socket.

A server-to-client websocket frame is not masked (RFC 6455 §5.1), so the bytes of a text frame
are the same for every socket: the fan-out frames an event once and writes those bytes to each
socket's transport. Under daphne that skips, per socket, the coroutine hop through the server's
``handle_reply``, the UTF-8 encode and autobahn's framing (25-60 µs a socket in the profile of
``bench fanout``); what remains is the write itself.

``daphne_raw_writer`` recognises daphne's ``send`` (``functools.partial(server.handle_reply,
protocol)``) and returns a writer only when it can honour the same rules ``handle_reply`` and
autobahn do: the socket is open, daphne has not marked it disconnected, and no per-message
compression was negotiated (the frame would have to be compressed per socket). Anything else
(another server, a test communicator, a compressed socket) gets ``None`` and the normal send.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

TEXT_FIN = 0x81  # FIN + opcode 1 (text)

RawWriter = Callable[[bytes], bool]


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame carrying ``payload`` (UTF-8)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", TEXT_FIN, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", TEXT_FIN, 126, length)
    else:
        header = struct.pack("!BBQ", TEXT_FIN, 127, length)
    return header + payload


def daphne_raw_writer(send: object) -> RawWriter | None:
    """A writer of pre-built frames to this socket, or None when ``send`` is not daphne's."""
    if not isinstance(send, functools.partial) or len(send.args) != 1 or send.keywords:
        return None
    protocol = send.args[0]
    server = getattr(send.func, "__self__", None)
    transport = getattr(protocol, "transport", None)
    connections = getattr(server, "connections", None)
    if transport is None or not isinstance(connections, dict) or not hasattr(protocol, "STATE_OPEN"):
        return None
    if getattr(protocol, "_perMessageCompress", None) is not None:
        return None

    def write(frame: bytes) -> bool:
        if protocol.state != protocol.STATE_OPEN:
            return False  # closing or closed: the normal path decides (it drops it)
        connection = connections.get(protocol)
        if connection is None or connection.get("disconnected"):
            return True  # what handle_reply does: nothing
        transport.write(frame)
        return True

    return write
