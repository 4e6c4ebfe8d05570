"""CT dose (CTDIvol, DLP) against diagnostic reference levels.

The X-Ray Radiation Dose SR (TID 10011 "CT Radiation Dose") is the authoritative source: the
scanner's own per-event CTDIvol and DLP and the study total. Without one, CTDIvol (0018,9345)
from the image headers gives the dose index, and DLP is estimated as CTDIvol x scan length from
the slice positions, one term per distinct acquisition.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dicom.choices import QCSeverity
from dicom.qc.base import Finding, QCContext, Rule, RuleSkipped
from dicom.qc.config import DoseLevels
from dicom.qc.headers import (
    SeriesHeaders,
    StudyHeaders,
    Tags,
    code_value,
    slice_stacks,
    tag_float,
    tag_items,
    tag_text,
)

MEAN_CTDIVOL = "113830"  # (113830, DCM, "Mean CTDIvol"), one per irradiation event
DLP_TOTAL = "113813"  # (113813, DCM, "CT Dose Length Product Total"), accumulated dose data
DLP_EVENT = "113838"  # (113838, DCM, "DLP"), one per irradiation event

SOURCE_SR = "dose SR"
SOURCE_IMAGES = "image headers"

# Two series with the same CTDIvol (within 1 %) covering mostly the same range are two
# reconstructions of one acquisition (soft tissue and bone kernels, thin and thick slices):
# their DLP counts once.
_SAME_CTDI = 0.01
_SAME_RANGE = 0.5

_UNIT_FACTORS = {"ugy": 0.001, "mgy": 1.0, "cgy": 10.0, "gy": 1000.0}


@dataclass(frozen=True)
class DoseEstimate:
    ctdivol_mgy: float | None
    dlp_mgy_cm: float | None
    source: str


# --- from the dose SR ------------------------------------------------------------------------------


def walk_content(items: Iterable[Tags]) -> Iterator[Tags]:
    """Every content item of an SR tree, depth first (iterative: trees can be deep)."""
    stack = list(items)[::-1]
    while stack:
        item = stack.pop()
        yield item
        stack.extend(tag_items(item, "ContentSequence")[::-1])


def measured_value_mgy(item: Tags) -> float | None:
    """A NUM item's value in mGy (or mGy.cm), converting from the UCUM unit when it says Gy."""
    values = tag_items(item, "MeasuredValueSequence")
    if not values:
        return None
    value = tag_float(values[0], "NumericValue")
    if value is None:
        return None
    unit = (code_value(values[0], "MeasurementUnitsCodeSequence") or "mGy").lower()
    for suffix in (".cm", "*cm", "cm"):
        unit = unit.removesuffix(suffix)
    return value * _UNIT_FACTORS.get(unit, 1.0)


def sr_dose(tags: Tags) -> tuple[list[float], list[float], list[float]]:
    """(event CTDIvols, DLP totals, event DLPs) of one dose SR, in mGy and mGy.cm."""
    ctdivols: list[float] = []
    totals: list[float] = []
    events: list[float] = []
    wanted = {MEAN_CTDIVOL: ctdivols, DLP_TOTAL: totals, DLP_EVENT: events}
    for item in walk_content(tag_items(tags, "ContentSequence")):
        if tag_text(item, "ValueType") != "NUM":
            continue
        concept = tag_items(item, "ConceptNameCodeSequence")
        if not concept or (tag_text(concept[0], "CodingSchemeDesignator") or "DCM") != "DCM":
            continue
        target = wanted.get(tag_text(concept[0], "CodeValue") or "")
        value = measured_value_mgy(item)
        if target is not None and value is not None:
            target.append(value)
    return ctdivols, totals, events


def dose_from_reports(headers: StudyHeaders) -> DoseEstimate | None:
    """Max event CTDIvol; DLP total (else the sum of event DLPs), the largest over the reports.

    The largest, not the sum: a scanner that re-sends an updated report for the same study
    would otherwise count the same exposure twice.
    """
    ctdivol: float | None = None
    dlp: float | None = None
    for series in headers.dose_sr_series:
        for instance in series.instances:
            if not instance.is_dose_sr:
                continue
            ctdivols, totals, events = sr_dose(instance.tags)
            if ctdivols:
                ctdivol = max(ctdivol or 0.0, max(ctdivols))
            report_dlp = max(totals) if totals else (sum(events) if events else None)
            if report_dlp is not None:
                dlp = max(dlp or 0.0, report_dlp)
    if ctdivol is None and dlp is None:
        return None
    return DoseEstimate(ctdivol, dlp, SOURCE_SR)


# --- from the image headers --------------------------------------------------------------------------


@dataclass
class _Acquisition:
    ctdivol: float
    low: float
    high: float

    @property
    def length_cm(self) -> float:
        return (self.high - self.low) / 10

    def same_as(self, other: _Acquisition) -> bool:
        if abs(self.ctdivol - other.ctdivol) > _SAME_CTDI * max(self.ctdivol, other.ctdivol):
            return False
        overlap = min(self.high, other.high) - max(self.low, other.low)
        shorter = min(self.high - self.low, other.high - other.low)
        return shorter <= 0 or overlap >= _SAME_RANGE * shorter


