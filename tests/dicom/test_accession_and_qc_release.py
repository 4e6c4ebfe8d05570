"""Issue 15 against a real Orthanc, studies sent with dcmtk's storescu: a fallback match is routable
with a QC warning; the order's accession wins on the worklist and in the report (JSON, HTML, PDF)
after a QC officer links a study with the scanner's wrong accession; a QC-failed study is held in
the reconciliation queue with its reason and only its operator's QC staff release it."""

from __future__ import annotations

import datetime as dt
import re
import zlib
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from core.models import AuditEntry
from dicom.choices import IngestStatus, MatchMethod
from dicom.models import Order, QCResult, Study
from dicom.services.reconcile import study_link_order
from dicom.tasks import ingest_study_task, study_qc_task
from telerad.choices import TaskStatus
from telerad.models import ReadingPool, ReadingTask
from telerad.services.reports import report_save_draft, report_sign
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.dcmtk import storescu_datasets
from tests.dicom.dicom_factory import ct_series
from tests.dicom.factories import OrderFactory, StudyFactory
from tests.fleet.factories import UnitFactory
from tests.telerad.factories import RadiologistFactory

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]

CHEST = {
    "findings": "A 6 mm solid nodule in the right upper lobe.",
    "lung_rads": "3",
    "nodules": True,
    "impression": "Probably benign nodule; follow-up LDCT in 6 months.",
}


def _order(orthanc) -> Order:
    unit = UnitFactory(ae_title=orthanc.scu_aet)
    order = OrderFactory(
        unit=unit, modality="CT", body_part="CHEST", patient_birth_date="1970-01-01", patient_sex="O"
    )
    order.refresh_from_db()
    return order


def _pool_for(order: Order):
    """A CT pool serving the order's hospital, with one radiologist on shift."""
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP)
    pool = ReadingPool.objects.create(reading_group=group, name="CT pool", modalities=["CT"])
    pool.hospitals.add(order.hospital)
    profile = RadiologistFactory(
        user__organisation=group, licensed_regions=[order.hospital.region_code], pools=[pool]
    )
    return pool, profile.user


def _storescu(orthanc, tmp_path: Path, datasets) -> str:
    """C-STORE the datasets with dcmtk; the Orthanc study id."""
    storescu_datasets(orthanc, datasets, tmp_path)
    (match,) = [r for r in orthanc.client.lookup(datasets[0].StudyInstanceUID) if r["Type"] == "Study"]
    return match["ID"]


def _ingest(orthanc, study_id: str, capture) -> Study:
    nudge = orthanc.nudges.wait_for_study(study_id, timeout=orthanc.stable_age + 20)
    with capture(execute=True):
        ingest_study_task(study_id, nudge.json["seq"])
    return Study.objects.get(orthanc_id=study_id)


def _series(order: Order, count: int = 3, **kwargs):
    fields = {
        "patient_id": order.patient_id,
        "patient_name": order.patient_name,
        "accession_number": order.accession_number,
        "study_uid": generate_uid(),
    }
    fields.update(kwargs)
    return ct_series(count, **fields)


def _pdf_text(data: bytes) -> bytes:
    """The PDF's content streams, inflated. ``decompressobj`` leaves the end-of-line bytes before
    ``endstream`` in ``unused_data`` instead of failing when the deflated data ends in ``\\r``."""
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            out.append(zlib.decompressobj().decompress(raw))
        except zlib.error:
            out.append(raw)
    return b"\n".join(out)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_no_accession_fallback_match_is_a_qc_warning_routable_and_routed(
    orthanc, tmp_path, django_capture_on_commit_callbacks
):
    order = _order(orthanc)
    pool, _reader = _pool_for(order)
    study_id = _storescu(orthanc, tmp_path, _series(order, 3, accession_number=""))

    study = _ingest(orthanc, study_id, django_capture_on_commit_callbacks)

    assert (study.order_id, study.match_method) == (order.pk, MatchMethod.FALLBACK)
    assert (study.accession_number, study.source_accession_number) == (order.accession_number, "")
    result = study.qc_results.get()
    assert study.qc_outcome == "warn", result.findings
    assert {f["severity"] for f in result.findings} == {"warn"}
    required = [f for f in result.findings if f["rule"] == "required_tags"]
    assert [f["message"] for f in required] == [
        "AccessionNumber is missing or empty in 3 of 3 instances; the matched order's is used"
    ]
    assert any(f["rule"] == "order_match" for f in result.findings)
    assert study.routable_at is not None
    task = ReadingTask.objects.get(study=study)
    assert (task.pool_id, task.hospital_id) == (pool.pk, order.hospital_id)


