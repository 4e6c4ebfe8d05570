"""The audit hash chain: canonical form of an entry, its SHA-256, and verification.

Each entry's hash covers every recorded field plus the previous entry's hash, so editing,
inserting or removing a row in the middle breaks the chain at that row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

# The fields that are hashed, in order. Changing this list invalidates existing chains.
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

_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    *,
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
    details: Any,
    prev_hash: str,
) -> str:
    payload = _encoder.encode(
        [
            canonical_timestamp(timestamp),
            actor_id,
            actor_username,
            actor_role,
            action,
            object_type,
            object_id,
            patient_data,
            patient_id,
            source_ip,
            details,
            prev_hash,
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""


def verify_rows(rows: Iterable[tuple]) -> VerifyResult:
    """Walk rows of ``("id", *CHAIN_FIELDS, "hash")`` in id order; stop at the first broken link."""
    expected_prev = GENESIS_HASH
    checked = 0
    for row in rows:
        entry_id = row[0]
        fields = dict(zip(CHAIN_FIELDS, row[1:-1], strict=True))
        stored_hash = row[-1]
        if fields["prev_hash"] != expected_prev:
            return VerifyResult(
                False, checked, entry_id, "prev_hash does not match the previous entry's hash"
            )
        if entry_hash(**fields) != stored_hash:
            return VerifyResult(False, checked, entry_id, "content does not match its hash")
        expected_prev = stored_hash
        checked += 1
    return VerifyResult(True, checked)
