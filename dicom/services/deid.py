"""De-identified copies of studies for teaching and research (DICOM PS3.15 Annex E, Basic Profile).

Orthanc does the de-identification in one ``POST /studies/{id}/anonymize`` job, with
``DicomVersion`` 2021b (Table E.1-1, Basic Application Level Confidentiality Profile, no
options), private tags removed, dates emptied. One job for the whole study because Orthanc maps
UIDs consistently only within a job: the new Series, SOP Instance and Frame of Reference UIDs
it generates are also written into every reference to them (a dose SR's or a localizer's
ReferencedSOPInstanceUID, nested sequences included), so references still resolve in the copy;
separate per-series jobs would break them. The platform supplies what must be stable across
copies: the patient's pseudonym and the Study Instance UID, recorded per project in
``Pseudonym``. The original -> new Series, Frame of Reference and SOP Instance UID maps are read
back from the copy and kept on the export. docs/deidentification.md lists what is removed,
kept and replaced.

Orthanc calls never run inside a database transaction: the export row is claimed in one short
transaction, the copy is made, and the result is recorded in another. Call this from a worker
(it takes as long as Orthanc needs to rewrite the study), not inside ``transaction.atomic``.
"""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta

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
from dicom.services.deid_orthanc import (
    DEIDENTIFICATION_METHOD,
    Source,
    delete_copies,
    orthanc_has_study,
    read_source,
    read_uid_maps,
    verify_copy,
)
from dicom.services.pseudonyms import patient_issuer, pseudonym_get_or_create
from dicom.study_access import study_visible_to

DICOM_VERSION = "2021b"
# PS3.16 CID 7050. Only the profile itself: none of the Annex E options (Retain Longitudinal
# Temporal Information, Patient Characteristics, Device or Institution Identity, UIDs, Safe
# Private; Clean Pixel Data, Clean Descriptors...) is applied.
BASIC_PROFILE_CODE = {
    "CodeValue": "113100",
    "CodingSchemeDesignator": "DCM",
    "CodeMeaning": "Basic Application Confidentiality Profile",
}
PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ALLOWED_ROLES = (Role.QC_OFFICER, Role.ADMIN)
# One synchronous job rewrites the whole study; large CT studies take a while.
ANONYMIZE_TIMEOUT = 600.0
# A running export untouched for this long was abandoned (its worker died): another may take over.
STALE_AFTER = timedelta(minutes=30)


class _TakenOver(Conflict):
    """Another request took the export over (ours looked abandoned) while this one ran."""


# --- entry point ---------------------------------------------------------------------------------


def study_deidentify(
    *,
    actor: User,
    study: Study,
    project: str,
    request: HttpRequest | None = None,
    record_refusal: bool = False,
) -> DeidExport:
    """Make (or return) the de-identified copy of ``study`` for ``project`` in Orthanc.

    QC officers and admins only. Idempotent per (study, project): a finished export whose copy
    is still in Orthanc is returned as it is; if the copy was deleted, or the last attempt
    failed, it is made again with the same patient pseudonym and Study Instance UID.

    A study that cannot be exported (gone from Orthanc, no Patient ID, burned-in annotation)
    raises before any export row exists; with ``record_refusal`` (the background task, whose
    caller only sees the export list) the refusal is also recorded as a failed export.
    """
    if not actor.is_authenticated or not actor.has_role(*ALLOWED_ROLES):
        raise AccessDenied("Only QC officers and administrators may export de-identified studies")
    if not study_visible_to(actor, study):
        # The API checks this first; the task and ``manage.py deidentify --as`` come here directly.
        raise NotFound("No study matches the given id")
    if not isinstance(project, str) or not PROJECT_RE.match(project):
        raise InvalidInput(
            "project must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not ORTHANC_ID_RE.match(study.orthanc_id):
        raise InvalidInput("The study has no valid Orthanc id")

    with orthanc_client_from_settings() as client:
        existing = DeidExport.objects.filter(study=study, project=project).first()
        finished = existing if existing is not None and existing.status == DeidExportStatus.DONE else None
        if finished is not None and orthanc_has_study(client, finished.deid_orthanc_id):
            return finished
        try:
            source = read_source(client, study.orthanc_id)
        except DomainError as exc:
            if record_refusal:
                _export_refused(
                    study=study, project=project, actor=actor, message=exc.message, request=request
                )
            raise
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


# --- the export row --------------------------------------------------------------------------------


def _export_refused(
    *, study: Study, project: str, actor: User, message: str, request: HttpRequest | None
) -> None:
    """Record a refusal as a failed export (a running or finished one is left alone)."""
    with transaction.atomic():
        export, created = DeidExport.objects.select_for_update().get_or_create(
            study=study,
            project=project,
            defaults={"requested_by": actor, "status": DeidExportStatus.FAILED, "error": message},
        )
        if not created:
            if export.status != DeidExportStatus.FAILED:
                return
            export.requested_by, export.error = actor, message
            export.save(update_fields=["requested_by", "error", "updated_at"])
        audit_record(
            actor=actor,
            action="deid_export.fail",
            obj=export,
            patient_data=True,
            patient_id=study.patient_id,
            details={"project": project, "study": study.pk, "error": message},
            request=request,
        )


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
    source: Source,
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
    # instances under the same Study Instance UID.
    delete_copies(client, study_uid)

    body = {
        "DicomVersion": DICOM_VERSION,
        "Replace": {
            "PatientID": patient,
            "PatientName": patient,
            "StudyInstanceUID": study_uid,
            "DeidentificationMethod": DEIDENTIFICATION_METHOD,
            "DeidentificationMethodCodeSequence": [BASIC_PROFILE_CODE],
        },
        "KeepPrivateTags": False,
        "Force": True,  # required to replace PatientID and the Study Instance UID
        "Synchronous": True,
    }
    job = client.request(
        "POST",
        f"studies/{check_orthanc_id(study.orthanc_id)}/anonymize",
        json=body,
        timeout=ANONYMIZE_TIMEOUT,
    ).json()
    if job.get("FailedInstancesCount") or job.get("InstancesCount") != source.instance_count:
        raise Unavailable(
            f"Orthanc de-identified {job.get('InstancesCount')} of {source.instance_count} instances "
            f"({job.get('FailedInstancesCount')} failed)",
            code="deid_failed",
        )
    deid_study_id = check_orthanc_id(job["ID"])
    verify_copy(client, deid_study_id, patient=patient, study_uid=study_uid, source=source)
    maps = read_uid_maps(client, deid_study_id, source)

    with transaction.atomic():
        current = DeidExport.objects.select_for_update().get(pk=export.pk)
        if current.status != DeidExportStatus.RUNNING or current.updated_at != claimed_at:
            raise _TakenOver("Another request took over this export while it ran")
        current.status = DeidExportStatus.DONE
        current.deid_orthanc_id = deid_study_id
        current.deid_study_instance_uid = study_uid
        current.series_count = len(source.series)
        current.instance_count = len(maps.instances)
        current.instance_uids = maps.instances
        current.series_uids = maps.series
        current.frame_of_reference_uids = maps.frames_of_reference
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
    source: Source,
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
            delete_copies(client, study_uid)
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
