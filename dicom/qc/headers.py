"""A study's DICOM headers as read from Orthanc, grouped by series, for the QC rules.

Tags are Orthanc's *simplified* JSON (``/instances/{id}/tags?simplify``): keyword -> value, where
a value is a string (multi-valued elements joined with backslashes), a list of dicts for a
sequence, or None for binary values and values over Orthanc's 256-character limit. The
dataclasses are plain so that rules can be tested from hand-built dicts without Orthanc.

Every instance is listed from Orthanc's index, which keeps the per-instance tags the slice-stack
checks need (instance number, image position and orientation, SOP Instance UID, number of
frames) without opening a file; the *complete* header is read for a few instances per series
(first, last and evenly between; every instance of a small or non-image series). Parsing every
header of a 200-slice CT costs Orthanc ~0.16 s of CPU while the van is still sending; reading
five costs ~0.01 s (see ``load_study_headers``; ``QC_HEADERS_PER_SERIES=0`` reads them all).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dicom.orthanc_client import OrthancClient, OrthancError, check_orthanc_id
from dicom.own_objects import is_own_series

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


# The instance-level tags Orthanc 1.10 keeps in its index (``MainDicomTags`` of an instance): an
# instance whose header was not read still has these, as stored.
INDEX_INSTANCE_TAGS = frozenset(
    {
        "SOPInstanceUID",
        "InstanceNumber",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "NumberOfFrames",
        "AcquisitionNumber",
        "ImageIndex",
        "TemporalPositionIdentifier",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "ImageComments",
    }
)
# Equal in every instance of one Orthanc series: Orthanc files an instance under the series of
# its (PatientID, StudyInstanceUID, SeriesInstanceUID), so these are known without the header.
GROUPING_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
# Complete headers read per series by default: first, last and evenly spread between.
DEFAULT_HEADERS_PER_SERIES = 5


@dataclass(frozen=True)
class InstanceHeaders:
    """One instance's tags: its complete header, or (``complete=False``) only what Orthanc's index
    keeps (``INDEX_INSTANCE_TAGS`` and ``GROUPING_TAGS``). An index-only instance takes its SOP
    class, modality and kind (image, dose report) from ``like``, a read instance of its series."""

    orthanc_id: str
    tags: Tags
    complete: bool = True
    like: InstanceHeaders | None = None

    @property
    def instance_number(self) -> int | None:
        return tag_int(self.tags, "InstanceNumber")

    @property
    def modality(self) -> str | None:
        modality = tag_text(self.tags, "Modality")
        if modality:
            return modality.upper()
        return None if self.complete or self.like is None else self.like.modality

    @property
    def is_image(self) -> bool:
        if not self.complete:
            return self.like is not None and self.like.is_image
        return self.modality not in NON_IMAGE_MODALITIES and ("Rows" in self.tags or "PixelData" in self.tags)

    @property
    def is_multiframe(self) -> bool:
        frames = tag_int(self.tags, "NumberOfFrames")
        if (frames or 1) > 1 or "SharedFunctionalGroupsSequence" in self.tags:
            return True
        # An enhanced object's single frame: only its header's functional groups tell.
        return frames is None and not self.complete and self.like is not None and self.like.is_multiframe

    @property
    def is_dose_sr(self) -> bool:
        if not self.complete:
            return self.like is not None and self.like.is_dose_sr
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
    def read_instances(self) -> list[InstanceHeaders]:
        """The instances whose complete header was read (all of them unless sampled)."""
        return [instance for instance in self.instances if instance.complete]

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
        """The middle read instance by instance number: not the first, often a special slice."""
        read = self.read_instances or self.instances
        images = [instance for instance in read if instance.is_image] or read
        return images[len(images) // 2]


@dataclass
class StudyHeaders:
    series: list[SeriesHeaders] = field(default_factory=list)
    orthanc_id: str | None = None

    @property
    def number_of_instances(self) -> int:
        return sum(len(series.instances) for series in self.series)

    @property
    def number_read(self) -> int:
        """Instances whose complete header was read."""
        return sum(len(series.read_instances) for series in self.series)

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
        return cls.from_instances(
            [InstanceHeaders(instance_id, tags) for instance_id, tags in tags_by_instance.items()],
            orthanc_id=orthanc_id,
            series_orthanc_ids=series_orthanc_ids,
        )

    @classmethod
    def from_instances(
        cls,
        instances: Iterable[InstanceHeaders],
        *,
        orthanc_id: str | None = None,
        series_orthanc_ids: Mapping[str, str] | None = None,
    ) -> StudyHeaders:
        grouped: dict[str, list[InstanceHeaders]] = {}
        for instance in instances:
            uid = tag_text(instance.tags, "SeriesInstanceUID") or ""
            grouped.setdefault(uid, []).append(instance)
        series_ids = series_orthanc_ids or {}
        series = []
        for uid, members in grouped.items():
            members.sort(key=_instance_order)
            series.append(SeriesHeaders(uid, members, series_ids.get(uid)))
        series.sort(key=_series_order)
        return cls(series=series, orthanc_id=orthanc_id)


def _instance_order(instance: InstanceHeaders) -> tuple[bool, int, str]:
    return (instance.instance_number is None, instance.instance_number or 0, instance.orthanc_id)


def _series_order(series: SeriesHeaders) -> tuple[bool, int, str]:
    read = series.read_instances
    number = tag_int(read[0].tags, "SeriesNumber") if read else None
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


def sample_positions(count: int, size: int) -> list[int]:
    """Indices of ``size`` instances spread evenly over ``count`` (first and last included);
    every index when ``count <= size`` or ``size`` is 0."""
    if size <= 0 or count <= size:
        return list(range(count))
    if size == 1:
        return [count // 2]
    return sorted({round(k * (count - 1) / (size - 1)) for k in range(size)})


def load_study_headers(
    client: OrthancClient, study_orthanc_id: str, *, per_series: int = DEFAULT_HEADERS_PER_SERIES
) -> StudyHeaders:
    """Every instance of one study, grouped by series; complete headers for ``per_series`` of each.

    ``GET /studies/{id}/instances`` lists every instance with its index tags (no file is opened);
    ``GET /studies/{id}/series`` gives each series' Orthanc id and modality; then one
    ``GET /instances/{id}/tags?simplify`` per sampled instance: first, last and evenly between
    in instance-number order, or every instance of a series with at most ``per_series`` of them
    or a non-image modality (a dose report's nested content is read whole). ``per_series=0``
    reads every header in one ``/studies/{id}/instances-tags`` call instead.

    An instance stored after the listing is simply not in this load (QC runs again when the
    study changes); one deleted meanwhile is left out.
    """
    check_orthanc_id(study_orthanc_id)
    # The platform's own objects (a report PDF stored back) are not judged: not acquired.
    all_rows = client.study_series(study_orthanc_id)
    own_ids = {row["ID"] for row in all_rows if is_own_series(row.get("MainDicomTags") or {})}
    series_rows = [row for row in all_rows if row["ID"] not in own_ids]
    series_ids = {
        uid: row["ID"]
        for row in series_rows
        if (uid := tag_text(row.get("MainDicomTags") or {}, "SeriesInstanceUID"))
    }
    if per_series <= 0:
        tags = client.instances_tags("studies", study_orthanc_id, simplify=True)
        own_uids = {
            tag_text(row.get("MainDicomTags") or {}, "SeriesInstanceUID")
            for row in all_rows
            if row["ID"] in own_ids
        }
        tags = {i: t for i, t in tags.items() if tag_text(t, "SeriesInstanceUID") not in own_uids}
        return StudyHeaders.from_instance_tags(
            tags, orthanc_id=study_orthanc_id, series_orthanc_ids=series_ids
        )
    modality_of = {row["ID"]: tag_text(row.get("MainDicomTags") or {}, "Modality") for row in series_rows}
    listed: dict[str, list[InstanceHeaders]] = {}
    for row in client.study_instances(study_orthanc_id):
        if row.get("ParentSeries") in own_ids:
            continue
        index_tags = {k: v for k, v in (row.get("MainDicomTags") or {}).items() if k in INDEX_INSTANCE_TAGS}
        listed.setdefault(row.get("ParentSeries") or "", []).append(
            InstanceHeaders(row["ID"], index_tags, complete=False)
        )
    instances: list[InstanceHeaders] = []
    for series_id, members in listed.items():
        members.sort(key=_instance_order)
        whole = (modality_of.get(series_id) or "").upper() in NON_IMAGE_MODALITIES
        chosen = set(sample_positions(len(members), 0 if whole else per_series))
        read: dict[int, InstanceHeaders] = {}
        for position in sorted(chosen):
            header = _read_tags(client, members[position].orthanc_id)
            if header is not None:
                read[position] = InstanceHeaders(members[position].orthanc_id, header)
        if not read:
            continue  # the series went away while we read it
        instances.extend(read.values())
        like = next((i for i in read.values() if i.is_image), next(iter(read.values())))
        known = {name: value for name in GROUPING_TAGS if (value := like.tags.get(name)) is not None}
        instances.extend(
            InstanceHeaders(member.orthanc_id, {**known, **member.tags}, complete=False, like=like)
            for position, member in enumerate(members)
            if position not in chosen  # read above, or gone since the listing
        )
    return StudyHeaders.from_instances(instances, orthanc_id=study_orthanc_id, series_orthanc_ids=series_ids)


def _read_tags(client: OrthancClient, instance_id: str) -> Tags | None:
    try:
        return client.instance_tags(instance_id, simplify=True)
    except OrthancError as exc:
        if exc.status_code == 404:
            return None
        raise
