"""Ingest: mirror a stable Orthanc study, match it to its order, run QC, make it routable.

Two paths lead here and both are idempotent: the Orthanc plugin's STABLE_STUDY nudge (a Celery
task per study) and the reconciler that walks Orthanc's /changes from a stored cursor, so a
study that became stable while the platform was down is still ingested. A study is keyed by
its Study Instance UID; a second pass over the same study updates it (late series) and never
duplicates it. A study that matches no order is kept in the reconciliation queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.exceptions import Conflict
from core.on_commit import on_commit
from core.services import audit_record
from dicom.choices import IngestStatus, MatchMethod, OrderStatus, QCOutcome
from dicom.models import Order, Series, Study
from dicom.orthanc_client import OrthancClient, OrthancError, orthanc_client_from_settings
from dicom.own_objects import is_own_series
from dicom.services.orders import order_mark_acquired
from fleet.models import Unit

logger = logging.getLogger(__name__)


# --- reading Orthanc -------------------------------------------------------------------------


def _dicom_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _dicom_time(value: str | None) -> time | None:
    if not value:
        return None
    digits = value.strip().split(".")[0]
    try:
        return datetime.strptime(digits[:6].ljust(6, "0"), "%H%M%S").time()
    except ValueError:
        return None


@dataclass
class OrthancStudy:
    """What Orthanc says of one study, read once per ingest."""

    orthanc_id: str
    study_uid: str
    accession: str
    patient_id: str
    patient_name: str
    patient_sex: str
    patient_birth_date: date | None
    study_date: date | None
    study_time: time | None
    description: str
    last_update: str
    source_aet: str
    # Set on copies Orthanc made by anonymisation (teaching/research exports): not clinical.
    anonymized_from: str | None
    series: list[dict[str, Any]] = field(default_factory=list)  # acquired series only
    own_series: int = 0  # series the platform stored itself (dicom.own_objects), left out

    @property
    def modalities(self) -> list[str]:
        return sorted({s["modality"] for s in self.series if s["modality"]})

    @property
    def number_of_instances(self) -> int:
        return sum(s["number_of_instances"] for s in self.series)

    @property
    def body_part(self) -> str:
        parts = [s["body_part"] for s in self.series if s["body_part"] and s["modality"] != "SR"]
        return parts[0] if parts else ""


def read_orthanc_study(client: OrthancClient, orthanc_id: str) -> OrthancStudy | None:
    """The study as Orthanc has it now, or None if Orthanc no longer has it."""
    try:
        study = client.study(orthanc_id)
        series = client.study_series(orthanc_id)
    except OrthancError as exc:
        if exc.status_code == 404:
            return None
        raise
    tags = study.get("MainDicomTags", {})
    patient = study.get("PatientMainDicomTags", {})
    # The platform's own objects (a report PDF stored back) are not part of the acquisition:
    # they change neither modalities nor counts, and storing one is no change that re-runs QC.
    own = [s for s in series if is_own_series(s.get("MainDicomTags", {}))]
    series = [s for s in series if not is_own_series(s.get("MainDicomTags", {}))]
    last_update = study.get("LastUpdate", "")
    if own:
        # Orthanc stamps a study's LastUpdate when anything arrives; its acquired series' own
        # stamps (equal to the study's when no own object followed) say when the images changed.
        last_update = max((s.get("LastUpdate") or "" for s in series), default="") or last_update
    first_instance = next((s["Instances"][0] for s in series if s.get("Instances")), None)
    source_aet = client.metadata("instances", first_instance, "RemoteAET") if first_instance else None
    return OrthancStudy(
        orthanc_id=orthanc_id,
        study_uid=tags.get("StudyInstanceUID", ""),
        accession=tags.get("AccessionNumber", "").strip(),
        patient_id=patient.get("PatientID", "").strip(),
        patient_name=patient.get("PatientName", "").strip(),
        patient_sex=patient.get("PatientSex", "").strip()[:1],
        patient_birth_date=_dicom_date(patient.get("PatientBirthDate")),
        study_date=_dicom_date(tags.get("StudyDate")),
        study_time=_dicom_time(tags.get("StudyTime")),
        description=tags.get("StudyDescription", "")[:128],
        last_update=last_update,
        source_aet=(source_aet or "").strip()[:16],
        anonymized_from=client.metadata("studies", orthanc_id, "AnonymizedFrom"),
        own_series=len(own),
        series=[
            {
                "orthanc_id": s["ID"],
                "uid": s.get("MainDicomTags", {}).get("SeriesInstanceUID", ""),
                "number": _int_or_none(s.get("MainDicomTags", {}).get("SeriesNumber")),
                "modality": s.get("MainDicomTags", {}).get("Modality", "").strip(),
                "body_part": s.get("MainDicomTags", {}).get("BodyPartExamined", "").strip().upper()[:16],
                "description": s.get("MainDicomTags", {}).get("SeriesDescription", "")[:128],
                "number_of_instances": len(s.get("Instances", [])),
            }
            for s in series
        ],
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# --- matching --------------------------------------------------------------------------------


def _match_order(info: OrthancStudy) -> tuple[Order | None, str]:
    """The order this study fulfils, and how it was found."""
    free = Order.objects.filter(study__isnull=True).exclude(status=OrderStatus.CANCELLED)
    if info.accession:
        order = free.filter(accession_number=info.accession).first()
        if order is not None:
            return order, MatchMethod.ACCESSION
    if info.patient_id and info.study_date and info.modalities:
        # Fallback for scanners that dropped the accession: QC flags studies matched this way.
        candidates = list(
            free.filter(
                patient_id=info.patient_id, scheduled_date=info.study_date, modality__in=info.modalities
            )[:2]
        )
        if len(candidates) == 1:
            return candidates[0], MatchMethod.FALLBACK
    return None, ""


# --- the ingest service ----------------------------------------------------------------------


@dataclass
class IngestOutcome:
    study: Study | None
    created: bool = False
    changed: bool = False  # new instances since the last pass (QC must run again)


def study_ingest(
    *, orthanc_id: str, stable_seq: int | None = None, stable_at: float | None = None, source: str = "nudge"
) -> IngestOutcome:
    """Mirror one stable study; then (after commit) run QC when it is new or changed.

    ``stable_at`` is when Orthanc declared the study stable (the plugin's timestamp); the
    reconciler does not know it and the ingest time stands in.
    """
    client = orthanc_client_from_settings()
    info = read_orthanc_study(client, orthanc_id)
    if info is None:
        logger.info("ingest: Orthanc study %s is gone; nothing to do", orthanc_id)
        return IngestOutcome(study=None)
    if not info.study_uid:
        logger.warning("ingest: Orthanc study %s has no StudyInstanceUID; skipped", orthanc_id)
        return IngestOutcome(study=None)
    if info.anonymized_from:
        logger.info("ingest: Orthanc study %s is a de-identified export; not a clinical study", orthanc_id)
        return IngestOutcome(study=None)
    if not info.series and info.own_series:
        logger.info("ingest: Orthanc study %s holds only the platform's own objects; skipped", orthanc_id)
        return IngestOutcome(study=None)
    stable_time = datetime.fromtimestamp(stable_at, tz=UTC) if stable_at else None
    outcome = _store(info, client=client, stable_seq=stable_seq, stable_at=stable_time, source=source)
    if (
        outcome.study is not None
        and (outcome.created or outcome.changed)
        and outcome.study.ingest_status != IngestStatus.UID_CONFLICT
    ):
        from dicom.tasks import study_qc_task

        study_id = outcome.study.pk
        on_commit(lambda: study_qc_task.delay(study_id))
    return outcome


def _store(
    info: OrthancStudy,
    *,
    client: OrthancClient,
    stable_seq: int | None,
    stable_at: datetime | None,
    source: str,
) -> IngestOutcome:
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return _store_locked(
                    info, client=client, stable_seq=stable_seq, stable_at=stable_at, source=source
                )
        except IntegrityError:
            # Another worker (nudge vs reconciler) inserted the same study first: take the
            # update path against its row.
            logger.info("ingest: concurrent insert of study %s; retrying as update", info.orthanc_id)
    raise Conflict(f"study {info.orthanc_id} could not be stored after concurrent inserts")


def _mirror_row(info: OrthancStudy, client: OrthancClient) -> tuple[Study | None, Study | None]:
    """The row mirroring this Orthanc study (locked), or else (None, the study holding its UID
    under another patient ID if Orthanc still has that one)."""
    study = Study.objects.select_for_update().filter(orthanc_id=info.orthanc_id).first()
    if study is not None:
        return study, None
    holder = (
        Study.objects.select_for_update()
        .filter(study_instance_uid=info.study_uid, uid_conflict_with__isnull=True)
        .first()
    )
    if holder is None or read_orthanc_study(client, holder.orthanc_id) is None:
        # No row, or Orthanc re-made the study under a new id (the old one is gone): take it over.
        return holder, None
    return None, holder


def _store_new(
    info: OrthancStudy, *, holder: Study | None, stable_seq: int | None, stable_at: datetime, source: str
) -> IngestOutcome:
    """Mirror a study seen for the first time: matched to its order, or unmatched, or (``holder``:
    its UID is already held under another patient ID) kept beside that one in the queue."""
    order, method = _match_order(info) if holder is None else (None, "")
    if holder is not None:
        status = IngestStatus.UID_CONFLICT
    else:
        status = IngestStatus.MATCHED if order else IngestStatus.UNMATCHED
    study = Study.objects.create(
        orthanc_id=info.orthanc_id,
        study_instance_uid=info.study_uid,
        uid_conflict_with=holder,
        order=order,
        hospital=order.hospital if order else None,
        unit=order.unit if order else Unit.objects.filter(ae_title=info.source_aet).first(),
        ingest_status=status,
        match_method=method,
        stable_seq=stable_seq,
        stable_at=stable_at,
        **_study_fields(info, order),
    )
    details: dict[str, Any] = {
        "source": source,
        "orthanc_id": info.orthanc_id,
        "instances": info.number_of_instances,
    }
    if holder is None:
        details["matched"] = method or "unmatched"
    else:
        details.update(conflicts_with=holder.pk, conflicts_with_orthanc_id=holder.orthanc_id)
        logger.warning(
            "ingest: Orthanc study %s reuses StudyInstanceUID of study %s under another patient ID; "
            "kept in the reconciliation queue",
            info.orthanc_id,
            holder.pk,
        )
    audit_record(
        actor=None,
        action="study.ingest" if holder is None else "study.uid_conflict",
        obj=study,
        patient_data=True,
        patient_id=info.patient_id,
        details=details,
    )
    if order is not None:
        order_mark_acquired(order=order)
    _sync_series(study, info)
    return IngestOutcome(study=study, created=True)


def _store_locked(
    info: OrthancStudy,
    *,
    client: OrthancClient,
    stable_seq: int | None,
    stable_at: datetime | None,
    source: str,
) -> IngestOutcome:
    study, holder = _mirror_row(info, client)
    now = stable_at or timezone.now()
    if study is None:
        return _store_new(info, holder=holder, stable_seq=stable_seq, stable_at=now, source=source)
    changed = study.orthanc_last_update != info.last_update or study.number_of_instances != (
        info.number_of_instances
    )
    if not changed:
        return IngestOutcome(study=study)
    for name, value in _study_fields(info, study.order if study.order_id else None).items():
        setattr(study, name, value)
    study.orthanc_id = info.orthanc_id
    study.stable_seq = stable_seq if stable_seq is not None else study.stable_seq
    study.stable_at = now
    study.qc_outcome = QCOutcome.PENDING
    study.routable_at = None
    study.save()
    audit_record(
        actor=None,
        action="study.update",
        obj=study,
        patient_data=True,
        patient_id=info.patient_id,
        details={"source": source, "instances": info.number_of_instances},
    )
    _sync_series(study, info)
    return IngestOutcome(study=study, changed=True)


def _study_fields(info: OrthancStudy, order: Order | None) -> dict[str, Any]:
    # The order's accession wins: the hospital files the report under the accession it placed,
    # whatever the scanner wrote (nothing, or a typo). The images in Orthanc keep the scanner's.
    return {
        "accession_number": order.accession_number if order is not None else info.accession[:16],
        "source_accession_number": info.accession[:16],
        "patient_id": info.patient_id[:64],
        "patient_name": info.patient_name[:128],
        "patient_sex": info.patient_sex,
        "patient_birth_date": info.patient_birth_date,
        "study_date": info.study_date,
        "study_time": info.study_time,
        "description": info.description,
        "modalities": "\\".join(info.modalities)[:64],
        "body_part": info.body_part,
        "source_aet": info.source_aet,
        "number_of_series": len(info.series),
        "number_of_instances": info.number_of_instances,
        "orthanc_last_update": info.last_update,
    }


def _sync_series(study: Study, info: OrthancStudy) -> None:
    for s in info.series:
        if not s["uid"]:
            continue
        Series.objects.update_or_create(
            study=study,
            series_instance_uid=s["uid"],
            defaults={
                "orthanc_id": s["orthanc_id"],
                "series_number": s["number"],
                "modality": s["modality"],
                "body_part": s["body_part"],
                "description": s["description"],
                "number_of_instances": s["number_of_instances"],
            },
        )
