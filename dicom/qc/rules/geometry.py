"""Rules on the slice stack: series completeness and slice thickness within protocol."""

from __future__ import annotations

from collections import Counter

from dicom.choices import QCSeverity
from dicom.qc.base import Finding, QCContext, Rule, number_list, plural
from dicom.qc.headers import PROJECTION_MODALITIES, SeriesHeaders, median_spacing, slice_stacks, tag_float
from dicom.qc.headers import unique_positions as unique

# Fewer distinct positions than this and a median spacing says nothing about gaps.
MIN_POSITIONS_FOR_GAPS = 3


def is_slice_stack(series: SeriesHeaders) -> bool:
    """Cross-sectional single-frame images: what completeness can be judged on."""
    if not series.is_image or series.modality in PROJECTION_MODALITIES:
        return False
    return not all(instance.is_multiframe for instance in series.instances if instance.is_image)


class SeriesCompleteRule(Rule):
    id = "series_complete"
    severity = QCSeverity.FAIL
    description = (
        "Instance numbers run 1..N without repeats, and slice positions have no gap beyond "
        "the protocol factor x the median spacing (projection and multi-frame series aside)."
    )

    def check(self, context: QCContext) -> list[Finding]:
        findings: list[Finding] = []
        for series in context.headers.image_series:
            if not is_slice_stack(series):
                continue
            findings.extend(self._instance_numbers(series))
            findings.extend(self._gaps(series, context.protocols.slice_gap_factor))
        return findings

    def _instance_numbers(self, series: SeriesHeaders) -> list[Finding]:
        findings = []
        numbers = [instance.instance_number for instance in series.instances]
        known = sorted(number for number in numbers if number is not None)
        if len(known) < len(numbers):
            lacking = len(numbers) - len(known)
            findings.append(
                self.fail(f"{plural(lacking, 'instance')} without an instance number", series=series.uid)
            )
        repeated = sorted(number for number, count in Counter(known).items() if count > 1)
        if repeated:
            findings.append(self.fail(f"instance numbers repeat: {number_list(repeated)}", series=series.uid))
        expected = set(range(1, len(numbers) + 1))
        missing = sorted(expected - set(known))
        extra = sorted(set(known) - expected)
        if missing:
            message = f"instance numbers are not 1..{len(numbers)}: missing {number_list(missing)}"
            if extra:
                message += f"; unexpected {number_list(extra)}"
            findings.append(self.fail(message, series=series.uid))
        return findings

    def _gaps(self, series: SeriesHeaders, factor: float) -> list[Finding]:
        findings = []
        for positions in slice_stacks(series):
            distinct = unique(positions)
            spacing = median_spacing(distinct)
            if len(distinct) < MIN_POSITIONS_FOR_GAPS or not spacing:
                continue
            gaps = [b - a for a, b in zip(distinct, distinct[1:], strict=False) if b - a > factor * spacing]
            if gaps:
                findings.append(
                    self.fail(
                        f"{plural(len(gaps), 'gap')} in slice positions, largest {max(gaps):.1f} mm "
                        f"where the median spacing is {spacing:.2f} mm",
                        series=series.uid,
                    )
                )
        return findings


class SliceThicknessRule(Rule):
    id = "slice_thickness"
    severity = QCSeverity.WARN
    description = (
        "Slice Thickness of each image series is within the protocol range for its modality and body part."
    )

    def check(self, context: QCContext) -> list[Finding]:
        findings = []
        booked_part = context.order.body_part if context.order else None
        for series in context.headers.image_series:
            body_part = booked_part or context.protocols.canonical_body_part(series.body_part)
            limits = context.protocols.thickness_range(series.modality, body_part)
            if limits is None or series.is_localizer:
                continue
            values = (
                tag_float(instance.tags, "SliceThickness")
                for instance in series.instances
                if instance.is_image
            )
            thicknesses = sorted({value for value in values if value is not None})
            outside = [value for value in thicknesses if value not in limits]
            if outside:
                findings.append(
                    self.warn(
                        f"slice thickness {number_list(outside)} mm outside the protocol range "
                        f"{limits.min_mm:g}-{limits.max_mm:g} mm for {series.modality} "
                        f"{body_part or 'any body part'}",
                        series=series.uid,
                    )
                )
        return findings
