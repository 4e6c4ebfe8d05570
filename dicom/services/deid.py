"""De-identified copies of studies for teaching and research (DICOM PS3.15 Annex E, Basic Profile).

Orthanc does the de-identification: one ``POST /series/{id}/anonymize`` job per series, with
``DicomVersion`` 2021b (Table E.1-1, Basic Application Level Confidentiality Profile, no
options), private tags removed, dates emptied. Orthanc keeps no identifier map between calls,
so the platform supplies every replacement that must be stable: the patient's pseudonym and the
Study, Series and Frame of Reference UIDs, all recorded per project in ``Pseudonym``. The
jobs run per series because ``Replace`` applies one value to every instance of a job: a
study-level call cannot give each series its own SeriesInstanceUID (with two series it merges
them into one). SOP Instance UIDs are Orthanc's; the mapping is read back from the copy.
docs/deidentification.md lists what is removed, kept and replaced.

Orthanc calls never run inside a database transaction: the export row is claimed in one short
transaction, the copy is made, and the result is recorded in another. Call this from a worker
(it takes as long as Orthanc needs to rewrite the study), not inside ``transaction.atomic``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict, DomainError, InvalidInput, NotFound, Unavailable
from core.models import User
from core.services import audit_record
from dicom.models import DeidExport, DeidExportStatus, Pseudonym, PseudonymKind, Study
from dicom.orthanc_client import (
    ORTHANC_ID_RE,
    OrthancClient,
    OrthancError,
    check_orthanc_id,
    orthanc_client_from_settings,
)
from dicom.services.pseudonyms import patient_issuer, pseudonym_get_or_create

DICOM_VERSION = "2021b"
# PS3.16 CID 7050. Only the profile itself: none of the Annex E options (Retain Longitudinal
# Temporal Information, Patient Characteristics, Device or Institution Identity, UIDs, Safe
# Private; Clean Pixel Data, Clean Descriptors...) is applied.
BASIC_PROFILE_CODE = {
    "CodeValue": "113100",
    "CodingSchemeDesignator": "DCM",
    "CodeMeaning": "Basic Application Confidentiality Profile",
}
# (0012,0063) is LO: at most 64 characters. Orthanc writes its own value only when the request
# changes nothing beyond the profile; ours replaces identifiers, so we state the method.
DEIDENTIFICATION_METHOD = "PS3.15 E.1-1 Basic Profile 2021b (Orthanc); project pseudonyms"
PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ALLOWED_ROLES = (Role.QC_OFFICER, Role.ADMIN)
# One synchronous job rewrites a whole series; large CT series take a while.
ANONYMIZE_TIMEOUT = 600.0
# A running export untouched for this long was abandoned (its worker died): another may take over.
STALE_AFTER = timedelta(minutes=30)


class _TakenOver(Conflict):
    """Another request took the export over (ours looked abandoned) while this one ran."""


@dataclass
class _SourceSeries:
    orthanc_id: str
    uid: str
    # Set only when every instance of the series shares one (the normal case).
    frame_of_reference_uid: str
    sop_by_instance: dict[str, str] = field(default_factory=dict)


@dataclass
class _Source:
    study_uid: str
    patient_id: str
    series: list[_SourceSeries]

    @property
    def instance_count(self) -> int:
        return sum(len(s.sop_by_instance) for s in self.series)


# --- entry point ---------------------------------------------------------------------------------


def study_deidentify(
    *, actor: User, study: Study, project: str, request: HttpRequest | None = None
) -> DeidExport:
    """Make (or return) the de-identified copy of ``study`` for ``project`` in Orthanc.

    QC officers and admins only. Idempotent per (study, project): a finished export whose copy
    is still in Orthanc is returned as it is; if the copy was deleted, or the last attempt
    failed, it is made again with the same pseudonyms and Study/Series UIDs.
    """
    if not actor.is_authenticated or not actor.has_role(*ALLOWED_ROLES):
        raise AccessDenied("Only QC officers and administrators may export de-identified studies")
    if not isinstance(project, str) or not PROJECT_RE.match(project):
        raise InvalidInput(
            "project must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not ORTHANC_ID_RE.match(study.orthanc_id):
        raise InvalidInput("The study has no valid Orthanc id")

    with orthanc_client_from_settings() as client:
        existing = DeidExport.objects.filter(study=study, project=project).first()
        finished = existing if existing is not None and existing.status == DeidExportStatus.DONE else None
        if finished is not None and _orthanc_has_study(client, finished.deid_orthanc_id):
            return finished
        source = _read_source(client, study.orthanc_id)
        export, claimed = _export_claim(study=study, project=project, actor=actor, seen=existing)
        if not claimed:
            return export
        recreated = finished is not None  # its copy was deleted from Orthanc
        try:
            return _export_run(
                client,
                export=export,
                study=study,
                source=source,
                actor=actor,
                recreated=recreated,
                request=request,
            )
        except Exception as exc:
            _export_fail(client, export=export, source=source, actor=actor, exc=exc, request=request)
            if isinstance(exc, OrthancError):
                raise Unavailable(f"De-identification failed in Orthanc: {exc}", code="deid_failed") from exc
            raise


# --- reading the source study --------------------------------------------------------------------


def _orthanc_has_study(client: OrthancClient, orthanc_id: str) -> bool:
    if not orthanc_id:
        return False
    try:
        client.study(orthanc_id)
    except OrthancError as exc:
        if exc.status_code == 404:
            return False
        raise Unavailable(f"Orthanc could not be asked for the de-identified copy: {exc}") from exc
    return True


def _read_source(client: OrthancClient, orthanc_id: str) -> _Source:
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
        instances = {i: str(tags.get(i, {}).get("SOPInstanceUID", "")) for i in s.get("Instances", [])}
        frames = {str(tags.get(i, {}).get("FrameOfReferenceUID", "")) for i in instances}
        result.append(
            _SourceSeries(
                orthanc_id=s["ID"],
                uid=s.get("MainDicomTags", {}).get("SeriesInstanceUID", ""),
                frame_of_reference_uid=frames.pop() if len(frames) == 1 else "",
                sop_by_instance=instances,
            )
        )
    return _Source(
        study_uid=study.get("MainDicomTags", {}).get("StudyInstanceUID", ""),
        patient_id=patient_id,
        series=result,
    )


# --- the export row --------------------------------------------------------------------------------


def _export_claim(
    *, study: Study, project: str, actor: User, seen: DeidExport | None
) -> tuple[DeidExport, bool]:
    """Lock the (study, project) export for this run; (export, False) if nothing is left to do."""
    with transaction.atomic():
        export, created = DeidExport.objects.select_for_update().get_or_create(
            study=study, project=project, defaults={"requested_by": actor}
        )
        if created:
            return export, True
        moved_on = seen is None or export.updated_at != seen.updated_at
        if moved_on and export.status == DeidExportStatus.DONE:
            return export, False  # another request finished it since we looked
        if export.status == DeidExportStatus.RUNNING and (
            moved_on or export.updated_at > timezone.now() - STALE_AFTER
        ):
            raise Conflict("This study is already being de-identified for this project; try again later")
        export.status = DeidExportStatus.RUNNING
        export.requested_by = actor
        export.error = ""
        export.save(update_fields=["status", "requested_by", "error", "updated_at"])
        return export, True


def _export_run(
    client: OrthancClient,
    *,
    export: DeidExport,
    study: Study,
    source: _Source,
    actor: User,
    recreated: bool,
    request: HttpRequest | None,
) -> DeidExport:
    claimed_at = export.updated_at
    project = export.project

    def pseudonym(kind: str, original: str, issuer: str = "") -> str:
        return pseudonym_get_or_create(
            actor=actor,
            project=project,
            kind=kind,
            issuer=issuer,
            original=original,
            patient_id=source.patient_id,
            study=study,
            request=request,
        ).pseudonym

    patient = pseudonym(PseudonymKind.PATIENT, source.patient_id, issuer=patient_issuer(study))
    study_uid = pseudonym(PseudonymKind.UID, source.study_uid)
    # A crashed earlier attempt, or the copy being re-made, would otherwise get a second set of
    # instances under the same Study/Series UIDs.
    _delete_copies(client, study_uid)

    deid_study_id = ""
    instance_uids: dict[str, str] = {}
    for series in source.series:
        replace: dict[str, Any] = {
            "PatientID": patient,
            "PatientName": patient,
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": pseudonym(PseudonymKind.UID, series.uid),
            "DeidentificationMethod": DEIDENTIFICATION_METHOD,
            "DeidentificationMethodCodeSequence": [BASIC_PROFILE_CODE],
        }
        if series.frame_of_reference_uid:
            # Series that share a frame of reference (a localizer and its axials) keep sharing one.
            replace["FrameOfReferenceUID"] = pseudonym(PseudonymKind.UID, series.frame_of_reference_uid)
        body = {
            "DicomVersion": DICOM_VERSION,
            "Replace": replace,
            "KeepPrivateTags": False,
            "Force": True,  # required to replace PatientID and the UIDs
            "Synchronous": True,
        }
        job = client.request(
            "POST", f"series/{series.orthanc_id}/anonymize", json=body, timeout=ANONYMIZE_TIMEOUT
        ).json()
        if job.get("FailedInstancesCount") or job.get("InstancesCount") != len(series.sop_by_instance):
            raise Unavailable(
                f"Orthanc de-identified {job.get('InstancesCount')} of {len(series.sop_by_instance)} "
                f"instances of a series ({job.get('FailedInstancesCount')} failed)",
                code="deid_failed",
            )
        new_series_id = check_orthanc_id(job["ID"])
        parent = client.get_json(f"series/{new_series_id}")["ParentStudy"]
        if deid_study_id and parent != deid_study_id:
            raise Unavailable("Orthanc put the de-identified series in different studies", code="deid_failed")
        deid_study_id = parent
        for instance in client.get_json(f"series/{new_series_id}/instances"):
            original = series.sop_by_instance.get(instance.get("AnonymizedFrom", ""), "")
            if original:
                instance_uids[original] = instance["MainDicomTags"]["SOPInstanceUID"]

    _verify_copy(client, deid_study_id, patient=patient, study_uid=study_uid, source=source)
    if len(instance_uids) != source.instance_count:
        raise Unavailable("Could not read back every instance of the de-identified copy", code="deid_failed")

    with transaction.atomic():
        current = DeidExport.objects.select_for_update().get(pk=export.pk)
        if current.status != DeidExportStatus.RUNNING or current.updated_at != claimed_at:
            raise _TakenOver("Another request took over this export while it ran")
        current.status = DeidExportStatus.DONE
        current.deid_orthanc_id = deid_study_id
        current.deid_study_instance_uid = study_uid
        current.series_count = len(source.series)
        current.instance_count = len(instance_uids)
        current.instance_uids = instance_uids
        current.error = ""
        current.completed_at = timezone.now()
        current.save()
        audit_record(
            actor=actor,
            action="deid_export.create",
            obj=current,
            patient_data=True,
            patient_id=source.patient_id,
            details={
                "project": project,
                "study": study.pk,
                "deid_orthanc_id": deid_study_id,
                "series": current.series_count,
                "instances": current.instance_count,
                "recreated": recreated,
            },
            request=request,
        )
    return current


def _export_fail(
    client: OrthancClient,
    *,
    export: DeidExport,
    source: _Source,
    actor: User,
    exc: Exception,
    request: HttpRequest | None,
) -> None:
    if isinstance(exc, _TakenOver):
        return  # another run owns the export now: leave its row and its copy alone
    if isinstance(exc, DomainError):
        message = exc.message
    elif isinstance(exc, OrthancError):
        message = str(exc)  # method, path, status and Orthanc's generic message: no tag values
    else:
        message = f"internal error ({type(exc).__name__})"
    study_uid = (
        Pseudonym.objects.filter(
            project=export.project, kind=PseudonymKind.UID, issuer="", original=source.study_uid
        )
        .values_list("pseudonym", flat=True)
        .first()
    )
    if study_uid:
        # Never leave half a copy behind; if Orthanc is down, the next attempt deletes it first.
        with contextlib.suppress(OrthancError):
            _delete_copies(client, study_uid)
    with transaction.atomic():
        DeidExport.objects.filter(pk=export.pk).update(
            status=DeidExportStatus.FAILED, error=message, updated_at=timezone.now()
        )
        audit_record(
            actor=actor,
            action="deid_export.fail",
            obj=export,
            patient_data=True,
            patient_id=source.patient_id,
            details={"project": export.project, "study": export.study_id, "error": message},
            request=request,
        )


# --- Orthanc copies --------------------------------------------------------------------------------


def _delete_copies(client: OrthancClient, study_uid: str) -> None:
    for match in client.lookup(study_uid):
        if match.get("Type") == "Study":
            client.delete(f"studies/{match['ID']}")


def _verify_copy(
    client: OrthancClient, orthanc_id: str, *, patient: str, study_uid: str, source: _Source
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
