"""Signed checkpoints of the audit chain's head, kept outside the database.

One JSON object per line in ``settings.AUDIT_CHECKPOINT_FILE`` (append-only), also logged (logger
``caravan.audit.checkpoint``, which ``AUDIT_CHECKPOINT_SYSLOG`` sends to syslog) and carried by
the ATNA export::

    {"at":"2026-11-20T08:30:00.123456Z","count":1234,"hash":"…","id":1240,"keyed_from":0,
     "key_id":"…","v":1,"sig":"…"}

``id``/``hash`` name the chain's last entry, ``count`` how many entries the chain had up to it,
``keyed_from`` the id of the first keyed entry (0: every entry), ``key_id`` which key signed it.
``sig`` is HMAC-SHA256, under the checkpoint key, of the canonical JSON of the other fields. No
patient data: ids and hashes only. Reading a checkpoint never touches the database.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.audit_chain import Anchor
from core.audit_key import AuditKeys

VERSION = 1
_FIELDS = ("at", "count", "hash", "id", "keyed_from", "key_id", "v")
_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Checkpoint:
    """One verified line of the checkpoint file."""

    id: int
    hash: str
    count: int
    keyed_from: int
    at: str
    key_id: str
    line: str  # the line as written (signature included)
    number: int = 0  # line number in the file, 1-based; 0 when not read from a file

    @property
    def label(self) -> str:
        where = f"line {self.number} " if self.number else ""
        return f"checkpoint {where}({self.at}, entry #{self.id})"

    def anchor(self) -> Anchor:
        return Anchor(self.id, self.hash, self.count, self.label)


def _signature(keys: AuditKeys, fields: dict) -> str:
    return hmac.digest(keys.checkpoint, _encoder.encode(fields).encode(), "sha256").hex()


def checkpoint_make(
    keys: AuditKeys, *, head_id: int, head_hash: str, count: int, keyed_from: int, at: datetime
) -> Checkpoint:
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    fields = {
        "at": stamp,
        "count": count,
        "hash": head_hash,
        "id": head_id,
        "keyed_from": keyed_from,
        "key_id": keys.key_id,
        "v": VERSION,
    }
    line = _encoder.encode(fields | {"sig": _signature(keys, fields)})
    return Checkpoint(head_id, head_hash, count, keyed_from, stamp, keys.key_id, line)


def checkpoint_parse(keys: AuditKeys, line: str, number: int = 0) -> Checkpoint:
    """The checkpoint in ``line``; ValueError naming what is wrong (bad signature, other key…)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or set(data) != {*_FIELDS, "sig"}:
        raise ValueError("not a checkpoint (unexpected fields)")
    fields = {name: data[name] for name in _FIELDS}
    if data["v"] != VERSION:
        raise ValueError(f"unknown checkpoint version {data['v']!r}")
    if data["key_id"] != keys.key_id:
        raise ValueError(f"signed with key {data['key_id']!r}, not the configured key {keys.key_id!r}")
    if not isinstance(data["sig"], str) or not hmac.compare_digest(data["sig"], _signature(keys, fields)):
        raise ValueError("bad signature (the line was changed or forged)")
    return Checkpoint(
        int(data["id"]),
        str(data["hash"]),
        int(data["count"]),
        int(data["keyed_from"]),
        str(data["at"]),
        str(data["key_id"]),
        line,
        number,
    )


def checkpoints_read(keys: AuditKeys, path: Path) -> tuple[list[Checkpoint], list[str]]:
    """Every good checkpoint in the file, and one problem per bad line. No file: nothing."""
    good: list[Checkpoint] = []
    problems: list[str] = []
    try:
        stream = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return good, problems
    except OSError as exc:
        return good, [f"checkpoint file {path}: cannot be read ({exc})"]
    with stream:
        for number, raw in enumerate(stream, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                good.append(checkpoint_parse(keys, line, number))
            except ValueError as exc:
                problems.append(f"checkpoint file {path} line {number}: {exc}")
    return good, problems
