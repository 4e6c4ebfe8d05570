"""Structured reports: templates, draft -> preliminary -> final, immutability (ORM and database),
addenda, rendering (HTML, PDF), events, audit, turnaround, API and the editor page."""

from __future__ import annotations

import datetime as dt
import re
import zlib
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry
from dicom.choices import IngestStatus
from telerad.choices import EventKind, ReportStatus, TaskStatus
from telerad.models import (
    Addendum,
    Radiologist,
    ReadingEvent,
    ReadingPool,
    ReadingTask,
    Report,
    ReportVersion,
)
from telerad.models.reports import ReportImmutable
from telerad.report_templates import GENERIC, template_for, template_get, validate_fields
from telerad.reports_render import report_encapsulated_pdf, report_html, report_pdf
from telerad.selectors_reports import report_turnaround
from telerad.services.reports import (
    addendum_add,
    addendum_sign,
    report_mark_preliminary,
    report_save_draft,
    report_sign,
)
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory, StudyFactory

pytestmark = pytest.mark.django_db

CHEST = {
    "findings": "A 6 mm solid nodule in the right upper lobe.",
    "lung_rads": "3",
    "nodules": True,
    "impression": "Probably benign nodule; follow-up LDCT in 6 months.",
}


# --- fixtures ----------------------------------------------------------------------------------


def _radiologist(group, pool=None):
    user = UserFactory(organisation=group, roles=["radiologist"], first_name="Li", last_name="Wei")
    profile = Radiologist.objects.create(user=user, on_shift=True)
    if pool is not None:
        profile.pools.add(pool)
    return user


def _task(world, *, body_part="CHEST", claimed_by=None, expires_in=dt.timedelta(minutes=20)):
    order = OrderFactory(
        hospital=world.hospital,
        modality="CT",
        body_part=body_part,
        requested_procedure=f"CT {body_part} LOW DOSE",
        patient_name="ZHANG^SAN",
    )
    now = timezone.now()
    study = StudyFactory(
        order=order,
        hospital=world.hospital,
        accession_number=order.accession_number,
        patient_id=order.patient_id,
        patient_name=order.patient_name,
        patient_sex="M",
        patient_birth_date=order.patient_birth_date,
        study_date=now.date(),
        modalities="CT",
        body_part=body_part,
        ingest_status=IngestStatus.MATCHED,
    )
    study.ingested_at = now - dt.timedelta(minutes=45)  # auto_now_add: set after the insert
    study.save(update_fields=["ingested_at"])
    claimant = claimed_by if claimed_by is not None else world.reader
    task = ReadingTask.objects.create(
        study=study,
        pool=world.pool,
        hospital=world.hospital,
        modality="CT",
        body_part=body_part,
        priority="ROUTINE",
        priority_rank=2,
        status=TaskStatus.CLAIMED,
        routed_at=now - dt.timedelta(minutes=30),
        deadline=now + dt.timedelta(hours=24),
        claimed_by=claimant,
        claimed_at=now - dt.timedelta(minutes=10),
        claim_expires_at=now + expires_in,
    )
    # Routing found both pool readers eligible; the outsider (another pool) is not.
    task.eligible.add(world.reader.radiologist, world.colleague.radiologist)
    return task


@pytest.fixture
def world():
    return _make_world()


def _make_world():
    hospital = HospitalFactory(name="Zigui County Hospital")
    other_hospital = HospitalFactory(name="Other County Hospital")
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP, name="Wuhan Reading Group")
    pool = ReadingPool.objects.create(reading_group=group, name="CT pool", modalities=["CT"])
    pool.hospitals.add(hospital)
    other_pool = ReadingPool.objects.create(reading_group=group, name="Other pool", modalities=["CT"])
    w = SimpleNamespace(hospital=hospital, other_hospital=other_hospital, group=group, pool=pool)
    w.reader = _radiologist(group, pool)
    w.colleague = _radiologist(group, pool)
    w.outsider = _radiologist(group, other_pool)
    w.hospital_user = UserFactory(organisation=hospital, roles=["hospital_user"])
    w.other_hospital_user = UserFactory(organisation=other_hospital, roles=["hospital_user"])
    w.task = _task(w)
    return w


