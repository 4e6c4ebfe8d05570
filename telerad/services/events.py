"""Live worklist events: stored (the sequence clients resume from), then sent after commit.

Every event is a ``ReadingEvent`` row written in the same transaction as the change it
reports; its id is the sequence number. Appends are serialised (like the audit chain) so ids
are assigned in commit order and a client that resumes from sequence N never misses an event
committed later with a smaller id. Once the transaction commits, the event goes to the
channel-layer groups of its audience.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.on_commit import group_send_on_commit
from core.services.audit import audit_chain_lock
from telerad.models import ReadingEvent


def pool_group(pool_id: int) -> str:
    return f"reading-pool-{pool_id}"


def user_group(user_id: int) -> str:
    return f"reading-user-{user_id}"


def hospital_group(hospital_id: int) -> str:
    return f"reading-hospital-{hospital_id}"


def event_to_message(event: ReadingEvent) -> dict[str, Any]:
    """The JSON a websocket client receives (also what a replay sends)."""
    return {
        "seq": event.pk,
        "kind": event.kind,
        "at": event.created_at.isoformat(),
        "task": event.task_id,
        **event.payload,
    }


@transaction.atomic
def event_emit(
    *,
    kind: str,
    payload: dict[str, Any],
    task=None,
    pool=None,
    user=None,
    hospital=None,
) -> ReadingEvent:
    """Record one event for its audience (a pool, a user and/or a hospital) and send it after commit."""
    if pool is None and user is None and hospital is None:
        raise ValueError("an event needs an audience: pool, user or hospital")
    # The audit chain's lock, not one of our own: services write audit entries and events in
    # either order, and two locks taken in opposite orders by two transactions would deadlock.
    audit_chain_lock()
    event = ReadingEvent.objects.create(
        kind=kind, payload=payload, task=task, pool=pool, user=user, hospital=hospital
    )
    message = {"type": "reading.event", "event": event_to_message(event)}
    for group in _groups(event):
        group_send_on_commit(group, message)
    return event


def _groups(event: ReadingEvent) -> list[str]:
    groups = []
    if event.pool_id:
        groups.append(pool_group(event.pool_id))
    if event.user_id:
        groups.append(user_group(event.user_id))
    if event.hospital_id:
        groups.append(hospital_group(event.hospital_id))
    return groups
