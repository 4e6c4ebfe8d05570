"""The nightly audit chain check: stored result, and the alarm when a row was tampered with."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from core.choices import Role
from core.models import AuditCheck, AuditEntry
from core.services import audit_record
from core.tasks import audit_verify_nightly
from telerad.models import Notification
from tests.core.audit_support import operator_user, tamper
from tests.core.factories import UserFactory

pytestmark = pytest.mark.django_db


def _chain(n: int) -> list[AuditEntry]:
    actor = UserFactory()
    return [
        audit_record(
            actor=actor,
            action="study.view",
            object_type="dicom.study",
            object_id=f"1.2.{i}",
            patient_data=True,
            patient_id=f"P{i}",
        )
        for i in range(n)
    ]


@pytest.fixture
def recipients():
    qc = operator_user(Role.QC_OFFICER, email="qc@example.org")
    admin = operator_user(Role.ADMIN, email="admin@example.org")
    both = operator_user(Role.ADMIN, Role.QC_OFFICER)  # no email: notified once, nothing mailed
    operator_user(Role.QC_OFFICER, is_active=False)  # left: not alerted
    operator_user(Role.DISPATCHER, email="dispatch@example.org")  # not their job
    return [qc, admin, both]


def test_intact_chain_stores_an_ok_check_and_alerts_nobody(recipients, settings):
    settings.ADMINS = [("Ops", "ops@example.org")]
    _chain(5)
    assert audit_verify_nightly.delay().get() == {"ok": True, "entries": 5, "first_broken_id": None}
    check = AuditCheck.objects.get()
    assert (check.ok, check.entries, check.first_broken_id, check.message, check.alerted) == (
        True,
        5,
        None,
        "",
        False,
    )
    assert Notification.objects.count() == 0 and mail.outbox == []


def test_tampered_row_raises_the_alarm(recipients, settings, caplog, django_capture_on_commit_callbacks):
    settings.ADMINS = [("Ops", "ops@example.org")]
    entries = _chain(5)
    tamper("UPDATE core_auditentry SET patient_id = %s WHERE id = %s", ["SOMEONE-ELSE", entries[2].pk])
    with caplog.at_level(logging.CRITICAL), django_capture_on_commit_callbacks(execute=True):
        result = audit_verify_nightly.delay().get()
    assert result == {"ok": False, "entries": 2, "first_broken_id": entries[2].pk}
    check = AuditCheck.objects.get()
    assert (check.ok, check.entries, check.first_broken_id, check.alerted) == (False, 2, entries[2].pk, True)
    assert check.message == "content does not match its hash"
    assert [r.levelno for r in caplog.records if r.name == "core.services.audit_check"] == [logging.CRITICAL]

    notes = Notification.objects.order_by("recipient_id")
    assert [n.recipient_id for n in notes] == sorted(u.pk for u in recipients)
    assert {n.kind for n in notes} == {"audit.chain_broken"}
    assert f"#{entries[2].pk}" in notes[0].message

    # mail_admins once, plus the notification copies to the two recipients with an address.
    admins = [m for m in mail.outbox if m.to == ["ops@example.org"]]
    assert (
        len(admins) == 1 and admins[0].subject == f"{django_settings.EMAIL_SUBJECT_PREFIX}Audit chain broken"
    )
    assert sorted(m.to[0] for m in mail.outbox if m not in admins) == ["admin@example.org", "qc@example.org"]
    assert len(mail.outbox) == 3

    alarm = AuditEntry.objects.order_by("-id").first()
    assert (alarm.action, alarm.object_type, alarm.object_id) == (
        "audit.chain_broken",
        "core.auditcheck",
        str(check.pk),
    )


def test_page_shows_the_broken_chain(recipients):
    from django.test import Client

    entries = _chain(3)
    tamper("UPDATE core_auditentry SET action = %s WHERE id = %s", ["study.nothing", entries[1].pk])
    audit_verify_nightly()
    client = Client()
    client.force_login(recipients[0])
    html = client.get("/workspace/quality/audit/").content.decode()
    assert 'data-audit-check="broken"' in html and f"#{entries[1].pk}" in html and "were alerted" in html


def test_command_stores_a_check_and_alerts_only_when_asked(recipients, settings):
    settings.ADMINS = [("Ops", "ops@example.org")]
    entries = _chain(3)
    tamper("UPDATE core_auditentry SET hash = %s WHERE id = %s", ["f" * 64, entries[1].pk])
    with pytest.raises(CommandError, match=f"BROKEN at entry {entries[1].pk}"):
        call_command("audit_verify")
    assert AuditCheck.objects.get().alerted is False and Notification.objects.count() == 0
    with pytest.raises(CommandError):
        call_command("audit_verify", "--alert")
    assert AuditCheck.objects.first().alerted is True
    assert Notification.objects.count() == 3


def test_nightly_check_is_on_the_beat_schedule():
    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-verify-nightly"]
    assert entry["task"] == "core.tasks.audit_verify_nightly"
    assert entry["schedule"].hour == {2} and entry["schedule"].minute == {30}
