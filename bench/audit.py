"""Audit chain verification throughput (target: >= 100,000 entries/s).

Fills the chain with N entries (written straight to the table, hashed exactly as the service
does: HMAC-SHA256 under a throw-away key), then times four passes over the same rows in one run:
  baseline-scan   read the rows only (what the database costs)
  baseline-hash   SHA-256 of the canonical payloads already in memory (plain hashing)
  baseline-hmac   HMAC-SHA256 of the same payloads (what keyed hashing costs)
  audit_verify    the real verification (read + canonicalise + HMAC + link check + checkpoints)
The key and checkpoint file are in a temporary directory, never var/; one signed checkpoint of
the middle of the chain is checked on the way.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from datetime import timedelta

TARGET_PER_S = 100_000


def _fill(n: int, key: bytes) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from core.audit_chain import GENESIS_HASH, canonical_details, entry_hash
    from core.models import AuditEntry

    table = AuditEntry._meta.db_table
    start = timezone.now() - timedelta(days=1)
    prev = GENESIS_HASH
    rows = []
    for i in range(n):
        fields = {
            "timestamp": start + timedelta(microseconds=i * 37),
            "actor_id": None,
            "actor_username": f"reader{i % 50}",
            "actor_role": "radiologist",
            "action": "study.view",
            "object_type": "dicom.study",
            "object_id": f"1.2.826.0.1.3680043.8.498.{i}",
            "patient_data": True,
            "patient_id": f"P{i % 5000:06d}",
            "source_ip": "10.1.2.3",
            "details": canonical_details({"frames": i % 300, "proxy": "wado-rs"}),
            "prev_hash": prev,
        }
        digest = entry_hash(key, **fields)
        rows.append(fields | {"hash": digest})
        prev = digest
    cols = [
        "timestamp", "actor_id", "actor_username", "actor_role", "action", "object_type", "object_id",
        "patient_data", "patient_id", "source_ip", "details", "prev_hash", "hash",
    ]  # fmt: skip
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
    with transaction.atomic(), connection.cursor() as cursor:
        ts_field = AuditEntry._meta.get_field("timestamp")
        params = [
            [
                ts_field.get_db_prep_value(r["timestamp"], connection) if c == "timestamp" else r[c]
                for c in cols
            ]
            for r in rows
        ]
        for k in range(0, len(params), 5000):
            cursor.executemany(sql, params[k : k + 5000])


def run(n: int = 200_000) -> list[dict]:
    from django.test import override_settings

    with (
        tempfile.TemporaryDirectory(prefix="caravan-bench-audit-") as tmp,
        override_settings(
            AUDIT_HMAC_KEY_FILE=f"{tmp}/audit-hmac.key",
            AUDIT_HMAC_KEY_GENERATE=True,
            AUDIT_CHECKPOINT_FILE=f"{tmp}/audit-checkpoints.jsonl",
        ),
    ):
        return _run(n)


def _run(n: int) -> list[dict]:
    from core.audit_chain import CHAIN_FIELDS, keyed_hasher, payload
    from core.audit_key import audit_keys
    from core.models import AuditEntry
    from core.services import audit_verify
    from core.services.audit_checkpoint import audit_checkpoint_write

    keys = audit_keys()
    _fill(n, keys.entry)
    qs = AuditEntry.objects.order_by("id").values_list("id", *CHAIN_FIELDS, "hash")

    t0 = time.perf_counter()
    rows = list(qs.iterator(chunk_size=10_000))
    scan = time.perf_counter() - t0

    payloads = [payload(*r[1:-1]).encode() for r in rows]
    t0 = time.perf_counter()
    for p in payloads:
        hashlib.sha256(p).hexdigest()
    hashing = time.perf_counter() - t0

    mac = keyed_hasher(keys.entry)
    t0 = time.perf_counter()
    for p in payloads:
        mac(p)
    keyed = time.perf_counter() - t0

    # A checkpoint of the chain's middle, as the beat task would have written it.
    middle = rows[n // 2]
    audit_checkpoint_write(result=_head(middle[0], middle[-1], n // 2 + 1), keyed_from=0)

    t0 = time.perf_counter()
    result = audit_verify()
    verify = time.perf_counter() - t0
    assert result.ok and result.checked == n and result.anchors == 1, result

    return [
        {"name": "baseline-scan (read rows)", "n": n, "seconds": scan},
        {"name": "baseline-hash (sha256 only)", "n": n, "seconds": hashing},
        {"name": "baseline-hmac (hmac-sha256 only)", "n": n, "seconds": keyed},
        {"name": "audit_verify", "n": n, "seconds": verify, "target": TARGET_PER_S},
    ]


def _head(entry_id: int, digest: str, count: int):
    from core.audit_chain import VerifyResult

    return VerifyResult(True, count, head_id=entry_id, head_hash=digest)
