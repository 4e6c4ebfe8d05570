"""QC and routing survive transient errors: task retries on database errors, the stalled-study
sweep (re-queue, count, alert after M tries) and the stalled count in /api/health/."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEntry
from dicom.choices import IngestStatus, QCOutcome
from dicom.models import QCResult, Study
from dicom.selectors_stalled import stalled_study_count
from dicom.services import qc as qc_service
from dicom.services.ingest import study_ingest
from dicom.services.stalled import ROUTE_TASK, stalled_studies_sweep
from dicom.tasks import study_qc_task, sweep_stalled_studies
from telerad.models import Notification
from tests.core.factories import UserFactory
from tests.dicom.dicom_factory import send_synthetic
from tests.dicom.factories import OrderFactory, StudyFactory
from tests.fleet.factories import UnitFactory

pytestmark = pytest.mark.django_db


def _pending_study(orthanc, django_capture_on_commit_callbacks) -> Study:
    """A real study mirrored from Orthanc whose QC task was lost (its on-commit never ran)."""
    from dicom.synth import make_study, spec_from_order

    unit = UnitFactory(ae_title=orthanc.scu_aet)
    order = OrderFactory(unit=unit, patient_birth_date="1970-01-01", patient_sex="O")
    order.refresh_from_db()
    study_id = send_synthetic(orthanc, make_study(spec_from_order(order, slices_per_series=6)))
    orthanc.nudges.wait_for_study(study_id, timeout=orthanc.stable_age + 20)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        study = study_ingest(orthanc_id=study_id).study
    assert len(callbacks) == 1  # the QC task, dropped here as a lost message would be
    assert study is not None and study.qc_outcome == QCOutcome.PENDING
    return study


def _age(study: Study, minutes: int) -> None:
    Study.objects.filter(pk=study.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=minutes))


@pytest.mark.orthanc
def test_qc_task_hit_by_a_database_error_retries_and_stores_one_verdict(
    orthanc, django_capture_on_commit_callbacks
):
    study = _pending_study(orthanc, django_capture_on_commit_callbacks)
    real = qc_service.load_study_headers
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("connection failed: FATAL: sorry, too many clients already")
        return real(*args, **kwargs)

    patched = mock.patch.object(qc_service, "load_study_headers", side_effect=flaky)
    with patched, django_capture_on_commit_callbacks(execute=False):
        # throw=False: a Retry is handled as a worker does (run again), not raised to us.
        outcome = study_qc_task.apply(args=[study.pk], throw=False).get()
    assert len(calls) == 2  # the first attempt failed, the retry ran
    study.refresh_from_db()
    assert outcome == study.qc_outcome == QCOutcome.PASS
    assert study.routable_at is not None
    assert QCResult.objects.filter(study=study).count() == 1


@pytest.mark.orthanc
def test_sweep_requeues_a_pending_study_alerts_after_m_tries_then_qc_recovers(
    orthanc, settings, django_capture_on_commit_callbacks
):
    settings.STALLED_STUDY_MINUTES = 10
    settings.STALLED_STUDY_ALERT_TRIES = 2
    study = _pending_study(orthanc, django_capture_on_commit_callbacks)
    operator = study.unit.operator
    officer = UserFactory(organisation=operator, roles=["qc_officer"])
    UserFactory(organisation=UnitFactory().operator, roles=["qc_officer"])  # another operator's

    _age(study, 5)  # not yet stalled: nothing queued
    assert stalled_study_count() == 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert stalled_studies_sweep() == {"qc": 0, "routing": 0, "alerted": 0}
    assert callbacks == []

    _age(study, 11)
    assert stalled_study_count() == 1
    # The database stays down: every re-queued QC task fails (all its retries).
    with mock.patch.object(
        qc_service, "load_study_headers", side_effect=OperationalError("too many clients")
    ) as headers:
        for sweep in (1, 2):
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                assert stalled_studies_sweep() == {"qc": 1, "routing": 0, "alerted": 0}
            assert len(callbacks) == 1
            # Eager tasks raise their Retry instead of running it (a worker would back off and
            # retry 8 times): one attempt per sweep here.
            assert headers.call_count == sweep
        assert not AuditEntry.objects.filter(action="study.stalled").exists()
        with django_capture_on_commit_callbacks(execute=True):
            assert stalled_studies_sweep() == {"qc": 1, "routing": 0, "alerted": 1}
        with django_capture_on_commit_callbacks(execute=True):  # alerted once, still queued
            assert stalled_studies_sweep() == {"qc": 1, "routing": 0, "alerted": 0}
    study.refresh_from_db()
    assert study.qc_outcome == QCOutcome.PENDING
    entry = AuditEntry.objects.get(action="study.stalled")
    details = entry.details_data
    assert (entry.object_id, details["stage"], details["tries"]) == (str(study.pk), "qc", 2)
    notes = list(Notification.objects.filter(kind="study.stalled"))
    assert [n.recipient_id for n in notes] == [officer.pk]
    assert study.orthanc_id in notes[0].message and study.patient_name not in notes[0].message

    # The database is back: the next sweep's task stores the verdict; nothing is stalled.
    with django_capture_on_commit_callbacks(execute=True):
        sweep_stalled_studies.apply().get()
    study.refresh_from_db()
    assert study.qc_outcome == QCOutcome.PASS and study.routable_at is not None
    assert QCResult.objects.filter(study=study).count() == 1
    assert stalled_study_count() == 0


def test_sweep_queues_routing_again_by_task_name_for_an_unrouted_study(
    settings, django_capture_on_commit_callbacks
):
    from celery import current_app

    settings.STALLED_STUDY_MINUTES = 10
    study = StudyFactory(ingest_status=IngestStatus.MATCHED, qc_outcome=QCOutcome.PASS)
    Study.objects.filter(pk=study.pk).update(routable_at=timezone.now() - dt.timedelta(minutes=15))
    recent = StudyFactory(ingest_status=IngestStatus.MATCHED, qc_outcome=QCOutcome.PASS)
    Study.objects.filter(pk=recent.pk).update(routable_at=timezone.now() - dt.timedelta(minutes=2))
    route = current_app.tasks[ROUTE_TASK]
    with mock.patch.object(route, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        assert stalled_studies_sweep() == {"qc": 0, "routing": 1, "alerted": 0}
    delay.assert_called_once_with(study.pk)


def test_a_uid_conflict_pending_qc_is_not_stalled(settings):
    settings.STALLED_STUDY_MINUTES = 10
    held = StudyFactory(qc_outcome=QCOutcome.PASS)
    conflict = StudyFactory(
        ingest_status=IngestStatus.UID_CONFLICT, uid_conflict_with=held, qc_outcome=QCOutcome.PENDING
    )
    _age(conflict, 60)
    assert stalled_study_count() == 0


@pytest.mark.orthanc
def test_health_reports_the_stalled_count_and_answers_503_only_past_its_threshold(orthanc, settings):
    settings.STALLED_STUDY_MINUTES = 10
    stalled = StudyFactory(qc_outcome=QCOutcome.PENDING)
    StudyFactory(qc_outcome=QCOutcome.PENDING)  # mirrored just now: not stalled
    _age(stalled, 30)
    response = APIClient().get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "orthanc": "ok",
        "channel_layer": "ok",
        "broker": "ok",
        "stalled_studies": 1,
    }
    settings.HEALTH_STALLED_STUDIES_503 = 2
    assert APIClient().get("/api/health/").status_code == 200
    settings.HEALTH_STALLED_STUDIES_503 = 1
    response = APIClient().get("/api/health/")
    assert response.status_code == 503 and response.json()["stalled_studies"] == 1


def test_stall_alerts_stay_inside_the_operator():
    """QC officers of the van's operator, else its admins; a study of no operator: superusers only."""
    from dicom.services.stalled import alert_recipients

    unit, other_unit = UnitFactory(), UnitFactory()
    admin = UserFactory(organisation=unit.operator, roles=["admin"])
    UserFactory(organisation=other_unit.operator, roles=["admin"])
    other_qc = UserFactory(organisation=other_unit.operator, roles=["qc_officer"])
    root = UserFactory(is_superuser=True)

    assert alert_recipients(StudyFactory(unit=unit)) == [admin]  # no QC officer: its own admins
    assert alert_recipients(StudyFactory(unit=other_unit)) == [other_qc]
    assert alert_recipients(StudyFactory(unit=None)) == [root]
