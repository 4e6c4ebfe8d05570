"""A report as the hospital receives it: HTML and PDF with the same content.

Pure functions of a report (no access check, no audit): callers reach the report through
``telerad.services.reports.report_get_for_user``, which checks and audits. Only signed addenda
are shown; unsigned ones are the author's work in progress.

The PDF is drawn with fpdf2's core Helvetica font, which covers Latin-1: characters outside it
are transliterated where an obvious ASCII form exists, otherwise printed as "?". The HTML is
full Unicode.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from fpdf import FPDF
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from core.on_commit import on_commit
from dicom.orthanc_client import OrthancClient, OrthancError, orthanc_client_from_settings
from dicom.own_objects import OWN_MANUFACTURER
from dicom.uids import new_uid
from telerad.choices import ReportStatus
from telerad.models import Report
from telerad.report_templates import display_value, template_get
from telerad.selectors_reports import report_turnaround

WATERMARKS = {
    ReportStatus.FINAL: "FINAL",
    ReportStatus.PRELIMINARY: "PRELIMINARY",
    ReportStatus.DRAFT: "DRAFT",
}
INTERVAL_LABELS = (
    ("acquired_to_routed", "Acquired to routed"),
    ("routed_to_claimed", "Routed to claimed"),
    ("claimed_to_signed", "Claimed to signed"),
    ("routed_to_signed", "Routed to signed (SLA)"),
    ("acquired_to_signed", "Acquired to signed"),
)


def person_name(pn: str) -> str:
    """DICOM PN "FAMILY^GIVEN^MIDDLE" (alphabetic group) as "FAMILY, Given Middle"."""
    alphabetic = (pn or "").split("=")[0]
    parts = [p.strip() for p in alphabetic.split("^")]
    family, given = (parts[0] if parts else ""), " ".join(p for p in parts[1:3] if p)
    return f"{family}, {given}" if family and given else family or given


def _fmt_dt(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return value.strftime("%Y-%m-%d")


def _fmt_interval(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    sign = "-" if seconds < 0 else ""
    minutes = abs(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{sign}{days} d {hours} h {minutes} min"
    if hours:
        return f"{sign}{hours} h {minutes} min"
    return f"{sign}{minutes} min"


def report_context(report: Report) -> dict[str, Any]:
    """Everything a rendering shows, as display strings (shared by the HTML and the PDF)."""
    study, task = report.study, report.task
    order = study.order
    template = template_get(report.template)
    rows = [
        (spec.label, display_value(spec, report.fields.get(spec.name)))
        for spec in template.fields
        if spec.name != "impression" and spec.name in report.fields
    ]
    turnaround = report_turnaround(report)
    hospital = study.hospital or task.hospital
    author = report.author
    exam = order.requested_procedure if order else (study.description or "")
    addenda = [
        {
            "text": a.text,
            "author": a.author.get_full_name() or a.author.get_username(),
            "created_at": _fmt_dt(a.created_at),
            "signed_at": _fmt_dt(a.signed_at),
        }
        for a in report.addenda.all()
        if a.signed_at is not None
    ]
    return {
        "report": report,
        "watermark": WATERMARKS.get(ReportStatus(report.status), report.status.upper()),
        "status_label": report.get_status_display(),
        "template_title": template.title,
        "hospital": hospital.name if hospital else "—",
        "patient_name": person_name(study.patient_name or (order.patient_name if order else "")),
        "patient_id": study.patient_id or (order.patient_id if order else ""),
        "patient_sex": study.patient_sex or (order.patient_sex if order else ""),
        "patient_birth_date": _fmt_dt(
            study.patient_birth_date or (order.patient_birth_date if order else None)
        ),
        "accession": study.accession_number or (order.accession_number if order else ""),
        "exam": exam,
        "modality": task.modality,
        "body_part": task.body_part,
        "priority": task.priority,
        "study_date": _fmt_dt(study.study_date),
        "signed_at": _fmt_dt(report.signed_at),
        "author": author.get_full_name() or author.get_username(),
        "version": report.version,
        "critical": report.critical,
        "rows": rows,
        "impression": display_value(template.field("impression"), report.fields.get("impression")),
        "free_text": report.free_text,
        "addenda": addenda,
        "turnaround": [
            ("Acquired", _fmt_dt(turnaround["acquired"])),
            ("Routed", _fmt_dt(turnaround["routed"])),
            ("Claimed", _fmt_dt(turnaround["claimed"])),
            ("Signed", _fmt_dt(turnaround["signed"])),
        ],
        "intervals": [(label, _fmt_interval(turnaround["intervals"][key])) for key, label in INTERVAL_LABELS],
        "within_sla": turnaround["within_sla"],
    }


def report_html(report: Report) -> str:
    """The report as a standalone HTML document (inline CSS, printable)."""
    return render_to_string("telerad/report_document.html", report_context(report))


# --- PDF ---------------------------------------------------------------------------------------

_ASCII_FALLBACKS = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u2192": "->",
        "\u2022": "*",
    }
)


def _latin1(text: Any) -> str:
    text = str(text).translate(_ASCII_FALLBACKS)
    out = []
    for char in text:
        try:
            char.encode("latin-1")
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            out.append(base or "?")
        else:
            out.append(char)
    return "".join(out)


class _ReportPDF(FPDF):
    def __init__(self, watermark: str, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.watermark = watermark
        self.footer_text = footer_text

    def header(self) -> None:
        # The status across every page, behind the text, so a printed page is never ambiguous.
        with self.local_context(text_color=(225, 225, 225)):
            self.set_font("Helvetica", "B", 72)
            with self.rotation(35, x=self.w / 2, y=self.h / 2):
                self.text(self.w / 2 - self.get_string_width(self.watermark) / 2, self.h / 2, self.watermark)
        self.set_xy(self.l_margin, self.t_margin)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(100, 100, 100)
        self.cell(0, 5, _latin1(f"{self.footer_text} - page {self.page_no()}/{{nb}}"), align="C")


def report_pdf(report: Report) -> bytes:
    """The report as a PDF (same content as ``report_html``)."""
    ctx = report_context(report)
    pdf = _ReportPDF(
        ctx["watermark"], f"{ctx['hospital']} - accession {ctx['accession']} - {ctx['watermark']}"
    )
    pdf.set_title(_latin1(f"Report {ctx['accession']}"))
    pdf.set_author(_latin1(ctx["author"]))
    pdf.set_creator("Caravan")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str, size: int = 12) -> None:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(width, 7, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def pairs(items: list[tuple[str, str]]) -> None:
        for label, value in items:
            pdf.set_font("Helvetica", "B", 10)
            pdf.cell(55, 6, _latin1(label))
            pdf.set_font("Helvetica", "", 10)
            pdf.multi_cell(width - 55, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")

    def paragraph(text: str) -> None:
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(width, 5.5, _latin1(text or "—"), new_x="LMARGIN", new_y="NEXT")

    heading(f"{ctx['template_title']} report - {ctx['watermark']}", 16)
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(width, 6, _latin1(ctx["hospital"]), new_x="LMARGIN", new_y="NEXT")
    if ctx["critical"]:
        pdf.set_text_color(170, 0, 0)
        heading("CRITICAL FINDING - communicated to the hospital")
        pdf.set_text_color(0, 0, 0)
    heading("Patient and exam")
    pairs(
        [
            ("Patient", ctx["patient_name"]),
            ("Patient ID", ctx["patient_id"]),
            ("Sex / birth date", f"{ctx['patient_sex'] or '—'} / {ctx['patient_birth_date']}"),
            ("Accession", ctx["accession"]),
            ("Exam", f"{ctx['exam']} ({ctx['modality']} {ctx['body_part']})"),
            ("Priority", ctx["priority"]),
            ("Study date", ctx["study_date"]),
            ("Status", f"{ctx['status_label']} (version {ctx['version']})"),
            ("Reported by", ctx["author"]),
            ("Signed", ctx["signed_at"]),
        ]
    )
    heading("Findings")
    pairs(ctx["rows"])
    heading("Impression")
    paragraph(ctx["impression"])
    if ctx["free_text"]:
        heading("Comment")
        paragraph(ctx["free_text"])
    if ctx["addenda"]:
        heading("Addenda")
        for number, addendum in enumerate(ctx["addenda"], start=1):
            pdf.set_font("Helvetica", "B", 10)
            pdf.multi_cell(
                width,
                6,
                _latin1(f"Addendum {number} - signed by {addendum['author']} on {addendum['signed_at']}"),
                new_x="LMARGIN",
                new_y="NEXT",
            )
            paragraph(addendum["text"])
    heading("Turnaround")
    pairs(ctx["turnaround"] + ctx["intervals"])
    return bytes(pdf.output())


# --- DICOM Encapsulated PDF, stored back into the study in Orthanc -----------------------------

ENCAPSULATED_PDF_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
REPORT_SERIES_NUMBER = 999
logger = logging.getLogger(__name__)


def _da(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def report_encapsulated_pdf(report: Report) -> bytes:
    """The report's PDF as a DICOM Part 10 Encapsulated PDF instance in the report's study.

    UIDs are derived from the report (series) and its rendering (report version and number of
    signed addenda), so storing the same rendering twice is a no-op in Orthanc and each signed
    addendum adds a new instance to the same series.
    """
    study, order = report.study, report.study.order
    signed_addenda = sum(1 for a in report.addenda.all() if a.signed_at is not None)
    sop_uid = new_uid(["caravan-report-pdf", str(report.pk), str(report.version), str(signed_addenda)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ENCAPSULATED_PDF_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ENCAPSULATED_PDF_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = new_uid(["caravan-report-series", str(report.pk)])
    # Patient and study attributes exactly as stored, so Orthanc files it under the same study.
    ds.PatientName = study.patient_name or (order.patient_name if order else "")
    ds.PatientID = study.patient_id or (order.patient_id if order else "")
    ds.PatientBirthDate = _da(study.patient_birth_date)
    ds.PatientSex = study.patient_sex
    ds.AccessionNumber = study.accession_number
    ds.StudyDate = _da(study.study_date)
    ds.StudyTime = study.study_time.strftime("%H%M%S") if study.study_time else ""
    ds.StudyID = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "DOC"
    ds.SeriesNumber = REPORT_SERIES_NUMBER
    ds.SeriesDescription = "Radiology report"
    ds.InstanceNumber = 1 + signed_addenda
    # With our UID root and the DOC modality, this marks the series as the platform's own:
    # ingest, QC and the image counts leave it out (dicom.own_objects).
    ds.Manufacturer = OWN_MANUFACTURER
    ds.ConversionType = "WSD"
    signed = timezone.localtime(report.signed_at or timezone.now())
    ds.ContentDate = signed.strftime("%Y%m%d")
    ds.ContentTime = signed.strftime("%H%M%S")
    ds.AcquisitionDateTime = signed.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = (
        f"{WATERMARKS.get(ReportStatus(report.status), '')} report {study.accession_number}".strip()
    )
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf = report_pdf(report)
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def report_store_in_orthanc(report: Report, *, client: OrthancClient | None = None) -> dict[str, Any]:
    """Upload the report's Encapsulated PDF to Orthanc; Orthanc's answer (ID, ParentStudy, Status)."""
    data = report_encapsulated_pdf(report)
    if client is not None:
        return client.upload_instance(data)
    with orthanc_client_from_settings() as own:
        return own.upload_instance(data)


def report_store_in_orthanc_on_commit(report: Report) -> None:
    """Store the report in Orthanc once the transaction commits, if REPORTS_PDF_TO_ORTHANC is on.

    A failure is logged (ids only) and leaves the signed report as it is: the PDF can be
    stored again at any time, and the same rendering is stored once.
    """
    if not getattr(settings, "REPORTS_PDF_TO_ORTHANC", False):
        return
    report_id = report.pk

    def store() -> None:
        try:
            fresh = Report.objects.select_related("study__order", "task", "author").get(pk=report_id)
            result = report_store_in_orthanc(fresh)
        except (OrthancError, OSError):
            logger.exception("storing report %s in Orthanc failed", report_id)
        else:
            logger.info(
                "report %s stored in Orthanc as %s (%s)", report_id, result.get("ID"), result.get("Status")
            )

    on_commit(store)
