"""Writing and verifying the audit log. Every service that acts on data records through here."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.audit_chain import (
    CHAIN_FIELDS,
    GENESIS_HASH,
    KEY_EPOCH_ACTION,
    SEPARATOR,
    TEXT_FIELDS,
    VerifyResult,
    canonical_details,
    entry_hash,
    payloads_from_rows,
    verify_payloads,
)
from core.audit_checkpoints import Checkpoint, checkpoints_read
from core.audit_key import audit_keys
from core.exceptions import InvalidInput
from core.http import client_ip
from core.models import AuditEntry, User

# Arbitrary constant naming the PostgreSQL advisory lock that serialises chain appends.
_CHAIN_LOCK_KEY = 0x43415241  # "CARA"


def audit_chain_lock() -> None:
    # On PostgreSQL, concurrent transactions would otherwise read the same tail and fork the
    # chain. The lock is released at commit. SQLite runs transactions as IMMEDIATE (settings),
    # which already serialises writers.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def _normalise_ip(value: str | None) -> str:
    if not value:
        return ""
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        raise InvalidInput(f"source_ip {value!r} is not an IP address") from None


@transaction.atomic
def audit_record(
    *,
    actor: User | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    patient_data: bool = False,
    patient_id: str = "",
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    source_ip: str | None = None,
) -> AuditEntry:
    """Append one entry to the chain, in the caller's transaction.

    ``obj`` fills object type and id; ``request`` fills the source IP. ``details`` must be
    JSON-serialisable and must not hold patient identifiers beyond ``patient_id``.
    """
    if not action:
        raise InvalidInput("audit action is required")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    if request is not None and source_ip is None:
        source_ip = client_ip(request)
    if actor is not None and not actor.is_authenticated:
        actor = None
    # Through DjangoJSONEncoder first so dates, UUIDs and decimals become plain JSON values.
    clean_details = canonical_details(json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder)))
    fields = {
        "timestamp": timezone.now(),
        "actor_id": actor.pk if actor else None,
        "actor_username": actor.get_username() if actor else "",
        "actor_role": actor.primary_role if actor else "system",
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "patient_data": bool(patient_data),
        "patient_id": patient_id or "",
        "source_ip": _normalise_ip(source_ip),
        "details": clean_details,
    }
    for name in TEXT_FIELDS:
        if SEPARATOR in str(fields[name]):
            raise InvalidInput(f"audit {name} contains a control character (0x1F)")
    key = audit_keys().entry  # before the lock: a first use may create the key file
    audit_chain_lock()
    prev = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first()
    fields["prev_hash"] = prev or GENESIS_HASH
    entry = AuditEntry(**fields, hash=entry_hash(key, **fields))
    entry.save(_via_service=True)
    return entry


# PostgreSQL renders the canonical payload itself (see core.audit_chain), so verification
# moves one text column per entry instead of twelve typed ones.
_PG_PAYLOAD_SQL = """
SELECT id,
       concat_ws(chr(31),
                 ((extract(epoch FROM "timestamp") * 1000000)::bigint)::text,
                 coalesce(actor_id::text, ''),
                 actor_username, actor_role, action, object_type, object_id,
                 CASE WHEN patient_data THEN '1' ELSE '0' END,
                 patient_id, source_ip, details, prev_hash),
       prev_hash,
       hash
FROM core_auditentry
WHERE id > %s
ORDER BY id
LIMIT %s
"""


def _pg_payload_rows(chunk_size: int, after_id: int = 0):
    last_id = after_id
    with connection.cursor() as cursor:
        while True:
            cursor.execute(_PG_PAYLOAD_SQL, [last_id, chunk_size])
            rows = cursor.fetchall()
            if not rows:
                return
            yield from rows
            last_id = rows[-1][0]


def _payload_rows(chunk_size: int, after_id: int = 0):
    if connection.vendor == "postgresql":
        return _pg_payload_rows(chunk_size, after_id)
    rows = AuditEntry.objects.filter(id__gt=after_id).order_by("id").values_list("id", *CHAIN_FIELDS, "hash")
    return payloads_from_rows(rows.iterator(chunk_size=chunk_size))


def audit_key_epoch_id() -> int:
    """Id of the key-epoch entry (first keyed entry after plain SHA-256 ones); 0 when none."""
    first = AuditEntry.objects.filter(action=KEY_EPOCH_ACTION).order_by("id").values_list("id", flat=True)
    return first.first() or 0


def audit_checkpoints() -> tuple[list[Checkpoint], list[str]]:
    """The good checkpoints of ``AUDIT_CHECKPOINT_FILE`` and a problem per bad line."""
    return checkpoints_read(audit_keys(), Path(settings.AUDIT_CHECKPOINT_FILE))


def audit_verify(*, chunk_size: int = 50_000) -> VerifyResult:
    """Walk the whole chain in id order and report the first broken link.

    Checks every entry's keyed hash and link, and the chain against every signed checkpoint
    in ``AUDIT_CHECKPOINT_FILE`` (an entry missing or different there, a chain shorter than the
    last one); a checkpoint line with a bad signature makes the result not OK either.
    """
    keys = audit_keys()
    checkpoints, problems = audit_checkpoints()
    keyed_from = min((c.keyed_from for c in checkpoints), default=None)
    result = verify_payloads(
        _payload_rows(chunk_size),
        key=keys.entry,
        anchors=[c.anchor() for c in checkpoints],
        keyed_from=keyed_from,
    )
    if problems:
        extra = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        reason = f"{result.reason}; also {extra}" if not result.ok else extra
        result = replace(result, ok=False, reason=reason)
    return result


def audit_verify_after(checkpoint: Checkpoint, *, chunk_size: int = 50_000) -> VerifyResult:
    """Verify only the entries after a (signed, so trusted) checkpoint, linked to its head."""
    if checkpoint.id:
        head = AuditEntry.objects.filter(pk=checkpoint.id).values_list("hash", flat=True).first()
        if head != checkpoint.hash:
            state = "is missing" if head is None else "does not have the recorded hash"
            return VerifyResult(
                False, 0, checkpoint.id, f"entry #{checkpoint.id} of {checkpoint.label} {state}"
            )
    return verify_payloads(
        _payload_rows(chunk_size, after_id=checkpoint.id),
        key=audit_keys().entry,
        keyed_from=checkpoint.keyed_from,
        start_prev=checkpoint.hash if checkpoint.id else GENESIS_HASH,
        start_count=checkpoint.count,
        start_id=checkpoint.id,
    )
