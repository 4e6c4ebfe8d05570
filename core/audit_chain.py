"""The audit hash chain: canonical form of an entry, its keyed hash, and verification.

Each entry's hash covers every recorded field plus the previous entry's hash, so editing,
inserting or removing a row in the middle breaks the chain at that row. The hash is
HMAC-SHA256 under a key the database does not hold (``core.audit_key``), so someone who can
write the table cannot recompute the chain after an edit. Signed checkpoints of the chain's head,
kept outside the database (``core.audit_checkpoints``), anchor the end: removing entries from the
end, or rewriting the chain, contradicts them.

Entries written before the key existed (version 1) carry plain SHA-256 of the same payload.
They verify as such only at the start of the chain, up to the key-epoch entry (action
``audit.chain_keyed``, the first keyed entry, appended by migration 0004 when the table already
had entries); after it every entry must be keyed, and a chain whose plain part is not followed
by that entry is refused. Checkpoints record where keyed hashing
began (``keyed_from``), so a chain rewritten as plain SHA-256 is refused once a checkpoint exists.

Canonical payload (version 1): the fields below, each rendered as text, joined by the ASCII
unit separator (0x1F), which no field may contain (JSON escapes it; text fields are checked
on write), so the join is unambiguous:

    timestamp        integer microseconds since 1970-01-01T00:00:00Z
    actor_id         decimal, or empty when there is no actor
    actor_username, actor_role, action, object_type, object_id     as stored
    patient_data     "1" or "0"
    patient_id, source_ip                                          as stored
    details          canonical JSON text (sorted keys, compact), stored as that text
    prev_hash        hex hash of the previous entry (GENESIS_HASH for the first)

Because the rendering is simple, PostgreSQL can build the same payload in SQL, which lets
verification run at database speed (see ``core.services.audit``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64
# The first keyed entry after a legacy (plain SHA-256) start of the chain.
KEY_EPOCH_ACTION = "audit.chain_keyed"
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


def legacy_hash(text: str) -> str:
    """Version 1: plain SHA-256 of the payload (entries written before the key existed)."""
    return hashlib.sha256(text.encode()).hexdigest()


def keyed_hash(key: bytes, text: str) -> str:
    """HMAC-SHA256 of the payload under the entry key (``core.audit_key.AuditKeys.entry``)."""
    return hmac.digest(key, text.encode(), "sha256").hex()


def keyed_hasher(key: bytes) -> Callable[[bytes], str]:
    """``keyed_hash`` for many payloads: HMAC (RFC 2104) with the padded key's SHA-256 states
    computed once and copied per payload. ``hmac.digest`` sets up its key on every call, which
    costs three times the hashing itself and would take verification below its target."""
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def mac(data: bytes) -> str:
        h = inner.copy()
        h.update(data)
        o = outer.copy()
        o.update(h.digest())
        return o.hexdigest()

    return mac


def entry_hash(key: bytes, **fields: Any) -> str:
    return keyed_hash(key, payload(**fields))


@dataclass(frozen=True)
class Anchor:
    """A chain head recorded outside the database: entry ``id`` had ``hash`` and was the ``count``-th."""

    id: int
    hash: str
    count: int
    label: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    legacy: int = 0  # entries verified as plain SHA-256 (before the key epoch)
    anchors: int = 0  # checkpoints whose entry was found with their hash
    head_id: int = 0
    head_hash: str = GENESIS_HASH


def payloads_from_rows(rows: Iterable[tuple]) -> Iterator[tuple[int, str, str, str]]:
    """Turn ``(id, *CHAIN_FIELDS, hash)`` rows into ``(id, payload, prev_hash, hash)``."""
    for row in rows:
        yield row[0], payload(*row[1:-1]), row[-2], row[-1]


def _action(text: str) -> str:
    return text.split(SEPARATOR, 5)[4]


def _unique_anchors(anchors: Sequence[Anchor]) -> tuple[list[Anchor], Anchor | None]:
    """Sorted by id, one per id; and the first anchor contradicting another at the same id."""
    by_id: dict[int, Anchor] = {}
    for anchor in anchors:
        if anchor.id <= 0:
            continue  # a checkpoint of the empty chain anchors nothing
        seen = by_id.setdefault(anchor.id, anchor)
        if (seen.hash, seen.count) != (anchor.hash, anchor.count):
            return [], anchor
    return sorted(by_id.values(), key=lambda a: a.id), None


def verify_payloads(
    rows: Iterable[tuple[int, str, str, str]],
    *,
    key: bytes,
    anchors: Sequence[Anchor] = (),
    keyed_from: int | None = None,
    start_prev: str = GENESIS_HASH,
    start_count: int = 0,
    start_id: int = 0,
) -> VerifyResult:
    """Walk ``(id, payload, prev_hash, hash)`` in id order; stop at the first broken link.

    ``key`` is the entry key. Plain SHA-256 entries are accepted only before the first keyed
    one, and only below ``keyed_from`` when that is known (from signed checkpoints). Every
    anchor's entry must be present with the anchor's hash and position; the chain must reach
    the last anchor. ``start_id``/``start_prev``/``start_count`` resume after a verified head.
    """
    expected_prev = start_prev
    checked = start_count
    legacy = 0
    head_id = start_id
    legacy_open = start_prev == GENESIS_HASH
    legacy_below = math.inf if keyed_from is None else keyed_from
    ordered, conflict = _unique_anchors(anchors)
    if conflict is not None:
        return VerifyResult(
            False, 0, conflict.id, f"{conflict.label} contradicts another checkpoint of entry #{conflict.id}"
        )
    matched = 0
    first_legacy = 0
    next_anchor = ordered[0].id if ordered else math.inf
    sha256 = hashlib.sha256
    mac = keyed_hasher(key)

    def broken(entry_id: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, entry_id, reason, legacy, matched, head_id, expected_prev)

    for entry_id, text, prev_hash, stored_hash in rows:
        if entry_id > next_anchor:
            anchor = ordered[matched]
            return broken(
                anchor.id,
                f"entry #{anchor.id} recorded by {anchor.label} is missing "
                f"(the chain goes from #{head_id} to #{entry_id})",
            )
        if prev_hash != expected_prev:
            return broken(entry_id, "prev_hash does not match the previous entry's hash")
        data = text.encode()
        if legacy_open:
            if sha256(data).hexdigest() == stored_hash:
                if entry_id >= legacy_below:
                    return broken(
                        entry_id,
                        f"plain SHA-256 hash where keyed hashes began at #{keyed_from} (per the "
                        "checkpoints): recomputed without the key",
                    )
                legacy += 1
                if legacy == 1:
                    first_legacy = entry_id
            elif mac(data) == stored_hash:
                if legacy and _action(text) != KEY_EPOCH_ACTION:
                    return broken(
                        entry_id, f"keyed entry after plain SHA-256 ones without a {KEY_EPOCH_ACTION}"
                    )
                legacy_open = False
            else:
                return broken(entry_id, "content does not match its hash")
        elif mac(data) != stored_hash:
            return broken(entry_id, "content does not match its hash")
        checked += 1
        if entry_id == next_anchor:
            anchor = ordered[matched]
            if stored_hash != anchor.hash:
                return broken(
                    entry_id, f"entry #{entry_id} does not have the hash recorded by {anchor.label}"
                )
            if checked != anchor.count:
                return broken(
                    entry_id,
                    f"entry #{entry_id} is entry {checked} of the chain; {anchor.label} says {anchor.count}",
                )
            matched += 1
            next_anchor = ordered[matched].id if matched < len(ordered) else math.inf
        expected_prev = stored_hash
        head_id = entry_id
    if legacy_open and legacy:
        # Migration 0004 follows plain SHA-256 entries with a key-epoch entry at once, so a chain
        # still plain at its end was recomputed (or cut back to its plain part) without the key.
        return broken(
            first_legacy,
            f"entries #{first_legacy} to #{head_id} have plain SHA-256 hashes and no keyed "
            f"{KEY_EPOCH_ACTION} entry follows them: recomputed without the key",
        )
    if matched < len(ordered):
        last = ordered[-1]
        return broken(
            ordered[matched].id,
            f"the chain ends at #{head_id} ({checked} entries) but {last.label} records entry "
            f"#{last.id} as entry {last.count}: entries were removed from the end "
            f"(entry #{ordered[matched].id} is missing)",
        )
    return VerifyResult(True, checked, None, "", legacy, matched, head_id, expected_prev)