def _series_acquisition(series: SeriesHeaders) -> tuple[float | None, _Acquisition | None]:
    ctdivols = [value for i in series.instances if (value := tag_float(i.tags, "CTDIvol")) is not None]
    if not ctdivols:
        return None, None
    ctdivol = max(ctdivols)
    stacks = slice_stacks(series)
    if not stacks:
        return ctdivol, None
    positions = max(stacks, key=len)
    thicknesses = [
        value for i in series.instances if (value := tag_float(i.tags, "SliceThickness")) is not None
    ]
    # The irradiated length covers half a slice beyond each end position.
    half = statistics.median(thicknesses) / 2 if thicknesses else 0.0
    return ctdivol, _Acquisition(ctdivol, positions[0] - half, positions[-1] + half)


def dose_from_images(headers: StudyHeaders) -> DoseEstimate | None:
    ctdivol: float | None = None
    acquisitions: list[_Acquisition] = []
    for series in headers.image_series:
        if series.modality != "CT" or series.is_localizer:
            continue
        series_ctdivol, acquisition = _series_acquisition(series)
        if series_ctdivol is None:
            continue
        ctdivol = max(ctdivol or 0.0, series_ctdivol)
        if acquisition is None:
            continue
        for index, known in enumerate(acquisitions):
            if known.same_as(acquisition):
                if acquisition.length_cm > known.length_cm:
                    acquisitions[index] = acquisition
                break
        else:
            acquisitions.append(acquisition)
    if ctdivol is None:
        return None
    dlp = sum(a.ctdivol * a.length_cm for a in acquisitions) if acquisitions else None
    return DoseEstimate(ctdivol, dlp, SOURCE_IMAGES)


# --- the rule ------------------------------------------------------------------------------------------


class CtDoseRule(Rule):
    id = "ct_dose"
    severity = QCSeverity.FAIL
    description = (
        "CT dose from the dose SR (else the image headers) against the body part's DRL: "
        "above the DRL warns, above the fail factor x DRL fails."
    )

    def check(self, context: QCContext) -> list[Finding]:
        headers = context.headers
        has_ct = any(series.modality == "CT" for series in headers.image_series)
        if not has_ct and not headers.dose_sr_series:
            raise RuleSkipped("no CT images or dose report in the study")
        estimate = dose_from_reports(headers)
        if estimate is None and headers.dose_sr_series:
            context.note(self.id, "the dose SR has no CTDIvol or DLP")
        estimate = estimate or dose_from_images(headers)
        if estimate is None:
            return [self.warn("no dose information: no dose SR and no CTDIvol in the CT image headers")]
        context.note(self.id, _describe(estimate))

        body_part = self._body_part(context)
        levels = context.protocols.ct_drl.get(body_part or "")
        if levels is None:
            context.note(self.id, f"no DRL configured for body part {body_part or '(unknown)'}")
            return []
        return self._compare(estimate, levels, body_part or "", context.protocols.dose_fail_factor)

    @staticmethod
    def _body_part(context: QCContext) -> str | None:
        if context.order is not None:
            return context.order.body_part.upper()
        parts = Counter(
            part
            for series in context.headers.image_series
            if series.modality == "CT"
            and (
                part := context.protocols.canonical_body_part(
                    series.body_part, among=context.protocols.ct_drl
                )
            )
        )
        return parts.most_common(1)[0][0] if parts else None

    def _compare(
        self, estimate: DoseEstimate, levels: DoseLevels, body_part: str, factor: float
    ) -> list[Finding]:
        findings = []
        dlp_name = "DLP" if estimate.source == SOURCE_SR else "estimated DLP"
        checks = (
            ("CTDIvol", estimate.ctdivol_mgy, levels.ctdivol_mgy, "mGy"),
            (dlp_name, estimate.dlp_mgy_cm, levels.dlp_mgy_cm, "mGy.cm"),
        )
        for name, value, level, unit in checks:
            if value is None:
                continue
            if value > factor * level:
                findings.append(
                    self.fail(
                        f"{name} {value:.1f} {unit} is above {factor:g} x the {body_part} DRL "
                        f"({factor * level:g} {unit}); source: {estimate.source}"
                    )
                )
            elif value > level:
                findings.append(
                    self.warn(
                        f"{name} {value:.1f} {unit} is above the {body_part} DRL ({level:g} {unit}); "
                        f"source: {estimate.source}"
                    )
                )
        return findings


def _describe(estimate: DoseEstimate) -> str:
    parts = [f"source: {estimate.source}"]
    if estimate.ctdivol_mgy is not None:
        parts.append(f"CTDIvol {estimate.ctdivol_mgy:.1f} mGy")
    if estimate.dlp_mgy_cm is not None:
        parts.append(
            f"DLP {estimate.dlp_mgy_cm:.0f} mGy.cm"
            + (" (estimated)" if estimate.source == SOURCE_IMAGES else "")
        )
    return ", ".join(parts)
