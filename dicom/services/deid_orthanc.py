"""The Orthanc side of a de-identified export (dicom/services/deid.py): reading the source
study, checking the copy Orthanc made, pairing it with the original, deleting copies."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.exceptions import InvalidInput, NotFound, Unavailable
from dicom.orthanc_client import OrthancClient, OrthancError, check_orthanc_id

# (0012,0063) is LO: at most 64 characters. Orthanc writes its own value only when the request
# changes nothing beyond the profile; ours replaces identifiers, so we state the method.
DEIDENTIFICATION_METHOD = "PS3.15 E.1-1 Basic Profile 2021b (Orthanc); project pseudonyms"


@dataclass
class SourceSeries:
    orthanc_id: str
    uid: str
    # Orthanc instance id -> (SOP Instance UID, Frame of Reference UID or "").
    instances: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Source:
    study_uid: str
    patient_id: str
    series: list[SourceSeries]

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.series)

    def instance(self, orthanc_id: str) -> tuple[str, str] | None:
        for series in self.series:
            if orthanc_id in series.instances:
                return series.instances[orthanc_id]
        return None


@dataclass
class UidMaps:
    """Original -> new UIDs of one copy, read back from Orthanc."""

    series: dict[str, str] = field(default_factory=dict)
    frames_of_reference: dict[str, str] = field(default_factory=dict)
    instances: dict[str, str] = field(default_factory=dict)


# --- reading the source study --------------------------------------------------------------------


def orthanc_has_study(client: OrthancClient, orthanc_id: str) -> bool:
    if not orthanc_id:
        return False
    try:
        client.study(orthanc_id)
    except OrthancError as exc:
        if exc.status_code == 404:
            return False
        raise Unavailable(f"Orthanc could not be asked for the de-identified copy: {exc}") from exc
    return True


def read_source(client: OrthancClient, orthanc_id: str) -> Source:
    try:
        study = client.study(orthanc_id)
        series = client.study_series(orthanc_id)
        tags = client.get_json(f"studies/{orthanc_id}/instances-tags", params={"simplify": "true"})
    except OrthancError as exc:
        if exc.status_code == 404:
            raise NotFound("The study is no longer in Orthanc") from exc
        raise Unavailable(f"Orthanc could not be read: {exc}") from exc

    patient_id = study.get("PatientMainDicomTags", {}).get("PatientID", "").strip()
    if not patient_id:
        raise InvalidInput("The study has no Patient ID, so it cannot be given a stable pseudonym")
    # The Basic Profile without the Clean Pixel Data option cannot remove text burned into the
    # pixels, nor faces in a 3D rendering: such instances are refused rather than exported.
    flagged = sum(
        1
        for t in tags.values()
        if str(t.get("BurnedInAnnotation", "")).strip().upper() == "YES"
        or str(t.get("RecognizableVisualFeatures", "")).strip().upper() == "YES"
    )
    if flagged:
        raise InvalidInput(
            f"{flagged} instance(s) declare burned-in annotation or recognisable visual features; "
            "they need pixel cleaning, which this export does not do",
            code="deid_burned_in",
        )

    result = []
    for s in series:
        instances = {
            i: (
                str(tags.get(i, {}).get("SOPInstanceUID", "")),
                str(tags.get(i, {}).get("FrameOfReferenceUID", "")),
            )
            for i in s.get("Instances", [])
        }
        result.append(
            SourceSeries(
                orthanc_id=s["ID"],
                uid=s.get("MainDicomTags", {}).get("SeriesInstanceUID", ""),
                instances=instances,
            )
        )
    return Source(
        study_uid=study.get("MainDicomTags", {}).get("StudyInstanceUID", ""),
        patient_id=patient_id,
        series=result,
    )


# --- Orthanc copies --------------------------------------------------------------------------------


def delete_copies(client: OrthancClient, study_uid: str) -> None:
    for match in client.lookup(study_uid):
        if match.get("Type") == "Study":
            client.delete(f"studies/{match['ID']}")


def verify_copy(
    client: OrthancClient, orthanc_id: str, *, patient: str, study_uid: str, source: Source
) -> None:
    """Check on the stored copy what Orthanc was asked to do (shared tags hold for every instance)."""
    shared = client.get_json(
        f"studies/{check_orthanc_id(orthanc_id)}/shared-tags", params={"simplify": "true"}
    )
    expected = {
        "PatientIdentityRemoved": "YES",
        "PatientID": patient,
        "PatientName": patient,
        "StudyInstanceUID": study_uid,
        "DeidentificationMethod": DEIDENTIFICATION_METHOD,
    }
    wrong = sorted(name for name, value in expected.items() if shared.get(name) != value)
    if wrong:
        raise Unavailable(f"The de-identified copy is wrong in {', '.join(wrong)}", code="deid_failed")
    series = client.study(orthanc_id).get("Series", [])
    if len(series) != len(source.series):
        raise Unavailable(
            f"The de-identified copy has {len(series)} series, the study {len(source.series)}",
            code="deid_failed",
        )


def read_uid_maps(client: OrthancClient, orthanc_id: str, source: Source) -> UidMaps:
    """Pair every instance of the copy with its original (Orthanc's AnonymizedFrom) and collect
    the original -> new UIDs; every original instance must be there exactly once."""
    tags = client.get_json(
        f"studies/{check_orthanc_id(orthanc_id)}/instances-tags", params={"simplify": "true"}
    )
    original_series = {series.orthanc_id: series.uid for series in source.series}
    maps = UidMaps()
    for new_series in client.study_series(orthanc_id):
        new_uid = new_series.get("MainDicomTags", {}).get("SeriesInstanceUID", "")
        origin = new_series.get("AnonymizedFrom") or client.get_json(
            f"series/{check_orthanc_id(new_series['ID'])}/metadata/AnonymizedFrom"
        )
        if origin not in original_series or not new_uid:
            raise Unavailable("Could not pair a series of the copy with its original", code="deid_failed")
        maps.series[original_series[origin]] = new_uid
        for new_instance in client.get_json(f"series/{check_orthanc_id(new_series['ID'])}/instances"):
            original = source.instance(str(new_instance.get("AnonymizedFrom", "")))
            copied = tags.get(new_instance["ID"], {})
            if original is None or not copied.get("SOPInstanceUID"):
                raise Unavailable(
                    "Could not pair an instance of the copy with its original", code="deid_failed"
                )
            sop, frame = original
            maps.instances[sop] = str(copied["SOPInstanceUID"])
            if frame and copied.get("FrameOfReferenceUID"):
                maps.frames_of_reference[frame] = str(copied["FrameOfReferenceUID"])
    if len(maps.instances) != source.instance_count:
        raise Unavailable("Could not read back every instance of the de-identified copy", code="deid_failed")
    return maps