def test_other_missing_required_tags_still_fail_a_fallback_match(
    orthanc, tmp_path, django_capture_on_commit_callbacks
):
    order = _order(orthanc)
    datasets = _series(order, 3, accession_number="")
    for ds in datasets:
        del ds.PixelSpacing
    study = _ingest(orthanc, _storescu(orthanc, tmp_path, datasets), django_capture_on_commit_callbacks)
    assert study.match_method == MatchMethod.FALLBACK
    assert (study.qc_outcome, study.routable_at) == ("fail", None)
    assert any(
        f["rule"] == "required_tags" and f["severity"] == "fail" and f["message"].startswith("PixelSpacing")
        for f in study.qc_results.get().findings
    )


def test_linked_study_carries_the_orders_accession_to_worklist_and_report(
    orthanc, tmp_path, django_capture_on_commit_callbacks
):
    order = _order(orthanc)
    _pool, reader = _pool_for(order)
    # The scanner's accession is wrong and the patient ID mistyped: nothing matches.
    datasets = _series(order, 3, accession_number="SCANNERTYPO9", patient_id="MISTYPED-1")
    study = _ingest(orthanc, _storescu(orthanc, tmp_path, datasets), django_capture_on_commit_callbacks)
    assert (study.ingest_status, study.accession_number) == (IngestStatus.UNMATCHED, "SCANNERTYPO9")

    qc_officer = UserFactory(organisation=order.unit.operator, roles=["qc_officer"])
    with django_capture_on_commit_callbacks(execute=True):
        study_link_order(actor=qc_officer, study=study, order=order)
    study.refresh_from_db()
    assert (study.accession_number, study.source_accession_number) == (order.accession_number, "SCANNERTYPO9")
    entry = AuditEntry.objects.get(action="study.link_order")
    assert (entry.details_data["accession"], entry.details_data["source_accession"]) == (
        order.accession_number,
        "SCANNERTYPO9",
    )
    # The images in Orthanc keep what the scanner sent.
    assert orthanc.client.study(study.orthanc_id)["MainDicomTags"]["AccessionNumber"] == "SCANNERTYPO9"

    # QC ran again (patient ID differs from the order: that stays a fail); the officer releases it.
    assert study.qc_outcome == "fail"
    with django_capture_on_commit_callbacks(execute=True):
        response = _api(qc_officer).post(
            f"/api/dicom/studies/{study.pk}/qc-release/", {"reason": "ID typo; name and DOB match"}
        )
    assert response.status_code == 200, response.json()
    task = ReadingTask.objects.get(study=study)

    rows = _api(reader).get("/api/reading/worklist/").json()
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    (row,) = [r for r in rows if r["id"] == task.pk]
    assert row["study"]["accession_number"] == order.accession_number

    now = timezone.now()
    ReadingTask.objects.filter(pk=task.pk).update(
        status=TaskStatus.CLAIMED,
        claimed_by=reader,
        claimed_at=now,
        claim_expires_at=now + dt.timedelta(minutes=20),
    )
    task.refresh_from_db()
    report_save_draft(actor=reader, task=task, fields=CHEST, free_text="")
    report = report_sign(actor=reader, task=task)

    hospital_user = UserFactory(organisation=order.hospital, roles=["hospital_user"])
    client = _api(hospital_user)
    detail = client.get(f"/api/reading/reports/{report.pk}/")
    assert detail.status_code == 200 and detail.json()["accession_number"] == order.accession_number
    html = client.get(f"/api/reading/reports/{report.pk}/html/").content
    assert order.accession_number.encode() in html and b"SCANNERTYPO9" not in html
    pdf = client.get(f"/api/reading/reports/{report.pk}/pdf/").content
    text = _pdf_text(pdf)
    assert order.accession_number.encode() in text and b"SCANNERTYPO9" not in text
    assert b"SCANNERTYPO9" not in pdf


