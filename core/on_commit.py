"""The one way side effects leave a transaction: after it commits.

Celery ``.delay()``, channel-layer sends and Orthanc calls go through ``on_commit`` so a rolled
back transaction never leaks a task or an event. Outside a transaction it runs at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from channels.layers import get_channel_layer
from django.db import transaction

from core.layer_sender import layer_group_send

logger = logging.getLogger(__name__)


def on_commit(callback: Callable[[], object]) -> None:
    transaction.on_commit(callback, robust=True)


def group_send_on_commit(group: str, message: dict) -> None:
    """Send ``message`` to a channel-layer group once the current transaction commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            layer_group_send(layer, group, message)
        except Exception:  # a lost live event must not undo committed work
            logger.exception("group_send to %s failed", group)

    on_commit(send)
