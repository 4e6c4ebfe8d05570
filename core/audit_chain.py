"""The audit hash chain: canonical form of an entry, its SHA-256, and verification.

Each entry's hash covers every recorded field plus the previous entry's hash, so editing,
inserting or removing a row in the middle breaks the chain at that row.

Canonical payload (version 1): the fields below, each rendered as text, joined by the ASCII
unit separator (0x1F), which no field may contain (JSON escapes it; text fields are checked
on write), so the join is unambiguous:

    timestamp        integer microseconds since 1970-01-01T00:00:00Z
    actor_id         decimal, or empty when there is no actor
    actor_username, actor_role, action, object_type, object_id     as stored
    patient_data     "1" or "0"
    patient_id, source_ip                                          as stored
    details          canonical JSON text (sorted keys, compact), stored as that text
    prev_hash        hex SHA-256 of the previous entry (GENESIS_HASH for the first)

Because the rendering is simple, PostgreSQL can build the same payload in SQL, which lets
verification run at database speed (see ``core.services.audit``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64
SEPARATOR = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# Row layout read back for verification, in payload order.
CHAIN_FIELDS = (
    "timestamp",
    "actor_id",
    "actor_username",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "patient_data",
    "patient_id",
    "source_ip",
    "details",
    "prev_hash",
)
TEXT_FIELDS = (
    "actor_username",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "source_ip",
)

_details_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_details(details: Any) -> str:
    return _details_encoder.encode(details)


def epoch_microseconds(value: datetime) -> int:
    return (value - _EPOCH) // _ONE_US


def payload(
    timestamp: datetime,
    actor_id: int | None,
    actor_username: str,
    actor_role: str,
    action: str,
    object_type: str,
    object_id: str,
    patient_data: bool,
    patient_id: str,
    source_ip: str,
    details: str,
    prev_hash: str,
) -> str:
    return SEPARATOR.join(
        (
            str(epoch_microseconds(timestamp)),
            "" if actor_id is None else str(actor_id),
            actor_username,
            actor_role,
            action,
            object_type,
            object_id,
            "1" if patient_data else "0",
            patient_id,
            source_ip,
            details,
            prev_hash,
        )
    )


def payload_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry_hash(**fields: Any) -> str:
    return payload_hash(payload(**fields))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""


def payloads_from_rows(rows: Iterable[tuple]) -> Iterator[tuple[int, str, str, str]]:
    """Turn ``(id, *CHAIN_FIELDS, hash)`` rows into ``(id, payload, prev_hash, hash)``."""
    for row in rows:
        yield row[0], payload(*row[1:-1]), row[-2], row[-1]


def verify_payloads(rows: Iterable[tuple[int, str, str, str]]) -> VerifyResult:
    """Walk ``(id, payload, prev_hash, hash)`` in id order; stop at the first broken link."""
    expected_prev = GENESIS_HASH
    checked = 0
    sha256 = hashlib.sha256
    for entry_id, text, prev_hash, stored_hash in rows:
        if prev_hash != expected_prev:
            return VerifyResult(
                False, checked, entry_id, "prev_hash does not match the previous entry's hash"
            )
        if sha256(text.encode()).hexdigest() != stored_hash:
            return VerifyResult(False, checked, entry_id, "content does not match its hash")
        expected_prev = stored_hash
        checked += 1
    return VerifyResult(True, checked)
