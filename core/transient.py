"""Errors that pass by themselves: the tasks that meet them retry with backoff instead of failing.

A database that refused a connection ("too many clients"), dropped one mid-task, or a broker
that could not take a message for a moment. The tasks retried on them are idempotent (they take
ids and re-read the state), so running one again is harmless.
"""

from __future__ import annotations

from django.db import InterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    DatabaseOperationalError,
    InterfaceError,
    BrokerOperationalError,
)