def _snapshot(task):
    """Everything a refused action must leave exactly as it was."""
    task = ReadingTask.objects.get(pk=task.pk)
    report = Report.objects.filter(task=task).values().first()
    return {
        "task": (task.status, task.claimed_by_id, task.reported_at),
        "report": report,
        "versions": list(ReportVersion.objects.filter(report__task=task).values_list("version", "status")),
        "audit": AuditEntry.objects.count(),
        "events": ReadingEvent.objects.count(),
        "addenda": list(Addendum.objects.filter(report__task=task).values_list("id", "text", "signed_at")),
    }


def _signed(world, **kwargs):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="Compared with no prior.")
    return report_sign(actor=world.reader, task=world.task, **kwargs)


def _pdf_text(data: bytes) -> bytes:
    """The PDF's content streams, inflated (fpdf2 compresses them with FlateDecode)."""
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(raw))
        except zlib.error:
            out.append(raw)
    return b"\n".join(out)


# --- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "body_part", "key"),
    [
        ("CT", "HEAD", "ct_head"),
        ("CT", "chest", "ct_chest"),
        ("CT\\SR", "CHEST", "ct_chest"),
        ("CT", "ABDOMEN", "ct_abdomen"),
        ("MR", "HEAD", "mr_brain"),
        ("DX", "CHEST", "dx_chest"),
        ("CR", "CHEST", "dx_chest"),
        ("MR", "KNEE", "generic"),
        ("", "", "generic"),
    ],
)
def test_template_for_modality_and_body_part(modality, body_part, key):
    assert template_for(modality, body_part).key == key


def test_lung_rads_choices_and_unknown_key_falls_back():
    spec = template_for("CT", "CHEST").field("lung_rads")
    assert spec is not None and spec.required and spec.type == "choice"
    assert spec.choices == ("0", "1", "2", "3", "4A", "4B", "4X")
    assert template_get("no-such-template") is GENERIC


def test_validate_fields_cleans_each_type():
    cleaned = validate_fields(
        template_for("CT", "CHEST"),
        {
            "findings": "  nodule  ",
            "lung_rads": 2,
            "nodules": False,
            "impression": "x",
            "pleural_effusion": "",
        },
    )
    assert cleaned == {"findings": "nodule", "lung_rads": "2", "nodules": False, "impression": "x"}


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({**CHEST, "lung_rads": "5"}, "lung_rads", "not one of"),
        ({**CHEST, "lung_rads": "4C"}, "lung_rads", "not one of"),
        ({**CHEST, "nodules": "true"}, "nodules", "true or false"),
        ({**CHEST, "findings": 12}, "findings", "must be text"),
        ({**CHEST, "colour": "red"}, "colour", "not a field"),
        ({k: v for k, v in CHEST.items() if k != "impression"}, "impression", "is required"),
        ({**CHEST, "lung_rads": None}, "lung_rads", "is required"),
        ({**CHEST, "findings": "   "}, "findings", "is required"),
    ],
)
def test_validate_fields_names_the_bad_field(fields, field, fragment):
    with pytest.raises(InvalidInput) as excinfo:
        validate_fields(template_for("CT", "CHEST"), fields)
    assert excinfo.value.extra == {"field": field}
    assert excinfo.value.message.startswith(f"{field}:") and fragment in excinfo.value.message


def test_a_draft_may_be_incomplete_but_not_wrong():
    template = template_for("CT", "HEAD")
    assert validate_fields(template, {"findings": "x"}, require_complete=False) == {"findings": "x"}
    with pytest.raises(InvalidInput, match="haemorrhage"):
        validate_fields(template, {"haemorrhage": "big"}, require_complete=False)


# --- draft -> preliminary -> final -------------------------------------------------------------


def test_draft_preliminary_final_keeps_every_version(world):
    draft = report_save_draft(
        actor=world.reader, task=world.task, fields={"findings": "Nodule."}, free_text=""
    )
    assert (draft.status, draft.version, draft.template, draft.author) == (
        ReportStatus.DRAFT,
        1,
        "ct_chest",
        world.reader,
    )
    again = report_save_draft(
        actor=world.reader, task=world.task, fields={"findings": "Nodule."}, free_text=""
    )
    assert again.version == 1  # an unchanged autosave adds no version
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    prelim = report_mark_preliminary(actor=world.reader, task=world.task)
    assert (prelim.status, prelim.version) == (ReportStatus.PRELIMINARY, 3)
    final = report_sign(actor=world.reader, task=world.task)
    assert (final.status, final.version, final.critical) == (ReportStatus.FINAL, 4, False)
    assert final.signed_at is not None
    task = ReadingTask.objects.get(pk=world.task.pk)
    assert (task.status, task.reported_at) == (TaskStatus.REPORTED, final.signed_at)
    versions = list(ReportVersion.objects.filter(report=final).order_by("version"))
    assert [(v.version, v.status) for v in versions] == [
        (1, "draft"),
        (2, "draft"),
        (3, "preliminary"),
        (4, "final"),
    ]
    assert versions[0].fields == {"findings": "Nodule."}
    assert versions[3].fields == CHEST and versions[3].saved_by == world.reader


