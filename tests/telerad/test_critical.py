"""Critical results: open -> escalate -> acknowledge, its notifications, events, emails and audit."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from django.core import mail
from django.db import connections, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from core.exceptions import AccessDenied, InvalidInput, NotFound
from core.models import AuditEntry
from dicom.choices import IngestStatus, QCOutcome
from telerad.choices import CriticalStatus, EventKind, ReportStatus, TaskStatus
from telerad.models import CriticalResult, Notification, ReadingEvent, ReadingPool, ReadingTask, Report
from telerad.services.critical import (
    critical_result_acknowledge,
    critical_result_escalate_one,
    critical_result_open,
    critical_results_escalate,
)
from telerad.services.notifications import notify
from telerad.tasks.critical import escalate_critical_results
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, StudyFactory
from tests.fleet.factories import OperatorFactory, UnitFactory

pytestmark = pytest.mark.django_db

PERIOD = dt.timedelta(minutes=10)
_accessions = itertools.count(1)


# --- helpers shared with test_portal.py ---------------------------------------------------------


def make_study(hospital, **kwargs):
    defaults = {
        "hospital": hospital,
        "ingest_status": IngestStatus.MATCHED,
        "qc_outcome": QCOutcome.PASS,
        "accession_number": f"CRIT{next(_accessions):06d}",
        "patient_id": "P-CRIT-1",
        "patient_name": "WANG^FANG",
        "modalities": "CT",
        "body_part": "HEAD",
    }
    defaults.update(kwargs)
    return StudyFactory(**defaults)


def make_task(study, *, status=TaskStatus.UNCLAIMED, reader=None):
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP)
    pool = ReadingPool.objects.create(
        reading_group=group, name=f"Pool for study {study.pk}", modalities=["CT"]
    )
    now = timezone.now()
    return ReadingTask.objects.create(
        study=study,
        pool=pool,
        hospital=study.hospital,
        modality="CT",
        body_part=study.body_part,
        priority="URGENT",
        priority_rank=1,
        status=status,
        routed_at=now,
        deadline=now + dt.timedelta(hours=4),
        claimed_by=reader if status == TaskStatus.CLAIMED else None,
        claimed_at=now if status == TaskStatus.CLAIMED else None,
    )


def make_final_report(study, author, **fields):
    task = make_task(study, status=TaskStatus.REPORTED)
    return Report.objects.create(
        task=task,
        study=study,
        author=author,
        template="generic",
        status=ReportStatus.FINAL,
        fields=fields or {"findings": "Large acute subdural haematoma.", "impression": "Acute SDH."},
        critical=True,
        signed_at=timezone.now(),
    )


def make_radiologist():
    return UserFactory(
        username="dr-reader",
        organisation=OrganisationFactory(kind=OrganisationKind.READING_GROUP),
        roles=["radiologist"],
    )


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def operator():
    return OperatorFactory()


@pytest.fixture
def hospital():
    return HospitalFactory(name="Yichang County Hospital")


@pytest.fixture
def contacts(hospital):
    # Created out of order: the escalation order is by username, not by creation.
    carol = UserFactory(username="carol", organisation=hospital, roles=["hospital_user"], email="")
    alice = UserFactory(
        username="alice", organisation=hospital, roles=["hospital_user"], email="alice@yichang.example"
    )
    bob = UserFactory(
        username="bob", organisation=hospital, roles=["hospital_user"], email="bob@yichang.example"
    )
    # Not contacts: inactive, or not a hospital user.
    UserFactory(username="aaron-left", organisation=hospital, roles=["hospital_user"], is_active=False)
    UserFactory(username="abe-nurse", organisation=hospital, roles=[])
    return [alice, bob, carol]


@pytest.fixture
def qc_officer(operator):
    return UserFactory(
        username="qc-officer", organisation=operator, roles=["qc_officer"], email="qc@operator.example"
    )


@pytest.fixture
def radiologist():
    return make_radiologist()


@pytest.fixture
def report(hospital, operator, radiologist):
    study = make_study(hospital, unit=UnitFactory(operator=operator))
    return make_final_report(study, radiologist)


@pytest.fixture
def opened(report, contacts, qc_officer, radiologist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = critical_result_open(report=report, summary="Acute subdural haematoma", actor=radiologist)
    mail.outbox.clear()
    return result


def _notified(result):
    return list(
        Notification.objects.filter(critical_result=result)
        .order_by("id")
        .values_list("recipient__username", "kind")
    )


def _events(kind):
    return list(ReadingEvent.objects.filter(kind=kind).order_by("id"))


# --- open ---------------------------------------------------------------------------------------


def test_open_notifies_the_first_contact_and_schedules_escalation(
    report, contacts, qc_officer, radiologist, django_capture_on_commit_callbacks
):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = critical_result_open(
            report=report, summary="  Acute subdural   haematoma ", actor=radiologist
        )
    assert mail.outbox == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()

    result.refresh_from_db()
    assert result.status == CriticalStatus.OPEN
    assert result.summary == "Acute subdural haematoma"
    assert (result.study_id, result.hospital_id, result.flagged_by_id) == (
        report.study_id,
        report.study.hospital_id,
        radiologist.pk,
    )
    assert before <= result.flagged_at <= timezone.now()
    assert result.escalation_level == 1
    assert result.next_escalation_at == result.flagged_at + PERIOD
    assert result.acknowledged_by is None and result.acknowledged_at is None

    assert _notified(result) == [("alice", "critical.result")]
    notification = Notification.objects.get()
    assert "Acute subdural haematoma" in notification.message
    # No identifiers in what is emailed.
    for identifier in ("WANG", "P-CRIT-1", report.study.accession_number):
        assert identifier not in notification.message

    events = _events(EventKind.CRITICAL_RESULT)
    assert [(e.hospital_id, e.user_id) for e in events] == [
        (report.study.hospital_id, None),
        (None, contacts[0].pk),
    ]
    payload = events[0].payload
    assert payload["critical_result"] == result.pk
    assert payload["study"] == report.study_id and payload["report"] == report.pk
    assert payload["escalation_level"] == 1 and payload["notified"] == ["alice"]
    assert payload["status"] == "open" and payload["escalated_to_qc"] is False
    assert events[1].payload["for_you"] is True

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@yichang.example"]
    assert "Acute subdural haematoma" in mail.outbox[0].body
    assert "/workspace/hospital/studies/" in mail.outbox[0].body

    entry = AuditEntry.objects.get(action="critical_result.open")
    assert (entry.actor_id, entry.object_type, entry.object_id) == (
        radiologist.pk,
        "telerad.criticalresult",
        str(result.pk),
    )
    assert entry.patient_data is True and entry.patient_id == "P-CRIT-1"
    assert entry.details_data["notified"] == ["alice"]
    assert entry.details_data["escalation_level"] == 1


def test_open_is_idempotent_per_report(opened, report, radiologist, django_capture_on_commit_callbacks):
    counts = (Notification.objects.count(), ReadingEvent.objects.count(), AuditEntry.objects.count())
    with django_capture_on_commit_callbacks(execute=True):
        again = critical_result_open(report=report, summary="Something else", actor=radiologist)
    assert again.pk == opened.pk
    assert CriticalResult.objects.get().summary == "Acute subdural haematoma"
    assert (Notification.objects.count(), ReadingEvent.objects.count(), AuditEntry.objects.count()) == counts
    assert mail.outbox == []


@pytest.mark.parametrize("summary", ["", "   ", "x" * 301])
def test_open_refuses_a_bad_summary_and_writes_nothing(report, contacts, radiologist, summary):
    with pytest.raises(InvalidInput):
        critical_result_open(report=report, summary=summary, actor=radiologist)
    assert CriticalResult.objects.count() == 0
    assert Notification.objects.count() == 0
    assert ReadingEvent.objects.count() == 0
    assert not AuditEntry.objects.filter(action__startswith="critical_result").exists()


def test_a_rolled_back_open_leaves_nothing_and_sends_no_email(
    report, contacts, radiologist, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        critical_result_open(report=report, summary="Tension pneumothorax", actor=radiologist)
        raise RuntimeError("the sign failed after the critical result was opened")
    assert CriticalResult.objects.count() == 0
    assert Notification.objects.count() == 0
    assert mail.outbox == []


def test_hospital_without_contacts_goes_straight_to_qc(
    report, qc_officer, radiologist, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = critical_result_open(
            report=report, summary="Free air under the diaphragm", actor=radiologist
        )
    assert _notified(result) == [("qc-officer", "critical.escalation_qc")]
    assert [m.to for m in mail.outbox] == [["qc@operator.example"]]


# --- escalation ---------------------------------------------------------------------------------


def test_escalation_moves_to_the_next_contact_each_period_then_wraps_to_qc(
    opened, contacts, qc_officer, django_capture_on_commit_callbacks
):
    t0 = opened.flagged_at
    with django_capture_on_commit_callbacks(execute=True):
        assert critical_results_escalate(now=t0 + PERIOD - dt.timedelta(seconds=1)) == 0
    assert _notified(opened) == [("alice", "critical.result")]

    expected = [("alice", "critical.result")]
    steps = [
        (1, [("bob", "critical.escalation")]),
        (2, [("carol", "critical.escalation")]),
        # All three tried: round two starts at alice, and the operator's QC officer is told.
        (3, [("alice", "critical.escalation"), ("qc-officer", "critical.escalation_qc")]),
        (4, [("bob", "critical.escalation")]),
    ]
    for k, new in steps:
        now = t0 + k * PERIOD
        with django_capture_on_commit_callbacks(execute=True):
            assert critical_results_escalate(now=now) == 1
            # The same sweep again at the same instant finds nothing due.
            assert critical_results_escalate(now=now) == 0
        expected += new
        assert _notified(opened) == expected
        opened.refresh_from_db()
        assert opened.escalation_level == k + 1
        assert opened.next_escalation_at == now + PERIOD

    # carol has no address: emails went to bob, alice (+QC), bob.
    assert [m.to for m in mail.outbox] == [
        ["bob@yichang.example"],
        ["alice@yichang.example"],
        ["qc@operator.example"],
        ["bob@yichang.example"],
    ]
    entries = list(AuditEntry.objects.filter(action="critical_result.escalate").order_by("id"))
    assert [e.details_data["escalation_level"] for e in entries] == [2, 3, 4, 5]
    assert [e.details_data["notified"] for e in entries] == [["bob"], ["carol"], ["alice"], ["bob"]]
    assert [e.details_data["escalated_to_qc"] for e in entries] == [[], [], ["qc-officer"], []]
    assert all(e.patient_data and e.patient_id == "P-CRIT-1" and e.actor_id is None for e in entries)
    hospital_events = ReadingEvent.objects.filter(kind=EventKind.CRITICAL_RESULT, hospital=opened.hospital)
    assert [e.payload["escalation_level"] for e in hospital_events.order_by("id")] == [1, 2, 3, 4, 5]
    qc_events = ReadingEvent.objects.filter(kind=EventKind.CRITICAL_RESULT, user=qc_officer)
    assert qc_events.count() == 1


def test_an_overdue_result_escalates_one_step_per_sweep(opened):
    # The beat was down for an hour: one notification now, the next one a period later.
    now = opened.flagged_at + dt.timedelta(hours=1)
    assert critical_results_escalate(now=now) == 1
    opened.refresh_from_db()
    assert opened.escalation_level == 2 and opened.next_escalation_at == now + PERIOD


def test_a_stale_compare_and_swap_does_nothing(opened):
    now = opened.flagged_at + PERIOD
    assert critical_result_escalate_one(result_id=opened.pk, level=1, now=now) is True
    assert critical_result_escalate_one(result_id=opened.pk, level=1, now=now) is False
    opened.refresh_from_db()
    assert opened.escalation_level == 2
    assert _notified(opened) == [("alice", "critical.result"), ("bob", "critical.escalation")]


def test_the_beat_task_runs_the_sweep(opened):
    CriticalResult.objects.filter(pk=opened.pk).update(
        next_escalation_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert escalate_critical_results.delay().get() == 1
    assert escalate_critical_results.delay().get() == 0
    assert _notified(opened)[-1] == ("bob", "critical.escalation")


# --- acknowledgement ----------------------------------------------------------------------------


def test_acknowledgement_stops_escalation(opened, contacts, radiologist, django_capture_on_commit_callbacks):
    t0 = opened.flagged_at
    critical_results_escalate(now=t0 + PERIOD)  # bob was notified
    bob = contacts[1]
    ack = critical_result_acknowledge(actor=bob, result=opened)
    assert ack.acknowledged_now is True

    opened.refresh_from_db()
    assert opened.status == CriticalStatus.ACKNOWLEDGED
    assert opened.acknowledged_by_id == bob.pk
    assert opened.acknowledged_at is not None and opened.next_escalation_at is None
    assert opened.escalation_level == 2

    notifications = Notification.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        for k in range(2, 8):
            assert critical_results_escalate(now=t0 + k * PERIOD) == 0
    assert Notification.objects.count() == notifications
    assert mail.outbox == []

    acks = _events(EventKind.CRITICAL_ACK)
    assert [(e.hospital_id, e.user_id) for e in acks] == [(opened.hospital_id, None), (None, radiologist.pk)]
    assert acks[0].payload["acknowledged_by"] == "bob"
    assert acks[0].payload["status"] == "acknowledged"
    entry = AuditEntry.objects.get(action="critical_result.acknowledge")
    assert (entry.actor_id, entry.object_id, entry.patient_data, entry.patient_id) == (
        bob.pk,
        str(opened.pk),
        True,
        "P-CRIT-1",
    )
    assert entry.details_data["escalation_level"] == 2
    assert entry.details_data["seconds_to_acknowledge"] >= 0


def test_a_second_acknowledgement_changes_nothing_and_names_the_first(opened, contacts):
    alice, bob, _ = contacts
    first = critical_result_acknowledge(actor=alice, result=opened)
    counts = (ReadingEvent.objects.count(), AuditEntry.objects.count(), Notification.objects.count())

    second = critical_result_acknowledge(actor=bob, result=opened)
    assert second.acknowledged_now is False
    assert second.result.acknowledged_by_id == alice.pk
    assert second.result.acknowledged_at == first.result.acknowledged_at
    assert "already acknowledged by alice" in second.message
    assert (ReadingEvent.objects.count(), AuditEntry.objects.count(), Notification.objects.count()) == counts


def _snapshot(result):
    result.refresh_from_db()
    return (
        result.status,
        result.acknowledged_by_id,
        result.escalation_level,
        result.next_escalation_at,
        ReadingEvent.objects.count(),
        AuditEntry.objects.count(),
    )


def test_another_hospitals_user_gets_not_found_and_nothing_changes(opened):
    stranger = UserFactory(organisation=HospitalFactory(), roles=["hospital_user"])
    before = _snapshot(opened)
    with pytest.raises(NotFound) as refused:
        critical_result_acknowledge(actor=stranger, result=opened)
    assert refused.value.status_code == 404
    assert _snapshot(opened) == before


@pytest.mark.parametrize("who", ["radiologist", "qc_officer", "no_role_same_hospital"])
def test_other_roles_are_forbidden_and_nothing_changes(opened, radiologist, qc_officer, hospital, who):
    actor = {
        "radiologist": radiologist,
        "qc_officer": qc_officer,
        "no_role_same_hospital": UserFactory(organisation=hospital, roles=[]),
    }[who]
    before = _snapshot(opened)
    with pytest.raises(AccessDenied) as refused:
        critical_result_acknowledge(actor=actor, result=opened)
    assert refused.value.status_code == 403
    assert _snapshot(opened) == before


# --- notify -------------------------------------------------------------------------------------


def test_notify_emails_after_commit_only_when_the_user_has_an_address(
    contacts, django_capture_on_commit_callbacks
):
    alice, _, carol = contacts
    with django_capture_on_commit_callbacks(execute=True):
        notify(recipient=alice, kind="critical.result", message="hello")
        notify(recipient=carol, kind="critical.result", message="hello")
    assert Notification.objects.count() == 2
    assert [m.to for m in mail.outbox] == [["alice@yichang.example"]]


# --- API ----------------------------------------------------------------------------------------


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_lists_the_hospitals_results_and_the_operators_for_qc(
    opened, contacts, qc_officer, radiologist, operator
):
    # Another hospital's patient scanned by the same operator's van: its QC officer sees it too.
    other_report = make_final_report(
        make_study(HospitalFactory(), unit=UnitFactory(operator=operator)), radiologist
    )
    UserFactory(organisation=other_report.study.hospital, roles=["hospital_user"])
    other = critical_result_open(report=other_report, summary="Aortic dissection", actor=radiologist)
    # Scanned by another operator's van: not this operator's QC officer's to see.
    elsewhere_report = make_final_report(make_study(HospitalFactory(), unit=UnitFactory()), radiologist)
    elsewhere = critical_result_open(
        report=elsewhere_report, summary="Tension pneumothorax", actor=radiologist
    )

    response = _api(contacts[0]).get("/api/reading/critical-results/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [opened.pk]
    row = response.json()["results"][0]
    assert row["status"] == "open" and row["flagged_by"] == "dr-reader" and row["acknowledged_by"] is None
    entry = AuditEntry.objects.filter(action="critical_result.list").latest("id")
    assert entry.patient_data and entry.details_data["critical_results"] == [opened.pk]

    response = _api(qc_officer).get("/api/reading/critical-results/?status=open")
    assert sorted(row["id"] for row in response.json()["results"]) == sorted([opened.pk, other.pk])
    elsewhere_qc = UserFactory(organisation=elsewhere_report.study.unit.operator, roles=["qc_officer"])
    response = _api(elsewhere_qc).get("/api/reading/critical-results/?status=open")
    assert [row["id"] for row in response.json()["results"]] == [elsewhere.pk]

    assert _api(radiologist).get("/api/reading/critical-results/").status_code == 403
    assert _api(contacts[0]).get("/api/reading/critical-results/?status=bogus").status_code == 400


def test_api_acknowledge_idempotent_with_the_first_acknowledger(opened, contacts):
    alice, bob, _ = contacts
    url = f"/api/reading/critical-results/{opened.pk}/acknowledge/"
    first = _api(bob).post(url)
    assert first.status_code == 200
    assert first.json()["already_acknowledged"] is False
    assert first.json()["critical_result"]["acknowledged_by"] == "bob"

    second = _api(alice).post(url)
    assert second.status_code == 200
    assert second.json()["already_acknowledged"] is True
    assert "already acknowledged by bob" in second.json()["detail"]
    assert second.json()["critical_result"]["acknowledged_by"] == "bob"


def test_api_acknowledge_refusals(opened, radiologist):
    url = f"/api/reading/critical-results/{opened.pk}/acknowledge/"
    stranger = UserFactory(organisation=HospitalFactory(), roles=["hospital_user"])
    before = _snapshot(opened)
    response = _api(stranger).post(url)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert _api(stranger).post("/api/reading/critical-results/999999/acknowledge/").status_code == 404
    response = _api(radiologist).post(url)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert APIClient().post(url).status_code in (401, 403)
    assert _snapshot(opened) == before


def test_api_notifications_are_own_only(opened, contacts):
    alice, bob, _ = contacts
    mine = Notification.objects.get(recipient=alice)
    response = _api(alice).get("/api/reading/notifications/")
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]
    assert response.json()["results"][0]["critical_result"] == opened.pk
    assert _api(bob).get("/api/reading/notifications/").json()["results"] == []

    assert _api(bob).post(f"/api/reading/notifications/{mine.pk}/read/").status_code == 404
    assert Notification.objects.get(pk=mine.pk).read_at is None

    first = _api(alice).post(f"/api/reading/notifications/{mine.pk}/read/")
    assert first.status_code == 200 and first.json()["read_at"] is not None
    again = _api(alice).post(f"/api/reading/notifications/{mine.pk}/read/")
    assert again.json()["read_at"] == first.json()["read_at"]
    assert _api(alice).get("/api/reading/notifications/?unread=1").json()["results"] == []


# --- concurrency --------------------------------------------------------------------------------


def _race(works):
    barrier = threading.Barrier(len(works))
    results, errors = [], []

    def run(work):
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_notify_once(hospital, operator, radiologist):
    # Runs on SQLite too (IMMEDIATE transactions serialise there); the point is PostgreSQL,
    # where the compare-and-swap UPDATE's row lock is what stops the double notification.
    for name in ("alice", "bob"):
        UserFactory(username=name, organisation=hospital, roles=["hospital_user"], email=f"{name}@h.example")
    reports = [
        make_final_report(make_study(hospital, unit=UnitFactory(operator=operator)), radiologist)
        for _ in range(3)
    ]
    results = [
        critical_result_open(report=r, summary="Pulmonary embolism", actor=radiologist) for r in reports
    ]
    now = max(r.flagged_at for r in results) + PERIOD

    counts, errors = _race([lambda: critical_results_escalate(now=now)] * 8)
    assert errors == []
    assert sum(counts) == 3 and len(counts) == 8
    for result in results:
        result.refresh_from_db()
        assert result.escalation_level == 2
        assert _notified(result) == [("alice", "critical.result"), ("bob", "critical.escalation")]
    assert AuditEntry.objects.filter(action="critical_result.escalate").count() == 3

    # Acknowledgements racing each other and the sweep: one wins, the rest change nothing.
    alice = results[0].hospital.users.get(username="alice")
    later = now + PERIOD
    ack = lambda: critical_result_acknowledge(actor=alice, result=results[0]).acknowledged_now  # noqa: E731
    sweep = lambda: critical_results_escalate(now=later)  # noqa: E731
    outcomes, errors = _race([ack, sweep] * 4)
    assert errors == []
    assert [o for o in outcomes if o is True] == [True]  # exactly one acknowledgement took effect
    assert AuditEntry.objects.filter(action="critical_result.acknowledge").count() == 1
    results[0].refresh_from_db()
    assert results[0].status == CriticalStatus.ACKNOWLEDGED and results[0].acknowledged_by == alice
    # The other two results escalated exactly once more, whoever swept first.
    for result in results[1:]:
        result.refresh_from_db()
        assert result.escalation_level == 3


# --- end to end through the reports work's sign -------------------------------------------------


def test_signing_with_a_critical_finding_opens_the_loop(
    contacts, operator, radiologist, django_capture_on_commit_callbacks
):
    reports = pytest.importorskip(
        "telerad.services.reports", reason="telerad.services.reports (the reports work) is not installed yet"
    )
    hospital = contacts[0].organisation
    study = make_study(hospital, body_part="EXTREMITY", unit=UnitFactory(operator=operator))
    task = make_task(study, status=TaskStatus.CLAIMED, reader=radiologist)
    ReadingTask.objects.filter(pk=task.pk).update(claim_expires_at=timezone.now() + dt.timedelta(minutes=20))
    task.refresh_from_db()
    reports.report_save_draft(
        actor=radiologist,
        task=task,
        fields={"findings": "Open fracture with vascular compromise.", "impression": "Limb-threatening."},
        free_text="",
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = reports.report_sign(
            actor=radiologist, task=task, critical=True, critical_summary="Limb-threatening ischaemia"
        )
    result = CriticalResult.objects.get(report=report)
    assert (result.status, result.escalation_level, result.flagged_by_id) == ("open", 1, radiologist.pk)
    assert _notified(result) == [("alice", "critical.result")]
    assert [m.to for m in mail.outbox] == [["alice@yichang.example"]]
    assert AuditEntry.objects.filter(action="critical_result.open", object_id=str(result.pk)).count() == 1
