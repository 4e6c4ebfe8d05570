"""The signed report's PDF stored back into Orthanc is the platform's own object: the study is
not re-ingested as changed, not QC'd again, and its modalities, counts and routability stay."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from core.choices import OrganisationKind
from dicom.models import QCResult, Series, Study
from dicom.orthanc_client import orthanc_client_from_settings
from dicom.qc.headers import load_study_headers
from dicom.tasks import ingest_study_task
from telerad.choices import TaskStatus
from telerad.models import Radiologist, ReadingPool, ReadingTask
from telerad.services.reports import report_save_draft, report_sign
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.dicom_factory import send_synthetic
from tests.dicom.factories import OrderFactory
from tests.fleet.factories import UnitFactory

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]

CHEST = {
    "findings": "No nodule.",
    "lung_rads": "1",
    "nodules": False,
    "impression": "Negative low-dose CT.",
}


def _snapshot(study: Study) -> dict:
    study = Study.objects.get(pk=study.pk)
    return {
        "modalities": study.modalities,
        "series": study.number_of_series,
        "instances": study.number_of_instances,
        "qc": study.qc_outcome,
        "routable_at": study.routable_at,
        "last_update": study.orthanc_last_update,
        "qc_results": QCResult.objects.filter(study=study).count(),
        "series_rows": sorted(
            Series.objects.filter(study=study).values_list("modality", "number_of_instances")
        ),
    }


def test_report_pdf_stored_back_leaves_the_study_as_acquired(
    orthanc, settings, django_capture_on_commit_callbacks
):
    from dicom.synth import make_study, spec_from_order

    unit = UnitFactory(ae_title=orthanc.scu_aet)
    order = OrderFactory(
        unit=unit, patient_birth_date="1970-01-01", patient_sex="O", body_part="CHEST", modality="CT"
    )
    order.refresh_from_db()
    orthanc_id = send_synthetic(orthanc, make_study(spec_from_order(order, slices_per_series=6)))
    nudge = orthanc.nudges.wait_for_study(orthanc_id, timeout=orthanc.stable_age + 20)
    with django_capture_on_commit_callbacks(execute=True):
        ingest_study_task(orthanc_id, nudge.json["seq"])
    study = Study.objects.get()
    assert study.qc_outcome == "pass" and study.routable_at is not None
    before = _snapshot(study)
    assert "DOC" not in before["modalities"]

    # A reader signs the report; the PDF goes to Orthanc through the real after-commit path.
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP)
    pool = ReadingPool.objects.create(reading_group=group, name="CT", modalities=["CT"])
    reader = UserFactory(organisation=group, roles=["radiologist"])
    Radiologist.objects.create(user=reader, on_shift=True).pools.add(pool)
    now = timezone.now()
    task = ReadingTask.objects.filter(study=study).first() or ReadingTask.objects.create(
        study=study,
        pool=pool,
        hospital=study.hospital,
        modality="CT",
        body_part="CHEST",
        priority="ROUTINE",
        priority_rank=2,
        status=TaskStatus.CLAIMED,
        routed_at=now,
        deadline=now + dt.timedelta(hours=24),
        claimed_by=reader,
        claimed_at=now,
        claim_expires_at=now + dt.timedelta(minutes=20),
    )
    settings.REPORTS_PDF_TO_ORTHANC = True
    orthanc.nudges.clear()
    with django_capture_on_commit_callbacks(execute=True):
        report_save_draft(actor=reader, task=task, fields=CHEST, free_text="")
        report_sign(actor=reader, task=task)
    series = orthanc.client.study_series(orthanc_id)
    assert sorted(s["MainDicomTags"]["Modality"] for s in series).count("DOC") == 1  # stored there

    # Orthanc reports the study stable again; the nudge path (and a plain re-ingest) see no change.
    nudge = orthanc.nudges.wait_for_study(orthanc_id, timeout=orthanc.stable_age + 20)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert ingest_study_task(orthanc_id, nudge.json["seq"]) == study.pk
    assert callbacks == []  # no QC queued
    assert _snapshot(study) == before

    # QC (if it runs again, e.g. after a late series) judges the acquired images only.
    headers = load_study_headers(orthanc_client_from_settings(), orthanc_id)
    assert headers.number_of_instances == before["instances"]
    assert all(s.modality != "DOC" for s in headers.series)
