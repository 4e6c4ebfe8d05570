"""Rules on who and what was scanned: required tags, patient, modality and body part vs the order."""

from __future__ import annotations

import datetime
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING, ClassVar

from dicom.choices import QCSeverity
from dicom.qc.base import Finding, QCContext, Rule, plural
from dicom.qc.headers import GROUPING_TAGS, INDEX_INSTANCE_TAGS, InstanceHeaders, SeriesHeaders, tag_text

if TYPE_CHECKING:
    from dicom.models import Order

BASE_REQUIRED_TAGS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "StudyDate",
    "AccessionNumber",
)
# Geometry a cross-sectional viewer and the completeness rule need on every single-frame image.
CROSS_SECTIONAL_TAGS = ("SliceThickness", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR"})


def required_tags(instance: InstanceHeaders) -> tuple[str, ...]:
    if instance.modality in CROSS_SECTIONAL_MODALITIES and instance.is_image and not instance.is_multiframe:
        return BASE_REQUIRED_TAGS + CROSS_SECTIONAL_TAGS
    # Enhanced multi-frame objects keep geometry in functional groups, not at the top level.
    return BASE_REQUIRED_TAGS


def supplied_by_order(order: Order | None) -> frozenset[str]:
    """Required tags the matched order supplies when the images lack them: only the accession
    number (the platform's record carries the order's). Identity and geometry stay strict."""
    if order is not None and order.accession_number:
        return frozenset({"AccessionNumber"})
    return frozenset()


class RequiredTagsRule(Rule):
    id = "required_tags"
    severity = QCSeverity.FAIL
    description = (
        "Identifying and geometry tags are present and not empty: in every instance for what "
        "Orthanc's index keeps (SOP Instance UID, image position and orientation, patient, study "
        "and series identity), in every instance read for the others."
    )

    def check(self, context: QCContext) -> list[Finding]:
        findings = []
        supplied = supplied_by_order(context.order)
        for series in context.headers.series:
            missing: Counter[str] = Counter()
            checked: Counter[str] = Counter()
            for instance in series.instances:
                for tag in required_tags(instance):
                    if not instance.complete and tag not in INDEX_INSTANCE_TAGS and tag not in GROUPING_TAGS:
                        continue  # not in Orthanc's index: judged on the instances read
                    checked[tag] += 1
                    if tag_text(instance.tags, tag) is None:
                        missing[tag] += 1
            total = len(series.instances)
            for tag, count in missing.items():
                if checked[tag] == total:
                    where = f"{count} of {plural(total, 'instance')}"
                else:
                    where = f"{count} of the {checked[tag]} instances read (of {total})"
                message = f"{tag} is missing or empty in {where}"
                if tag in supplied:
                    # Routable: the platform shows and sends the order's value (docs/ingest.md).
                    findings.append(self.warn(f"{message}; the matched order's is used", series=series.uid))
                else:
                    findings.append(self.fail(message, series=series.uid))
        headers = context.headers
        if headers.number_read < headers.number_of_instances:
            context.notes[self.id] = (
                f"complete headers read for {headers.number_read} of {headers.number_of_instances} "
                "instances; Orthanc's index tags for all"
            )
        return findings


# --- patient demographics ----------------------------------------------------------------------

Verdict = tuple[QCSeverity, str] | None


def normalise_person_name(value: str) -> str:
    """Case, accents, ``^``/space/comma separators and empty components do not count."""
    alphabetic = value.split("=", 1)[0]
    folded = unicodedata.normalize("NFKD", alphabetic.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    for separator in "^,.":
        folded = folded.replace(separator, " ")
    return " ".join(folded.split())


def compare_name(booked: str, found: str) -> Verdict:
    if found.strip() == booked.strip():
        return None
    if normalise_person_name(found) == normalise_person_name(booked):
        return (
            QCSeverity.WARN,
            "patient name is written differently from the order (case, separators or spacing)",
        )
    return QCSeverity.FAIL, "patient name differs from the order"


def compare_birth_date(booked: datetime.date, found: str) -> Verdict:
    try:
        found_date = datetime.datetime.strptime(found.replace("-", "").replace(".", ""), "%Y%m%d").date()
    except ValueError:
        return QCSeverity.FAIL, "patient birth date in the images is not a valid DICOM date"
    if found_date != booked:
        return QCSeverity.FAIL, "patient birth date differs from the order"
    return None


class PatientMatchRule(Rule):
    id = "patient_match"
    severity = QCSeverity.FAIL
    description = "Patient ID, name, birth date and sex in the images match the order."
    needs_order = True

    # Tag -> message when a series lacks it (None: the required-tags rule already reports it).
    TAGS: ClassVar[dict[str, str | None]] = {
        "PatientID": None,
        "PatientName": None,
        "PatientBirthDate": "patient birth date is missing from the images",
        "PatientSex": "patient sex is missing from the images",
    }

    def check(self, context: QCContext) -> list[Finding]:
        order = context.order
        assert order is not None
        findings: list[Finding] = []
        for tag, missing_message in self.TAGS.items():
            verdicts: dict[tuple[QCSeverity, str], list[SeriesHeaders]] = {}
            for series in context.headers.series:
                worst: Verdict = None
                values = series.values(tag)
                if not values and missing_message:
                    worst = (QCSeverity.WARN, missing_message)
                for value in sorted(values):
                    verdict = self.compare(tag, value, order)
                    if verdict and (worst is None or verdict[0] == QCSeverity.FAIL):
                        worst = verdict
                if worst:
                    verdicts.setdefault(worst, []).append(series)
            findings.extend(self._report(verdicts, len(context.headers.series)))
        return findings

    @staticmethod
    def compare(tag: str, value: str, order: Order) -> Verdict:
        if tag == "PatientID":
            return (
                None
                if value == order.patient_id.strip()
                else (QCSeverity.FAIL, "patient ID differs from the order")
            )
        if tag == "PatientName":
            return compare_name(order.patient_name, value)
        if tag == "PatientBirthDate":
            return compare_birth_date(order.patient_birth_date, value)
        if value.upper() == order.patient_sex.upper():
            return None
        return QCSeverity.FAIL, "patient sex differs from the order"

    def _report(
        self, verdicts: dict[tuple[QCSeverity, str], list[SeriesHeaders]], series_count: int
    ) -> list[Finding]:
        findings = []
        for (severity, message), series_list in verdicts.items():
            if len(series_list) == series_count:
                # Every series: one finding for the study, not one per series.
                findings.append(self.finding(message, severity=severity))
            else:
                findings.extend(self.finding(message, series=s.uid, severity=severity) for s in series_list)
        return findings


# --- modality and body part ----------------------------------------------------------------------


def acquisition_series(context: QCContext) -> list[SeriesHeaders]:
    """Series that carry images (dose reports, key objects and presentation states do not)."""
    return context.headers.image_series


class ModalityMatchRule(Rule):
    id = "modality_match"
    severity = QCSeverity.FAIL
    description = (
        "Every image series has the booked modality (dose reports and other non-image series aside)."
    )
    needs_order = True

    def check(self, context: QCContext) -> list[Finding]:
        assert context.order is not None
        booked = context.order.modality.upper()
        findings = []
        matching = 0
        for series in acquisition_series(context):
            modality = series.modality
            if modality is None:
                continue  # reported by the required-tags rule
            if modality == booked:
                matching += 1
            else:
                findings.append(
                    self.fail(f"series modality {modality} is not the booked {booked}", series=series.uid)
                )
        if not matching:
            findings.append(self.fail(f"the study has no {booked} image series"))
        return findings


class BodyPartMatchRule(Rule):
    id = "body_part_match"
    severity = QCSeverity.FAIL
    description = "Body Part Examined of every image series matches the booked body part (missing: warning)."
    needs_order = True

    def check(self, context: QCContext) -> list[Finding]:
        assert context.order is not None
        booked = context.order.body_part.upper()
        findings = []
        for series in acquisition_series(context):
            examined = series.body_part
            if examined is None:
                findings.append(self.warn("Body Part Examined is missing", series=series.uid))
            elif not context.protocols.body_part_matches(booked, examined):
                findings.append(
                    self.fail(f"body part {examined} does not match the booked {booked}", series=series.uid)
                )
        return findings
