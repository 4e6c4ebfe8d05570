"""Reads behind the live worklist: who hears which events, and the replay a reconnecting client gets.

The audience rules here are the single source for both the live path (which channel-layer
groups a websocket joins) and the replay path (which stored events it may read), so the two
can never disagree about what a user sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, Q, QuerySet

from core.choices import Role
from telerad.models import ReadingEvent, ReadingPool
from telerad.services.events import event_to_message, hospital_group, pool_group, user_group

REPLAY_LIMIT = 1000


@dataclass(frozen=True)
class ReadingAudience:
    """What one user hears: the pools they read for or lead, their hospital, and themselves."""

    user_id: int
    pool_ids: frozenset[int] = field(default_factory=frozenset)
    hospital_id: int | None = None

    @property
    def groups(self) -> list[str]:
        names = [pool_group(pool_id) for pool_id in sorted(self.pool_ids)]
        if self.hospital_id is not None:
            names.append(hospital_group(self.hospital_id))
        names.append(user_group(self.user_id))
        return names

    def events_q(self) -> Q:
        q = Q(user_id=self.user_id)
        if self.pool_ids:
            q |= Q(pool_id__in=self.pool_ids)
        if self.hospital_id is not None:
            q |= Q(hospital_id=self.hospital_id)
        return q


def reading_audience_for_user(user: Any) -> ReadingAudience:
    """Radiologists hear their pools, leads the pools they lead, hospital users their hospital."""
    pool_ids: set[int] = set(ReadingPool.objects.filter(lead_id=user.pk).values_list("id", flat=True))
    if user.has_role(Role.RADIOLOGIST):
        pool_ids.update(ReadingPool.objects.filter(readers__user_id=user.pk).values_list("id", flat=True))
    hospital_id = None
    if user.has_role(Role.HOSPITAL_USER) and user.organisation_id is not None:
        hospital_id = user.organisation_id
    return ReadingAudience(user_id=user.pk, pool_ids=frozenset(pool_ids), hospital_id=hospital_id)


def reading_events_visible(audience: ReadingAudience) -> QuerySet[ReadingEvent]:
    return ReadingEvent.objects.filter(audience.events_q()).order_by("id")


def reading_events_latest_seq(audience: ReadingAudience) -> int:
    """The newest sequence number this audience can see (0 if none): a fresh page resumes from it."""
    return reading_events_visible(audience).aggregate(seq=Max("id"))["seq"] or 0


@dataclass(frozen=True)
class Replay:
    """Stored events after a sequence number, or a resync marker when there are too many."""

    messages: list[dict[str, Any]]
    resync_seq: int | None = None  # set when the gap exceeded the limit: reload, resume from here


def reading_events_replay(audience: ReadingAudience, *, since: int, limit: int = REPLAY_LIMIT) -> Replay:
    """Every stored event after ``since`` that the audience can see, in sequence order."""
    rows = list(
        reading_events_visible(audience)
        .filter(id__gt=since)
        .only("id", "kind", "created_at", "task_id", "payload")[: limit + 1]
    )
    if len(rows) > limit:
        return Replay(messages=[], resync_seq=reading_events_latest_seq(audience))
    return Replay(messages=[event_to_message(row) for row in rows])
