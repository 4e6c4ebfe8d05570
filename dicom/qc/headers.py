"""A study's DICOM headers as read from Orthanc, grouped by series, for the QC rules.

Tags are Orthanc's *simplified* JSON (``/instances-tags?simplify``): keyword -> value, where a
value is a string (multi-valued elements joined with backslashes), a list of dicts for a
sequence, or None for binary values and values over Orthanc's 256-character limit. The
dataclasses are plain so that rules can be tested from hand-built dicts without Orthanc.

Two REST calls load a whole study, whatever its size (see ``load_study_headers``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dicom.orthanc_client import OrthancClient, check_orthanc_id

Tags = Mapping[str, Any]

X_RAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
DOSE_REPORT_CODE = "113701"  # (113701, DCM, "X-Ray Radiation Dose Report"): TID 10001's root
# Series that carry no acquisition of their own: reports, key objects, presentation states.
NON_IMAGE_MODALITIES = frozenset({"SR", "KO", "PR", "DOC"})
# Projection radiography: one image per view, no slice stack to check.
PROJECTION_MODALITIES = frozenset({"DX", "CR", "MG", "RF", "XA", "IO", "PX"})


# --- reading simplified tag values ---------------------------------------------------------------


def tag_text(tags: Tags, name: str) -> str | None:
    """The value as stripped text, None when absent, empty or not a scalar."""
    value = tags.get(name)
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return None
    text = str(value).strip()
    return text or None


def tag_floats(tags: Tags, name: str) -> list[float] | None:
    """A (multi-valued) decimal as floats; None when absent or not numeric."""
    value = tags.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, list | tuple):
        parts: Iterable[Any] = value
    elif isinstance(value, str):
        parts = value.split("\\")
    else:
        return None
    try:
        numbers = [float(str(part).strip()) for part in parts]
    except ValueError:
        return None
    return numbers or None


def tag_float(tags: Tags, name: str) -> float | None:
    numbers = tag_floats(tags, name)
    return numbers[0] if numbers else None


def tag_int(tags: Tags, name: str) -> int | None:
    number = tag_float(tags, name)
    return int(number) if number is not None and number.is_integer() else None


def tag_items(tags: Tags, name: str) -> list[Tags]:
    """The items of a sequence (empty when absent or not a sequence)."""
    value = tags.get(name)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def code_value(item: Tags, name: str = "ConceptNameCodeSequence") -> str | None:
    items = tag_items(item, name)
    return tag_text(items[0], "CodeValue") if items else None


# --- instances, series, study --------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceHeaders:
    orthanc_id: str
    tags: Tags

    @property
    def instance_number(self) -> int | None:
        return tag_int(self.tags, "InstanceNumber")

    @property
    def modality(self) -> str | None:
        modality = tag_text(self.tags, "Modality")
        return modality.upper() if modality else None

    @property
    def is_image(self) -> bool:
        return self.modality not in NON_IMAGE_MODALITIES and ("Rows" in self.tags or "PixelData" in self.tags)

    @property
    def is_multiframe(self) -> bool:
        frames = tag_int(self.tags, "NumberOfFrames")
        return (frames or 1) > 1 or "SharedFunctionalGroupsSequence" in self.tags

    @property
    def is_dose_sr(self) -> bool:
        if tag_text(self.tags, "SOPClassUID") == X_RAY_RADIATION_DOSE_SR:
            return True
        # Some scanners store TID 10011 in an Enhanced/Comprehensive SR: recognise the root concept.
        return self.modality == "SR" and code_value(self.tags) == DOSE_REPORT_CODE


@dataclass
class SeriesHeaders:
    series_instance_uid: str
    instances: list[InstanceHeaders]
    orthanc_id: str | None = None

    @property
    def uid(self) -> str | None:
        """The Series Instance UID for a finding (None when the instances have none)."""
        return self.series_instance_uid or None

    @property
    def modality(self) -> str | None:
        for instance in self.instances:
            if instance.modality:
                return instance.modality
        return None

    @property
    def body_part(self) -> str | None:
        for instance in self.instances:
            body_part = tag_text(instance.tags, "BodyPartExamined")
            if body_part:
                return body_part.upper()
        return None

    @property
    def is_image(self) -> bool:
        return any(instance.is_image for instance in self.instances)

    @property
    def is_dose_sr(self) -> bool:
        return any(instance.is_dose_sr for instance in self.instances)

    @property
    def is_localizer(self) -> bool:
        image_type = tag_text(self.instances[0].tags, "ImageType") if self.instances else None
        return bool(image_type) and "LOCALIZER" in str(image_type).upper().split("\\")

    def values(self, name: str) -> set[str]:
        """The distinct non-empty text values of a tag across the series."""
        return {value for instance in self.instances if (value := tag_text(instance.tags, name))}

    def representative(self) -> InstanceHeaders:
        """The middle instance by instance number: not the first, which is often a special slice."""
        images = [instance for instance in self.instances if instance.is_image] or self.instances
        return images[len(images) // 2]


@dataclass
class StudyHeaders:
    series: list[SeriesHeaders] = field(default_factory=list)
    orthanc_id: str | None = None

    @property
    def number_of_instances(self) -> int:
        return sum(len(series.instances) for series in self.series)

    @property
    def image_series(self) -> list[SeriesHeaders]:
        return [series for series in self.series if series.is_image]

    @property
    def dose_sr_series(self) -> list[SeriesHeaders]:
        return [series for series in self.series if series.is_dose_sr]

    @classmethod
    def from_instance_tags(
        cls,
        tags_by_instance: Mapping[str, Tags],
        *,
        orthanc_id: str | None = None,
        series_orthanc_ids: Mapping[str, str] | None = None,
    ) -> StudyHeaders:
        """Group ``{instance orthanc id: simplified tags}`` by Series Instance UID, in DICOM order."""
        grouped: dict[str, list[InstanceHeaders]] = {}
        for instance_id, tags in tags_by_instance.items():
            uid = tag_text(tags, "SeriesInstanceUID") or ""
            grouped.setdefault(uid, []).append(InstanceHeaders(instance_id, tags))
        series_ids = series_orthanc_ids or {}
        series = []
        for uid, instances in grouped.items():
            instances.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.orthanc_id))
            series.append(SeriesHeaders(uid, instances, series_ids.get(uid)))
        series.sort(key=_series_order)
        return cls(series=series, orthanc_id=orthanc_id)


def _series_order(series: SeriesHeaders) -> tuple[bool, int, str]:
    number = tag_int(series.instances[0].tags, "SeriesNumber") if series.instances else None
    return (number is None, number or 0, series.series_instance_uid)


# --- geometry shared by the completeness and dose rules --------------------------------------------


def slice_normal(orientation: list[float]) -> tuple[float, float, float] | None:
    """The unit normal of an Image Orientation (Patient), or None if it is not a valid one."""
    if len(orientation) != 6:
        return None
    rx, ry, rz, cx, cy, cz = orientation
    nx, ny, nz = ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx
    norm = (nx * nx + ny * ny + nz * nz) ** 0.5
    if norm < 1e-6:
        return None
    return nx / norm, ny / norm, nz / norm


def slice_stacks(series: SeriesHeaders) -> list[list[float]]:
    """Sorted slice positions along the normal, one list per distinct orientation in the series.

    A position is Image Position (Patient) projected on the slice normal; instances without a
    usable position or orientation are left out (the required-tags rule reports those).
    """
    stacks: dict[tuple[float, ...], list[float]] = {}
    for instance in series.instances:
        if instance.is_multiframe:
            continue
        orientation = tag_floats(instance.tags, "ImageOrientationPatient")
        position = tag_floats(instance.tags, "ImagePositionPatient")
        normal = slice_normal(orientation) if orientation else None
        if normal is None or not position or len(position) != 3:
            continue
        key = tuple(round(value, 3) for value in orientation or ())
        stacks.setdefault(key, []).append(sum(p * n for p, n in zip(position, normal, strict=True)))
    return [sorted(positions) for positions in stacks.values()]


def unique_positions(positions: list[float], tolerance: float = 1e-3) -> list[float]:
    """Sorted positions with repeats (multi-echo, multi-phase) collapsed."""
    unique: list[float] = []
    for position in sorted(positions):
        if not unique or position - unique[-1] > tolerance:
            unique.append(position)
    return unique


def median_spacing(positions: list[float]) -> float | None:
    unique = unique_positions(positions)
    if len(unique) < 2:
        return None
    return statistics.median(b - a for a, b in zip(unique, unique[1:], strict=False))


# --- loading from Orthanc --------------------------------------------------------------------------


def load_study_headers(client: OrthancClient, study_orthanc_id: str) -> StudyHeaders:
    """Every instance's tags of one study, grouped by series, in two REST calls.

    ``GET /studies/{id}/instances-tags?simplify`` returns the tags of all the study's instances
    at once, keyed by instance id, with sequences (a dose SR's ContentSequence) nested in full;
    ``GET /studies/{id}/series`` adds each series' Orthanc id. Per-instance calls would cost one
    round trip per slice. An instance stored between the two calls is simply not in this load
    (a late series makes QC run again).
    """
    check_orthanc_id(study_orthanc_id)
    series_ids = {
        uid: series["ID"]
        for series in client.study_series(study_orthanc_id)
        if (uid := tag_text(series.get("MainDicomTags") or {}, "SeriesInstanceUID"))
    }
    tags = client.instances_tags("studies", study_orthanc_id, simplify=True)
    return StudyHeaders.from_instance_tags(tags, orthanc_id=study_orthanc_id, series_orthanc_ids=series_ids)
