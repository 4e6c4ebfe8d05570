"""The keyed audit chain and its signed checkpoints, attacked as someone with the database but not the key.

The attacker owns the database: they switch the append-only trigger off (``ALTER TABLE ... DISABLE
TRIGGER``, which the table's owner may do), edit rows and recompute every hash after the edit, with
plain SHA-256 or with a key of their own. They cannot read the key file or the checkpoint file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core.audit_chain import (
    CHAIN_FIELDS,
    GENESIS_HASH,
    KEY_EPOCH_ACTION,
    keyed_hash,
    legacy_hash,
    payload,
    payloads_from_rows,
)
from core.audit_checkpoints import checkpoints_read
from core.audit_key import audit_keys, derive_keys, read_key_file
from core.models import AuditCheck, AuditEntry
from core.services import audit_record, audit_verify
from core.services.audit_checkpoint import CHECKPOINT_LOGGER
from core.services.audit_export import atna_document, syslog_lines
from core.tasks import audit_checkpoint

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
WRONG_KEY = derive_keys(b"the attacker's own key, long enough to pass").entry


def _record(n: int, start: int = 0) -> list[AuditEntry]:
    return [
        audit_record(
            actor=None,
            action="study.view",
            object_type="dicom.study",
            object_id=f"1.2.3.{i}",
            patient_data=True,
            patient_id=f"P{i:04d}",
            details={"n": i},
            source_ip="10.0.0.7",
        )
        for i in range(start, start + n)
    ]


@contextmanager
def _as_database_owner():
    """The append-only trigger off, as the table's owner can do (SQLite: drop it)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The test's own inserts left deferred FK checks pending; ALTER TABLE waits for none.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE core_auditentry DISABLE TRIGGER core_auditentry_no_update")
            yield cursor
            cursor.execute("ALTER TABLE core_auditentry ENABLE TRIGGER core_auditentry_no_update")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS core_auditentry_no_update")
            yield cursor


def _rows_from(entry_id: int) -> list[tuple]:
    return list(
        AuditEntry.objects.filter(id__gte=entry_id).order_by("id").values_list("id", *CHAIN_FIELDS, "hash")
    )


def _edit_and_rehash(entry_id: int, column: str, value, rehash) -> None:
    """Edit one entry, then recompute the hash of it and of every later entry, relinking them."""
    prev = AuditEntry.objects.filter(id__lt=entry_id).order_by("-id").values_list("hash", flat=True).first()
    prev = prev or GENESIS_HASH
    with _as_database_owner() as cursor:
        cursor.execute(f"UPDATE core_auditentry SET {column} = %s WHERE id = %s", [value, entry_id])
        for row in _rows_from(entry_id):
            fields = dict(zip(CHAIN_FIELDS, row[1:-1], strict=True)) | {"prev_hash": prev}
            new_hash = rehash(payload(**fields))
            cursor.execute(
                "UPDATE core_auditentry SET prev_hash = %s, hash = %s WHERE id = %s", [prev, new_hash, row[0]]
            )
            prev = new_hash


def _delete_from(entry_id: int) -> None:
    with _as_database_owner() as cursor:
        cursor.execute("DELETE FROM core_auditentry WHERE id >= %s", [entry_id])


def _verify_fails() -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify")
    assert excinfo.value.returncode == 1
    return str(excinfo.value)


def _checkpoint_lines(settings) -> list[str]:
    return Path(settings.AUDIT_CHECKPOINT_FILE).read_text().splitlines()


# --- the key ----------------------------------------------------------------------------------


def test_entries_are_hmac_of_the_payload_not_plain_sha256():
    (entry,) = _record(1)
    row = AuditEntry.objects.filter(pk=entry.pk).values_list("id", *CHAIN_FIELDS, "hash").get()
    ((_, text, _, stored),) = payloads_from_rows([row])
    assert stored == keyed_hash(audit_keys().entry, text)
    assert stored != legacy_hash(text)