def test_qc_failed_study_is_held_in_the_queue_and_released_only_by_its_operators_qc(
    orthanc, tmp_path, django_capture_on_commit_callbacks
):
    order = _order(orthanc)
    _pool_for(order)
    datasets = _series(order, 3)
    for ds in datasets:
        del ds.PixelSpacing  # a geometry tag: strict
    study = _ingest(orthanc, _storescu(orthanc, tmp_path, datasets), django_capture_on_commit_callbacks)
    assert (study.match_method, study.qc_outcome, study.routable_at) == (MatchMethod.ACCESSION, "fail", None)

    qc_officer = UserFactory(organisation=order.unit.operator, roles=["qc_officer"])
    queue = _api(qc_officer).get("/api/dicom/reconciliation/").json()["results"]
    (row,) = [r for r in queue if r["id"] == study.pk]
    assert row["held_because"] == "qc_failed"
    assert any(f["message"].startswith("PixelSpacing") for f in row["qc_findings"])

    other = UserFactory(
        organisation=OrganisationFactory(kind=OrganisationKind.OPERATOR), roles=["qc_officer"]
    )
    before = Study.objects.filter(pk=study.pk).values().get()
    refused = _api(other).post(f"/api/dicom/studies/{study.pk}/qc-release/", {"reason": "mine now"})
    assert refused.status_code == 404
    assert Study.objects.filter(pk=study.pk).values().get() == before
    assert not AuditEntry.objects.filter(action="study.qc_release").exists()
    assert not ReadingTask.objects.filter(study=study).exists()

    no_reason = _api(qc_officer).post(f"/api/dicom/studies/{study.pk}/qc-release/", {"reason": " "})
    assert no_reason.status_code == 400
    assert Study.objects.filter(pk=study.pk).values().get() == before

    with django_capture_on_commit_callbacks(execute=True):
        ok = _api(qc_officer).post(
            f"/api/dicom/studies/{study.pk}/qc-release/", {"reason": "Spacing in the private header"}
        )
    assert ok.status_code == 200, ok.json()
    study.refresh_from_db()
    assert study.qc_outcome == "fail"  # the verdict stays true; the release is recorded beside it
    assert study.routable_at is not None and study.qc_released_by_id == qc_officer.pk
    assert study.qc_release_reason == "Spacing in the private header"
    entry = AuditEntry.objects.get(action="study.qc_release")
    assert (entry.actor_id, entry.object_id, entry.details_data["reason"]) == (
        qc_officer.pk,
        str(study.pk),
        "Spacing in the private header",
    )
    assert ReadingTask.objects.filter(study=study).count() == 1
    queue = _api(qc_officer).get("/api/dicom/reconciliation/").json()["results"]
    assert study.pk not in [r["id"] for r in queue]
    again = _api(qc_officer).post(f"/api/dicom/studies/{study.pk}/qc-release/", {"reason": "again"})
    assert again.status_code == 409

    # A new verdict (QC re-run) is judged afresh: the release does not carry over.
    with django_capture_on_commit_callbacks(execute=True):
        study_qc_task(study.pk)
    study.refresh_from_db()
    assert (study.qc_outcome, study.routable_at, study.qc_released_at) == ("fail", None, None)


def test_reconciliation_page_shows_a_qc_hold_with_its_reason_and_releases_it(
    django_capture_on_commit_callbacks,
):
    unit = UnitFactory()
    order = OrderFactory(unit=unit)
    study = StudyFactory(
        order=order,
        accession_number=order.accession_number,
        ingest_status=IngestStatus.MATCHED,
        qc_outcome="fail",
        modalities="CT",
    )
    QCResult.objects.create(
        study=study,
        outcome="fail",
        findings=[
            {
                "rule": "required_tags",
                "severity": "fail",
                "message": "PixelSpacing is missing",
                "series": None,
            },
            {"rule": "body_part", "severity": "warn", "message": "not shown as the reason", "series": None},
        ],
        rules_run=[],
        number_of_instances=0,
    )
    qc_officer = UserFactory(organisation=unit.operator, roles=["qc_officer"])
    client = Client()
    client.force_login(qc_officer)
    html = client.get("/workspace/quality/reconciliation/").content.decode()
    assert "data-qc-held" in html and "required_tags: PixelSpacing is missing" in html
    assert "not shown as the reason" not in html

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/workspace/quality/reconciliation/",
            {"action": "qc_release", "study": study.pk, "reason": "Spacing in the private header"},
        )
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.routable_at is not None and study.qc_release_reason == "Spacing in the private header"
    assert AuditEntry.objects.filter(action="study.qc_release", object_id=str(study.pk)).count() == 1
    assert "The queue is empty" in client.get("/workspace/quality/reconciliation/").content.decode()