def test_preliminary_needs_every_required_field(world):
    report_save_draft(actor=world.reader, task=world.task, fields={"findings": "x"}, free_text="")
    before = _snapshot(world.task)
    with pytest.raises(InvalidInput, match="lung_rads: is required"):
        report_mark_preliminary(actor=world.reader, task=world.task)
    assert _snapshot(world.task) == before


def test_sign_needs_every_required_field_and_changes_nothing_when_refused(world):
    report_save_draft(
        actor=world.reader, task=world.task, fields={"findings": "x", "lung_rads": "2"}, free_text=""
    )
    before = _snapshot(world.task)
    with pytest.raises(InvalidInput) as excinfo:
        report_sign(actor=world.reader, task=world.task)
    assert excinfo.value.extra == {"field": "impression"}
    assert _snapshot(world.task) == before


def test_sign_without_a_report_is_refused(world):
    with pytest.raises(InvalidInput, match="Write the report"):
        report_sign(actor=world.reader, task=world.task)


# --- only the claimant -------------------------------------------------------------------------


def test_another_reader_cannot_write_or_sign(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    before = _snapshot(world.task)
    with pytest.raises(AccessDenied) as excinfo:
        report_sign(actor=world.colleague, task=world.task)
    assert excinfo.value.status_code == 403
    with pytest.raises(AccessDenied):
        report_save_draft(actor=world.colleague, task=world.task, fields={}, free_text="mine now")
    assert _snapshot(world.task) == before


def test_expired_claim_cannot_sign(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    ReadingTask.objects.filter(pk=world.task.pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    before = _snapshot(world.task)
    with pytest.raises(Conflict) as excinfo:
        report_sign(actor=world.reader, task=world.task)
    assert (excinfo.value.status_code, excinfo.value.code) == (409, "claim_expired")
    with pytest.raises(Conflict):
        report_save_draft(actor=world.reader, task=world.task, fields={}, free_text="late")
    assert _snapshot(world.task) == before


def test_released_claim_cannot_sign(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    ReadingTask.objects.filter(pk=world.task.pk).update(
        status=TaskStatus.UNCLAIMED, claimed_by=None, claim_expires_at=None
    )
    with pytest.raises(Conflict, match="not claimed"):
        report_sign(actor=world.reader, task=world.task)
    assert Report.objects.get(task=world.task).status == ReportStatus.DRAFT


# --- a final report is immutable ---------------------------------------------------------------


def test_final_report_refuses_the_services(world):
    report = _signed(world)
    before = _snapshot(world.task)
    with pytest.raises(Conflict):
        report_save_draft(actor=world.reader, task=world.task, fields={}, free_text="edit")
    with pytest.raises(Conflict):
        report_sign(actor=world.reader, task=world.task)
    assert _snapshot(world.task) == before
    assert Report.objects.get(pk=report.pk).fields == CHEST


def test_final_report_refuses_the_orm(world):
    report = _signed(world)
    report.fields = {**CHEST, "impression": "Nothing to see."}
    with pytest.raises(ReportImmutable):
        report.save()
    stale = Report.objects.get(pk=report.pk)
    stale.status = ReportStatus.DRAFT
    with pytest.raises(ReportImmutable):
        stale.save(update_fields=["status"])
    with pytest.raises(ReportImmutable):
        Report.objects.filter(pk=report.pk).update(free_text="changed")
    with pytest.raises(ReportImmutable):
        Report.objects.filter(pk=report.pk).delete()
    with pytest.raises(ReportImmutable):
        Report.objects.bulk_update([stale], ["status"])
    with pytest.raises(ReportImmutable):
        stale.delete()
    row = Report.objects.get(pk=report.pk)
    assert (row.status, row.fields, row.free_text) == (ReportStatus.FINAL, CHEST, "Compared with no prior.")


def _raw(sql: str, params: list) -> None:
    # Savepoint: on PostgreSQL a failed statement would otherwise poison the test transaction.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_final_report_refuses_raw_sql_update(world):
    report = _signed(world)
    for column, value in [("free_text", "tampered"), ("status", "draft"), ("critical", True)]:
        with pytest.raises(IntegrityError, match="final"):
            _raw(f"UPDATE telerad_report SET {column} = %s WHERE id = %s", [value, report.pk])
    row = Report.objects.values("status", "free_text", "critical", "fields", "version").get(pk=report.pk)
    assert row == {
        "status": "final",
        "free_text": "Compared with no prior.",
        "critical": False,
        "fields": CHEST,
        "version": 2,
    }


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_final_report_refuses_raw_sql_delete_on_postgresql(world):
    report = _signed(world)
    with pytest.raises(IntegrityError):
        _raw("DELETE FROM telerad_reportversion WHERE report_id = %s", [report.pk])
    with pytest.raises(IntegrityError, match="final"):
        _raw("DELETE FROM telerad_report WHERE id = %s", [report.pk])
    assert Report.objects.filter(pk=report.pk, status="final").exists()


def test_draft_report_is_still_editable_in_raw_sql(world):
    # The trigger keys on the stored status: drafts are ordinary rows.
    report = report_save_draft(actor=world.reader, task=world.task, fields={}, free_text="a")
    _raw("UPDATE telerad_report SET free_text = %s WHERE id = %s", ["b", report.pk])
    assert Report.objects.get(pk=report.pk).free_text == "b"


def test_report_versions_are_append_only(world):
    report = _signed(world)
    version = ReportVersion.objects.filter(report=report).first()
    version.free_text = "rewritten history"
    with pytest.raises(ReportImmutable):
        version.save()
    with pytest.raises(ReportImmutable):
        ReportVersion.objects.filter(report=report).update(free_text="x")
    with pytest.raises(ReportImmutable):
        ReportVersion.objects.filter(report=report).delete()
    with pytest.raises(ReportImmutable):
        version.delete()
    with pytest.raises(IntegrityError, match="append-only"):
        _raw("UPDATE telerad_reportversion SET free_text = %s WHERE report_id = %s", ["x", report.pk])
    assert list(
        ReportVersion.objects.filter(report=report).values_list("version", "status", "free_text")
    ) == [
        (1, "draft", "Compared with no prior."),
        (2, "final", "Compared with no prior."),
    ]


# --- addenda -----------------------------------------------------------------------------------


def test_addendum_flow(world):
    report = _signed(world)
    addendum = addendum_add(actor=world.reader, report=report, text="  Also: small hiatus hernia.  ")
    assert (addendum.text, addendum.signed_at) == ("Also: small hiatus hernia.", None)
    assert "hiatus hernia" not in report_html(Report.objects.get(pk=report.pk))  # not until signed
    with pytest.raises(AccessDenied):
        addendum_sign(actor=world.colleague, addendum=addendum)
    signed = addendum_sign(actor=world.reader, addendum=addendum)
    assert signed.signed_at is not None
    with pytest.raises(Conflict):
        addendum_sign(actor=world.reader, addendum=addendum)
    # Signed: immutable in the ORM and in the database.
    stored = Addendum.objects.get(pk=addendum.pk)
    stored.text = "rewritten"
    with pytest.raises(ReportImmutable):
        stored.save()
    with pytest.raises(ReportImmutable):
        Addendum.objects.filter(pk=addendum.pk).update(text="rewritten")
    with pytest.raises(IntegrityError, match="signed"):
        _raw("UPDATE telerad_addendum SET text = %s WHERE id = %s", ["rewritten", addendum.pk])
    assert Addendum.objects.get(pk=addendum.pk).text == "Also: small hiatus hernia."
    # The report itself is untouched, and the addendum shows in both renderings.
    final = Report.objects.get(pk=report.pk)
    assert (final.version, final.fields) == (2, CHEST)
    html = report_html(final)
    assert "Also: small hiatus hernia." in html and "Addendum 1" in html
    assert b"Also: small hiatus hernia." in _pdf_text(report_pdf(final))
    actions = list(
        AuditEntry.objects.filter(object_type="telerad.report", object_id=str(report.pk)).values_list(
            "action", flat=True
        )
    )
    assert actions[-2:] == ["report.addendum_add", "report.addendum_sign"]


def test_a_signed_addendum_is_a_live_event_for_the_pool_and_the_hospital(
    world, django_capture_on_commit_callbacks
):
    from telerad.models import ReadingEvent

    report = _signed(world)
    addendum = addendum_add(actor=world.reader, report=report, text="Also: small hiatus hernia.")
    assert not ReadingEvent.objects.filter(kind="report.addendum").exists()  # not for a draft
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        addendum_sign(actor=world.reader, addendum=addendum)
    events = ReadingEvent.objects.filter(kind="report.addendum")
    assert [(e.pool_id, e.hospital_id, e.payload["addendum"]) for e in events] == [
        (report.task.pool_id, report.study.hospital_id, addendum.pk)
    ]
    assert len(callbacks) >= 2  # one send per group (pool, hospital), after commit


def test_addendum_rules(world):
    report = report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    with pytest.raises(Conflict, match="final reports"):
        addendum_add(actor=world.reader, report=report, text="too early")
    report = report_sign(actor=world.reader, task=world.task)
    # An eligible colleague may add one; a reader of another pool or a hospital user may not.
    assert (
        addendum_add(actor=world.colleague, report=report, text="Second opinion.").author == world.colleague
    )
    for actor in (world.outsider, world.hospital_user):
        with pytest.raises(AccessDenied):
            addendum_add(actor=actor, report=report, text="not mine")
    with pytest.raises(InvalidInput, match="empty"):
        addendum_add(actor=world.reader, report=report, text="   ")
    assert Addendum.objects.filter(report=report).count() == 1


def test_unsigned_addendum_may_be_edited_through_the_orm(world):
    report = _signed(world)
    addendum = addendum_add(actor=world.reader, report=report, text="draft")
    addendum.text = "better draft"
    addendum.save()
    assert Addendum.objects.get(pk=addendum.pk).text == "better draft"


# --- rendering ---------------------------------------------------------------------------------


def test_html_has_header_fields_impression_watermark_and_turnaround(world):
    report = _signed(world)
    html = report_html(report)
    accession = world.task.study.accession_number
    for text in (
        "Zigui County Hospital",
        "ZHANG, SAN",
        accession,
        "CT CHEST LOW DOSE",
        "Lung-RADS category",
        "A 6 mm solid nodule in the right upper lobe.",
        "Probably benign nodule; follow-up LDCT in 6 months.",
        "Compared with no prior.",
        "FINAL",
        "Routed to signed (SLA)",
        "Within SLA",
    ):
        assert text in html, text
    assert "PRELIMINARY" not in html


def test_preliminary_html_is_marked_preliminary(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    report = report_mark_preliminary(actor=world.reader, task=world.task)
    html = report_html(report)
    assert "PRELIMINARY" in html and 'data-report-status="preliminary"' in html


def test_pdf_is_a_pdf_with_the_report_text(world):
    report = _signed(world)
    data = report_pdf(report)
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    text = _pdf_text(data)
    assert world.task.study.accession_number.encode() in text
    assert b"FINAL" in text and b"Lung-RADS category" in text and b"ZHANG, SAN" in text


def test_pdf_survives_text_outside_latin1(world):
    report_save_draft(
        actor=world.reader,
        task=world.task,
        fields={**CHEST, "impression": "Nodule ≥ 6 mm – follow up → 结节"},
        free_text="",
    )
    report = report_sign(actor=world.reader, task=world.task)
    text = _pdf_text(report_pdf(report))
    assert b"Nodule >= 6 mm - follow up -> ??" in text


# --- events, audit, turnaround, critical -------------------------------------------------------


def test_sign_emits_study_reported_to_pool_and_hospital(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        report = _signed(world)
    events = list(ReadingEvent.objects.filter(kind=EventKind.STUDY_REPORTED))
    assert len(events) == 1
    event = events[0]
    assert (event.task_id, event.pool_id, event.hospital_id) == (
        world.task.pk,
        world.pool.pk,
        world.hospital.pk,
    )
    assert event.payload["report"] == report.pk and event.payload["critical"] is False
    assert event.payload["accession"] == world.task.study.accession_number
    assert len(callbacks) == 2  # one group send to the pool, one to the hospital, after commit


def test_refused_sign_emits_nothing(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    with pytest.raises(AccessDenied):
        report_sign(actor=world.colleague, task=world.task)
    assert not ReadingEvent.objects.exists()


def test_audit_entries_for_each_write(world):
    _signed(world)
    entries = list(AuditEntry.objects.filter(object_type="telerad.report").order_by("id"))
    assert [e.action for e in entries] == ["report.draft", "report.sign"]
    assert all(e.patient_data and e.patient_id == world.task.study.patient_id for e in entries)
    assert entries[-1].actor == world.reader
    assert entries[-1].details_data["version"] == 2


def test_turnaround(world):
    report = _signed(world)
    tat = report_turnaround(report)
    task, study = ReadingTask.objects.get(pk=world.task.pk), world.task.study
    assert (tat["acquired"], tat["routed"], tat["claimed"], tat["signed"]) == (
        study.ingested_at,
        task.routed_at,
        task.claimed_at,
        report.signed_at,
    )
    assert tat["intervals"]["acquired_to_routed"] == 15 * 60
    assert tat["intervals"]["routed_to_claimed"] == 20 * 60
    assert tat["intervals"]["routed_to_signed"] == int((report.signed_at - task.routed_at).total_seconds())
    assert tat["intervals"]["claimed_to_signed"] >= 10 * 60
    assert tat["within_sla"] is True


def test_turnaround_of_an_unsigned_report_has_gaps(world):
    report = report_save_draft(actor=world.reader, task=world.task, fields={}, free_text="")
    tat = report_turnaround(report)
    assert tat["signed"] is None and tat["intervals"]["claimed_to_signed"] is None
    assert tat["within_sla"] is None


def test_critical_sign_opens_a_critical_result(world):
    from telerad.models import CriticalResult

    report = _signed(world, critical=True, critical_summary="Large pneumothorax")
    result = CriticalResult.objects.get(report=report)
    assert (result.summary, result.flagged_by_id, result.status) == (
        "Large pneumothorax",
        world.reader.pk,
        "open",
    )
    assert Report.objects.get(pk=report.pk).critical is True
    assert ReadingEvent.objects.get(kind=EventKind.STUDY_REPORTED).payload["critical"] is True


def test_critical_sign_needs_a_summary(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    before = _snapshot(world.task)
    with pytest.raises(InvalidInput) as excinfo:
        report_sign(actor=world.reader, task=world.task, critical=True, critical_summary="  ")
    assert excinfo.value.extra == {"field": "critical_summary"}
    assert _snapshot(world.task) == before


# --- API ---------------------------------------------------------------------------------------


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_draft_preliminary_sign_read(world):
    base = f"/api/reading/tasks/{world.task.pk}/report/"
    reader = _api(world.reader)
    got = reader.get(base)
    assert got.status_code == 200
    assert got.json()["report"] is None and got.json()["template"]["key"] == "ct_chest"
    bad = reader.put(base, {"fields": {"lung_rads": "9"}, "free_text": ""}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "lung_rads"
    saved = reader.put(base, {"fields": {"findings": "Nodule."}, "free_text": "x"}, format="json")
    assert saved.status_code == 200 and saved.json()["status"] == "draft"
    missing = reader.post(base + "preliminary/", {}, format="json")
    assert missing.status_code == 400 and missing.json()["field"] == "lung_rads"
    prelim = reader.post(base + "preliminary/", {"fields": CHEST}, format="json")
    assert prelim.status_code == 200 and prelim.json()["status"] == "preliminary"
    other = _api(world.colleague).post(base + "sign/", {}, format="json")
    assert other.status_code == 403 and other.json()["code"] == "not_claimant"
    signed = reader.post(base + "sign/", {"critical": False}, format="json")
    assert signed.status_code == 200, signed.json()
    body = signed.json()
    assert body["status"] == "final" and [v["status"] for v in body["versions"]] == [
        "draft",
        "preliminary",
        "final",
    ]
    assert body["turnaround"]["intervals"]["routed_to_claimed"] == 20 * 60
    again = reader.put(base, {"fields": {}, "free_text": "edit"}, format="json")
    assert again.status_code == 409 and again.json()["code"] in ("already_reported", "report_final")

    report_id = body["id"]
    detail = _api(world.hospital_user).get(f"/api/reading/reports/{report_id}/")
    assert detail.status_code == 200 and detail.json()["fields"] == CHEST
    pdf = _api(world.hospital_user).get(f"/api/reading/reports/{report_id}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    html = _api(world.hospital_user).get(f"/api/reading/reports/{report_id}/html/")
    assert html.status_code == 200 and b"Lung-RADS category" in html.content
    views = AuditEntry.objects.filter(actor=world.hospital_user, object_id=str(report_id))
    assert list(views.values_list("action", flat=True)) == ["report.view", "report.pdf", "report.html"]


def test_api_expired_claim_is_409(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    ReadingTask.objects.filter(pk=world.task.pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    response = _api(world.reader).post(f"/api/reading/tasks/{world.task.pk}/report/sign/", {}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "claim_expired"
    assert Report.objects.get(task=world.task).status == ReportStatus.DRAFT


def test_api_out_of_scope_is_404(world):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    report = Report.objects.get(task=world.task)
    # Another hospital, a reader of another pool: not found, whatever the id.
    for user in (world.other_hospital_user, world.outsider):
        client = _api(user)
        assert client.get(f"/api/reading/reports/{report.pk}/").status_code == 404
        assert client.get(f"/api/reading/reports/{report.pk}/pdf/").status_code == 404
        assert client.put(f"/api/reading/tasks/{world.task.pk}/report/", {}, format="json").status_code == 404
    # The hospital does not see a draft.
    assert _api(world.hospital_user).get(f"/api/reading/reports/{report.pk}/").status_code == 404
    assert _api(world.reader).get("/api/reading/reports/999999/").status_code == 404
    assert not AuditEntry.objects.filter(action="report.view").exists()


def test_api_addenda(world):
    report = _signed(world)
    client = _api(world.reader)
    created = client.post(
        f"/api/reading/reports/{report.pk}/addenda/", {"text": "Correction."}, format="json"
    )
    assert created.status_code == 201 and created.json()["signed_at"] is None
    addendum_id = created.json()["id"]
    assert _api(world.hospital_user).get(f"/api/reading/reports/{report.pk}/").json()["addenda"] == []
    refused = _api(world.colleague).post(f"/api/reading/addenda/{addendum_id}/sign/")
    assert refused.status_code == 403
    signed = client.post(f"/api/reading/addenda/{addendum_id}/sign/")
    assert signed.status_code == 200 and signed.json()["signed_at"]
    assert client.post(f"/api/reading/addenda/{addendum_id}/sign/").status_code == 409
    hospital_view = _api(world.hospital_user).get(f"/api/reading/reports/{report.pk}/").json()
    assert [a["text"] for a in hospital_view["addenda"]] == ["Correction."]
    assert (
        _api(world.other_hospital_user).post(f"/api/reading/addenda/{addendum_id}/sign/").status_code == 404
    )
    anonymous = APIClient().get(f"/api/reading/reports/{report.pk}/")
    assert anonymous.status_code in (401, 403)


# --- the editor page ---------------------------------------------------------------------------


def test_editor_page_renders_the_template_form(world, client):
    client.force_login(world.reader)
    response = client.get(reverse("reading-report-editor", args=[world.task.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="f_lung_rads"' in html and '<option value="4X">4X</option>' in html
    assert 'name="f_nodules"' in html and 'name="critical"' in html and "Lung-RADS category *" in html


def test_editor_page_renews_the_claim_only_for_its_holder(world, client, settings):
    settings.READING_CLAIM_MINUTES = 9
    url = reverse("reading-report-editor", args=[world.task.pk])
    client.force_login(world.reader)
    html = client.get(url).content.decode()
    renew = reverse("reading-task-renew", args=[world.task.pk])
    assert f'data-renew-url="{renew}"' in html and 'data-renew-every="180000"' in html
    client.force_login(world.colleague)
    assert "data-claim-renewal" not in client.get(url).content.decode()


def test_editor_page_shows_errors_inline_then_signs(world, client):
    client.force_login(world.reader)
    url = reverse("reading-report-editor", args=[world.task.pk])
    form = {
        "f_findings": CHEST["findings"],
        "f_lung_rads": "3",
        "f_nodules": "yes",
        "free_text": "",
        "action": "sign",
    }
    refused = client.post(url, form)
    assert refused.status_code == 400
    assert 'data-field-error="f_impression"' in refused.content.decode()
    assert not Report.objects.filter(task=world.task, status="final").exists()
    saved = client.post(url, {**form, "action": "save"})
    assert saved.status_code == 302 and Report.objects.get(task=world.task).fields["nodules"] is True
    signed = client.post(url, {**form, "f_impression": CHEST["impression"]}, follow=True)
    assert signed.status_code == 200
    html = signed.content.decode()
    assert "data-report-signed" in html and "data-addendum-form" in html and "FINAL" in html
    report = Report.objects.get(task=world.task)
    assert report.status == ReportStatus.FINAL and report.fields == CHEST
    added = client.post(url, {"action": "addendum", "text": "Late addition."}, follow=True)
    assert "data-addendum-unsigned" in added.content.decode()
    addendum = Addendum.objects.get(report=report)
    client.post(url, {"action": "addendum_sign", "addendum_id": addendum.pk})
    assert Addendum.objects.get(pk=addendum.pk).signed_at is not None
    assert "Late addition." in client.get(url).content.decode()


def test_editor_page_refuses_another_reader_inline(world, client):
    report_save_draft(actor=world.reader, task=world.task, fields=CHEST, free_text="")
    client.force_login(world.colleague)
    url = reverse("reading-report-editor", args=[world.task.pk])
    response = client.post(url, {"f_impression": "x", "action": "sign"})
    assert response.status_code == 403
    assert "Only the reader who claimed" in response.content.decode()
    assert Report.objects.get(task=world.task).status == ReportStatus.DRAFT


def test_editor_page_is_for_radiologists_and_in_scope_tasks(world, client):
    client.force_login(world.hospital_user)
    assert client.get(reverse("reading-report-editor", args=[world.task.pk])).status_code == 403
    client.force_login(world.outsider)
    assert client.get(reverse("reading-report-editor", args=[world.task.pk])).status_code == 404


def test_critical_sign_opens_a_real_critical_result(world):
    critical = pytest.importorskip("telerad.services.critical")
    from telerad.models import CriticalResult

    report = _signed(world, critical=True, critical_summary="Acute subdural haematoma")
    result = CriticalResult.objects.get(report=report)
    assert (result.summary, result.flagged_by, result.hospital) == (
        "Acute subdural haematoma",
        world.reader,
        world.hospital,
    )
    assert critical.CriticalResult is CriticalResult
    assert Report.objects.get(pk=report.pk).critical is True


# --- Encapsulated PDF in Orthanc ---------------------------------------------------------------


def test_encapsulated_pdf_dataset(world):
    import io

    import pydicom

    report = _signed(world)
    ds = pydicom.dcmread(io.BytesIO(report_encapsulated_pdf(report)))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.StudyInstanceUID == world.task.study.study_instance_uid
    assert (ds.Modality, ds.MIMETypeOfEncapsulatedDocument) == ("DOC", "application/pdf")
    assert ds.AccessionNumber == world.task.study.accession_number
    assert bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength].startswith(b"%PDF")


def test_pdf_goes_to_orthanc_after_commit_only_when_enabled(
    world, settings, django_capture_on_commit_callbacks
):
    settings.REPORTS_PDF_TO_ORTHANC = False
    with django_capture_on_commit_callbacks() as callbacks:
        _signed(world)
    assert len(callbacks) == 2  # the two live-event sends, no Orthanc call


@pytest.mark.orthanc
def test_report_stored_in_orthanc_in_its_study(world, orthanc, settings, django_capture_on_commit_callbacks):
    from telerad.reports_render import report_store_in_orthanc

    settings.REPORTS_PDF_TO_ORTHANC = True
    with django_capture_on_commit_callbacks(execute=True):
        report = _signed(world)
    study = world.task.study
    found = orthanc.client.lookup(study.study_instance_uid)
    assert [item["Type"] for item in found] == ["Study"]
    study_id = found[0]["ID"]
    instances = orthanc.client.study_instances(study_id)
    assert len(instances) == 1
    tags = orthanc.client.instance_tags(instances[0]["ID"])
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    assert tags["AccessionNumber"] == study.accession_number
    again = report_store_in_orthanc(Report.objects.get(pk=report.pk), client=orthanc.client)
    assert (again["Status"], again["ParentStudy"]) == ("AlreadyStored", study_id)


# --- concurrency (PostgreSQL) ------------------------------------------------------------------


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_concurrent_signs_sign_once():
    import threading

    from django.db import connections

    w = _make_world()
    report_save_draft(actor=w.reader, task=w.task, fields=CHEST, free_text="")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def sign() -> None:
        try:
            barrier.wait()
            report_sign(actor=w.reader, task=w.task)
            outcomes.append("signed")
        except Conflict as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_reported"] * 3 + ["signed"]
    assert list(ReportVersion.objects.filter(report__task=w.task).values_list("status", flat=True)) == [
        "draft",
        "final",
    ]
    assert ReadingEvent.objects.filter(kind=EventKind.STUDY_REPORTED).count() == 1
