"""The audit chain switches from plain SHA-256 to HMAC-SHA256 (docs/security.md, "Audit log").

Existing entries keep their SHA-256 hashes. When the table already has entries, this appends
the key-epoch entry (``audit.chain_keyed``): the first keyed entry, linked to the last plain one,
naming where plain SHA-256 ends. The verifier accepts plain SHA-256 only before it. An empty
table (a new installation, the tests) gets nothing: its chain is keyed from the first entry.
The key comes from AUDIT_HMAC_KEY_FILE (or is created under var/ in development).
"""

from django.db import migrations
from django.utils import timezone

from core.audit_chain import GENESIS_HASH, KEY_EPOCH_ACTION, canonical_details, entry_hash

_CHAIN_LOCK_KEY = 0x43415241  # core.services.audit's advisory lock


def append_key_epoch(apps, schema_editor):
    AuditEntry = apps.get_model("core", "AuditEntry")
    db = schema_editor.connection.alias
    entries = AuditEntry.objects.using(db)
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    tail = entries.order_by("-id").first()
    if tail is None or entries.filter(action=KEY_EPOCH_ACTION).exists():
        return
    from core.audit_key import audit_keys

    keys = audit_keys()
    fields = {
        "timestamp": timezone.now(),
        "actor_id": None,
        "actor_username": "",
        "actor_role": "system",
        "action": KEY_EPOCH_ACTION,
        "object_type": "core.auditentry",
        "object_id": str(tail.pk),
        "patient_data": False,
        "patient_id": "",
        "source_ip": "",
        "details": canonical_details(
            {"algorithm": "hmac-sha256", "key_id": keys.key_id, "legacy_sha256_until": tail.pk}
        ),
        "prev_hash": tail.hash or GENESIS_HASH,
    }
    entries.create(**fields, hash=entry_hash(keys.entry, **fields))


class Migration(migrations.Migration):
    dependencies = [("core", "0003_audit_check")]
    operations = [migrations.RunPython(append_key_epoch, migrations.RunPython.noop, elidable=False)]
