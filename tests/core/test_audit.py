import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction

from core.audit_chain import GENESIS_HASH
from core.models import AuditEntry
from core.models.audit import AppendOnlyError
from core.services import audit_record, audit_verify
from tests.core.audit_support import tamper
from tests.core.factories import UserFactory

pytestmark = pytest.mark.django_db


def _record(n: int, actor=None) -> list[AuditEntry]:
    return [
        audit_record(
            actor=actor,
            action="study.view",
            object_type="dicom.study",
            object_id=f"1.2.3.{i}",
            patient_data=True,
            patient_id=f"P{i:04d}",
            details={"n": i, "note": "café"},
            source_ip="10.0.0.7",
        )
        for i in range(n)
    ]


def test_entries_chain_from_genesis_and_verify(capsys):
    user = UserFactory(roles=["qc_officer"])
    entries = _record(5, actor=user)
    assert entries[0].prev_hash == GENESIS_HASH
    for prev, nxt in zip(entries, entries[1:], strict=False):
        assert nxt.prev_hash == prev.hash
    assert entries[0].actor_role == "qc_officer"
    assert entries[0].actor_username == user.username
    call_command("audit_verify")
    assert capsys.readouterr().out.startswith("OK 5 entries")


def test_empty_chain_verifies():
    result = audit_verify()
    assert (result.ok, result.checked) == (True, 0)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "study.delete"),
        ("patient_id", "P9999"),
        ("source_ip", "10.0.0.8"),
        ("details", '{"n": 99}'),
    ],
)
def test_edit_with_raw_sql_is_named_by_verify(column, value):
    entries = _record(6)
    target = entries[3]
    tamper(f"UPDATE core_auditentry SET {column} = %s WHERE id = %s", [value, target.pk])
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify")
    assert f"BROKEN at entry {target.pk}" in str(excinfo.value)
    assert "3 entries verified" in str(excinfo.value)
    assert excinfo.value.returncode == 1


def test_deleting_a_middle_entry_breaks_the_chain_at_the_next():
    entries = _record(5)
    tamper("DELETE FROM core_auditentry WHERE id = %s", [entries[2].pk])
    result = audit_verify()
    assert (result.ok, result.broken_id, result.checked) == (False, entries[3].pk, 2)
    assert "prev_hash" in result.reason


def test_rehashing_one_entry_still_breaks_the_next_link():
    entries = _record(4)
    tamper("UPDATE core_auditentry SET hash = %s WHERE id = %s", ["f" * 64, entries[1].pk])
    result = audit_verify()
    assert result.ok is False
    assert result.broken_id == entries[1].pk


def test_orm_cannot_change_or_remove_entries():
    (entry,) = _record(1)
    before = list(AuditEntry.objects.values_list("id", "action", "hash"))
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    entry.action = "x"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        AuditEntry(action="forged", prev_hash="0", hash="1").save()
    assert list(AuditEntry.objects.values_list("id", "action", "hash")) == before


def test_database_trigger_refuses_raw_update_and_delete():
    (entry,) = _record(1)
    statements = ["UPDATE core_auditentry SET action = 'x' WHERE id = %s"]
    if connection.vendor == "postgresql":  # SQLite's guard is UPDATE only (see migration 0002)
        statements.append("DELETE FROM core_auditentry WHERE id = %s")
    for sql in statements:
        with (
            pytest.raises(Exception, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).action == "study.view"


def test_bad_source_ip_is_refused_and_nothing_written():
    from core.exceptions import InvalidInput

    with pytest.raises(InvalidInput, match="not an IP"):
        audit_record(actor=None, action="x", source_ip="not-an-ip")
    assert AuditEntry.objects.count() == 0


def test_ipv6_source_is_normalised():
    entry = audit_record(actor=None, action="x", source_ip="2001:0db8:0000:0000:0000:0000:0000:0001")
    assert entry.source_ip == "2001:db8::1"
    assert audit_verify().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_do_not_fork_the_chain():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL); CI runs it there")
    threads_n, per_thread = 8, 30
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                audit_record(actor=None, action="concurrent", object_id=f"{k}-{i}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = threads_n * per_thread
    assert AuditEntry.objects.count() == total
    prev_hashes = list(AuditEntry.objects.values_list("prev_hash", flat=True))
    assert len(set(prev_hashes)) == total  # a fork would reuse a prev_hash
    result = audit_verify()
    assert (result.ok, result.checked) == (True, total)