def test_key_file_is_created_once_with_mode_0600(settings, tmp_path):
    settings.AUDIT_HMAC_KEY_FILE = tmp_path / "var" / "audit-hmac.key"
    _record(1)
    path = Path(settings.AUDIT_HMAC_KEY_FILE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    before = path.read_text()
    _record(1)
    assert path.read_text() == before
    assert audit_verify().ok


def test_a_configured_key_file_is_not_created(settings, tmp_path):
    settings.AUDIT_HMAC_KEY_FILE = tmp_path / "missing.key"
    settings.AUDIT_HMAC_KEY_GENERATE = False
    with pytest.raises(Exception, match="cannot read the audit key"):
        _record(1)
    assert not (tmp_path / "missing.key").exists()
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize(("content", "named"), [("", "is empty"), ("short-key", "holds 9 characters")])
def test_short_key_is_refused(tmp_path, content, named):
    path = tmp_path / "k"
    path.write_text(content)
    with pytest.raises(Exception, match=named):
        read_key_file(path)


def _start(**env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("content", "named"),
    [(None, "cannot read the audit key"), ("", "is empty"), ("0123456789", "holds 10 characters")],
)
def test_start_up_refuses_a_configured_key_file_missing_empty_or_short(tmp_path, content, named):
    path = tmp_path / "audit.key"
    if content is not None:
        path.write_text(content)
    result = _start(AUDIT_HMAC_KEY_FILE=str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert result.stderr.startswith(f"Caravan cannot start: AUDIT_HMAC_KEY_FILE={path}")
    assert named in result.stderr


def test_start_up_accepts_a_good_key_file(tmp_path):
    path = tmp_path / "audit.key"
    path.write_text("ab" * 32 + "\n")
    result = _start(AUDIT_HMAC_KEY_FILE=str(path))
    assert result.returncode == 0, result.stderr


# --- (a) an entry edited and the chain recomputed without the key -------------------------------


@pytest.mark.parametrize(
    "rehash", [legacy_hash, lambda text: keyed_hash(WRONG_KEY, text)], ids=["sha256", "wrong-key"]
)
@pytest.mark.parametrize("checkpointed", [False, True])
def test_edit_recomputed_without_the_key_names_the_edited_entry(rehash, checkpointed):
    entries = _record(4)
    if checkpointed:
        call_command("audit_verify")
    entries += _record(4, start=4)
    target = entries[5]
    _edit_and_rehash(target.pk, "patient_id", "SOMEONE-ELSE", rehash)
    # The links hold (the attacker recomputed them): only the hash itself gives it away.
    hashes = list(AuditEntry.objects.values_list("prev_hash", "hash"))
    assert all(nxt[0] == prev[1] for prev, nxt in zip(hashes, hashes[1:], strict=False))

    message = _verify_fails()
    assert message.startswith(f"BROKEN at entry {target.pk}: content does not match its hash")
    assert "(5 entries verified before it)" in message
    check = AuditCheck.objects.first()  # the newest
    assert (check.ok, check.first_broken_id) == (False, target.pk)


def test_rewriting_the_whole_chain_with_sha256_names_the_first_entry():
    entries = _record(5)
    _edit_and_rehash(entries[0].pk, "action", "study.search", legacy_hash)
    message = _verify_fails()
    assert (
        f"BROKEN at entry {entries[0].pk}: entries #{entries[0].pk} to #{entries[-1].pk} have plain SHA-256"
        in message
    )


def test_rewriting_an_edit_before_a_checkpoint_is_named_too():
    entries = _record(3)
    call_command("audit_verify")
    _edit_and_rehash(entries[1].pk, "details", '{"n":99}', lambda text: keyed_hash(WRONG_KEY, text))
    assert _verify_fails().startswith(f"BROKEN at entry {entries[1].pk}: content does not match its hash")


# --- (b) entries removed from the end ----------------------------------------------------------


def test_removing_entries_from_the_end_is_named_against_the_last_checkpoint(settings):
    entries = _record(6)
    call_command("audit_verify")
    (line,) = _checkpoint_lines(settings)
    assert json.loads(line)["id"] == entries[-1].pk and json.loads(line)["count"] == 6
    _delete_from(entries[4].pk)
    message = _verify_fails()
    # Ids may legitimately skip (a rolled-back insert), so the entry named missing is the checkpoint's.
    assert message.startswith(
        f"BROKEN at entry {entries[5].pk}: the chain ends at #{entries[3].pk} (4 entries)"
    )
    assert "checkpoint line 1 (" in message and f"records entry #{entries[5].pk} as entry 6" in message
    assert f"entries were removed from the end (entry #{entries[5].pk} is missing)" in message
    assert _checkpoint_lines(settings) == [line]  # a broken chain gets no new checkpoint


def test_removed_tail_stays_detected_after_new_appends():
    entries = _record(5)
    call_command("audit_verify")
    _delete_from(entries[3].pk)
    later = _record(3, start=10)  # chained to entries[2]: the links themselves are fine
    assert later[0].prev_hash == entries[2].hash
    message = _verify_fails()
    assert message.startswith(
        f"BROKEN at entry {entries[4].pk}: entry #{entries[4].pk} recorded by checkpoint line 1"
    )
    assert f"is missing (the chain goes from #{entries[2].pk} to #{later[0].pk})" in message


def test_emptying_the_table_is_detected():
    _record(2)
    call_command("audit_verify")
    _delete_from(0)
    assert "entries were removed from the end" in _verify_fails()


# --- (c) the checkpoint file itself tampered with -------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("count", 3), ("hash", "a" * 64), ("id", 1)])
def test_a_changed_checkpoint_line_has_a_bad_signature(settings, field, value):
    _record(2)
    call_command("audit_verify")
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    (line,) = _checkpoint_lines(settings)
    forged = json.loads(line) | {field: value}
    path.write_text(line + "\n" + json.dumps(forged) + "\n")
    message = _verify_fails()
    assert message.startswith(f"BROKEN (checkpoints): checkpoint file {path} line 2: bad signature")


def test_a_checkpoint_signed_with_another_key_is_refused(settings):
    _record(2)
    call_command("audit_verify")
    settings.AUDIT_HMAC_KEY_FILE = Path(settings.AUDIT_CHECKPOINT_FILE).with_suffix(".other.key")
    # Another key: the entries do not verify either, and the checkpoint says why.
    message = _verify_fails()
    assert "line 1: signed with key" in message and "not the configured key" in message


def test_garbage_in_the_checkpoint_file_is_reported(settings):
    _record(1)
    Path(settings.AUDIT_CHECKPOINT_FILE).write_text('{"id": 1}\nnot json\n')
    message = _verify_fails()
    assert "line 1: not a checkpoint" in message and "line 2: not JSON" in message


# --- (d) the happy path ------------------------------------------------------------------------


def test_verify_writes_signed_checkpoints_and_checks_them(settings, capsys, caplog):
    entries = _record(3)
    with caplog.at_level(logging.INFO, logger=CHECKPOINT_LOGGER):
        call_command("audit_verify")
    out = capsys.readouterr().out
    assert out.startswith("OK 3 entries")
    (line,) = _checkpoint_lines(settings)
    assert f"checkpoint in {settings.AUDIT_CHECKPOINT_FILE}: {line}" in out
    data = json.loads(line)
    assert {k: data[k] for k in ("id", "hash", "count", "keyed_from")} == {
        "id": entries[-1].pk,
        "hash": entries[-1].hash,
        "count": 3,
        "keyed_from": 0,
    }
    assert data["key_id"] == audit_keys().key_id and len(data["sig"]) == 64
    logged = [r.getMessage() for r in caplog.records if r.name == CHECKPOINT_LOGGER]
    assert logged == [f"audit checkpoint {line}"]
    assert "P000" not in line  # ids and hashes, no patient data

    # The beat task verifies what came since and signs the new head.
    more = _record(2, start=3)
    assert audit_checkpoint.delay().get() == {"written": True, "id": more[-1].pk, "count": 5}
    call_command("audit_verify")
    assert capsys.readouterr().out.startswith("OK 5 entries")
    checkpoints, problems = checkpoints_read(audit_keys(), Path(settings.AUDIT_CHECKPOINT_FILE))
    assert problems == [] and [(c.id, c.count) for c in checkpoints] == [
        (entries[-1].pk, 3),
        (more[-1].pk, 5),
        (more[-1].pk, 5),
    ]
    result = audit_verify()
    assert (result.ok, result.checked, result.anchors, result.legacy) == (True, 5, 2, 0)


def test_empty_chain_gets_a_checkpoint_and_verifies(settings):
    call_command("audit_verify")
    (line,) = _checkpoint_lines(settings)
    assert (json.loads(line)["id"], json.loads(line)["count"]) == (0, 0)
    _record(2)
    call_command("audit_verify")
    assert len(_checkpoint_lines(settings)) == 2


def test_beat_task_writes_nothing_when_new_entries_are_forged(settings, caplog):
    entries = _record(2)
    call_command("audit_verify")
    entries += _record(2, start=2)
    _edit_and_rehash(entries[3].pk, "action", "study.search", legacy_hash)
    with caplog.at_level(logging.ERROR):
        assert audit_checkpoint.delay().get() == {"written": False}
    assert len(_checkpoint_lines(settings)) == 1
    assert any(f"chain broken at entry {entries[3].pk}" in r.getMessage() for r in caplog.records)


def test_beat_task_without_a_checkpoint_verifies_the_whole_chain(settings):
    entries = _record(3)
    assert audit_checkpoint.delay().get() == {"written": True, "id": entries[-1].pk, "count": 3}
    assert len(_checkpoint_lines(settings)) == 1


def test_exports_carry_the_newest_checkpoint(settings):
    entries = _record(2)
    call_command("audit_verify")
    (line,) = _checkpoint_lines(settings)
    document = ET.fromstring("".join(atna_document(AuditEntry.objects.order_by("id"))))
    *messages, last = list(document)
    assert len(messages) == 2
    assert last.find("EventIdentification/EventID").get("csd-code") == "audit.checkpoint"
    obj = last.find("ParticipantObjectIdentification")
    assert obj.get("ParticipantObjectID") == str(entries[-1].pk)
    detail = obj.find("ParticipantObjectDetail")
    assert detail.get("type") == "caravan-checkpoint"
    assert base64.b64decode(detail.get("value")).decode() == line
    lines = list(syslog_lines(AuditEntry.objects.order_by("id"), hostname="h"))
    assert len(lines) == 3 and f'checkpoint="{entries[-1].pk}" hash="{entries[-1].hash}"' in lines[-1]


# --- a chain that began under plain SHA-256 -----------------------------------------------------


def _legacy_entries(n: int) -> list[AuditEntry]:
    """Entries as written before the key existed: plain SHA-256, chained."""
    from django.utils import timezone

    made = []
    prev = GENESIS_HASH
    for i in range(n):
        fields = {
            "timestamp": timezone.now(),
            "actor_id": None,
            "actor_username": "",
            "actor_role": "system",
            "action": "study.ingest",
            "object_type": "dicom.study",
            "object_id": f"9.9.{i}",
            "patient_data": True,
            "patient_id": f"L{i}",
            "source_ip": "",
            "details": "{}",
            "prev_hash": prev,
        }
        entry = AuditEntry(**fields, hash=legacy_hash(payload(**fields)))
        entry.save(_via_service=True)
        made.append(entry)
        prev = entry.hash
    return made


def _migrate_to_keyed() -> AuditEntry:
    from importlib import import_module

    from django.db.migrations.loader import MigrationLoader

    migration = import_module("core.migrations.0004_audit_chain_keyed")
    state = MigrationLoader(connection).project_state(("core", "0004_audit_chain_keyed"))

    class Editor:
        connection = connection

    migration.append_key_epoch(state.apps, Editor())
    return AuditEntry.objects.order_by("-id").first()


def test_legacy_entries_verify_up_to_the_key_epoch(settings):
    legacy = _legacy_entries(3)
    epoch = _migrate_to_keyed()
    assert (epoch.action, epoch.prev_hash) == (KEY_EPOCH_ACTION, legacy[-1].hash)
    assert json.loads(epoch.details)["legacy_sha256_until"] == legacy[-1].pk
    assert _migrate_to_keyed().pk == epoch.pk  # once only
    _record(2)
    result = audit_verify()
    assert (result.ok, result.checked, result.legacy) == (True, 6, 3)
    call_command("audit_verify")
    (line,) = _checkpoint_lines(settings)
    assert json.loads(line)["keyed_from"] == epoch.pk


def test_legacy_hash_after_the_key_epoch_is_refused():
    _legacy_entries(2)
    _migrate_to_keyed()
    entries = _record(3)
    _edit_and_rehash(entries[1].pk, "action", "study.search", legacy_hash)
    result = audit_verify()
    assert (result.ok, result.broken_id, result.legacy) == (False, entries[1].pk, 2)


def test_cutting_the_chain_back_to_its_plain_part_is_refused():
    legacy = _legacy_entries(3)
    epoch = _migrate_to_keyed()
    _record(2)
    _delete_from(epoch.pk)
    result = audit_verify()
    assert (result.ok, result.broken_id) == (False, legacy[0].pk)
    assert "no keyed audit.chain_keyed entry follows them" in result.reason


def test_a_legacy_chain_rewritten_past_its_epoch_contradicts_the_checkpoint():
    _legacy_entries(2)
    epoch = _migrate_to_keyed()
    entries = _record(2)
    call_command("audit_verify")
    # Rewrite from the epoch on as plain SHA-256 and drop the epoch's action: still refused.
    _edit_and_rehash(epoch.pk, "action", "study.ingest", legacy_hash)
    result = audit_verify()
    assert (result.ok, result.broken_id) == (False, epoch.pk)
    assert f"keyed hashes began at #{epoch.pk}" in result.reason
    assert entries  # the later entries were rewritten with it


# --- settings: the beat entry, syslog --------------------------------------------------------


def test_beat_writes_a_checkpoint_every_configured_minutes():
    from django.conf import settings as django_settings

    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry == {"task": "core.tasks.audit_checkpoint", "schedule": 300.0}


def test_bad_syslog_address_stops_start_up():
    result = _start(AUDIT_CHECKPOINT_SYSLOG="syslog.example.org")
    assert result.returncode == 2
    assert result.stderr.startswith("Caravan cannot start: AUDIT_CHECKPOINT_SYSLOG='syslog.example.org'")


def test_checkpoints_reach_syslog_over_udp():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(60)
        port = receiver.getsockname()[1]
        code = (
            "import django, logging; django.setup(); "
            "logging.getLogger('caravan.audit.checkpoint').info('audit checkpoint %s', '{\"id\":7}')"
        )
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
        env = base | {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOG_LEVEL": "WARNING",  # the checkpoint logger stays at INFO regardless
            "AUDIT_CHECKPOINT_SYSLOG": f"udp://127.0.0.1:{port}",
        }
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        message = receiver.recv(4096).decode()
    # authpriv (10) * 8 + info (6); the same line goes to the application log.
    assert message.rstrip("\x00") == '<86>caravan: audit checkpoint {"id":7}'
    assert 'audit checkpoint {"id":7}' in done.stderr
