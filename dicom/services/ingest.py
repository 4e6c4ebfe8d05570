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

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.exceptions import Conflict, InvalidInput
from core.models import User
from core.on_commit import on_commit
from core.services import audit_record
from dicom.choices import IngestStatus, MatchMethod, OrderStatus, QCOutcome
from dicom.models import IngestCursor, Order, Series, Study
from dicom.orthanc_client import OrthancClient, OrthancError, orthanc_client_from_settings
from dicom.services.orders import order_mark_acquired
from fleet.models import Unit

logger = logging.getLogger(__name__)

CURSOR_NAME = "orthanc"
RECONCILE_LOCK = "dicom:reconcile-lock"


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
    series: list[dict[str, Any]] = field(default_factory=list)

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
        last_update=study.get("LastUpdate", ""),
        source_aet=(source_aet or "").strip()[:16],
        anonymized_from=client.metadata("studies", orthanc_id, "AnonymizedFrom"),
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
    stable_time = datetime.fromtimestamp(stable_at, tz=UTC) if stable_at else None
    outcome = _store(info, stable_seq=stable_seq, stable_at=stable_time, source=source)
    if outcome.study is not None and (outcome.created or outcome.changed):
        from dicom.tasks import study_qc_task

        study_id = outcome.study.pk
        on_commit(lambda: study_qc_task.delay(study_id))
    return outcome


def _store(
    info: OrthancStudy, *, stable_seq: int | None, stable_at: datetime | None, source: str
) -> IngestOutcome:
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return _store_locked(info, stable_seq=stable_seq, stable_at=stable_at, source=source)
        except IntegrityError:
            # Another worker (nudge vs reconciler) inserted the same study first: take the
            # update path against its row.
            logger.info("ingest: concurrent insert of study %s; retrying as update", info.orthanc_id)
    raise Conflict(f"study {info.orthanc_id} could not be stored after concurrent inserts")


def _store_locked(
    info: OrthancStudy, *, stable_seq: int | None, stable_at: datetime | None, source: str
) -> IngestOutcome:
    study = Study.objects.select_for_update().filter(study_instance_uid=info.study_uid).first()
    created = study is None
    now = stable_at or timezone.now()
    if study is None:
        order, method = _match_order(info)
        unit = order.unit if order else Unit.objects.filter(ae_title=info.source_aet).first()
        study = Study.objects.create(
            orthanc_id=info.orthanc_id,
            study_instance_uid=info.study_uid,
            order=order,
            hospital=order.hospital if order else None,
            unit=unit,
            ingest_status=IngestStatus.MATCHED if order else IngestStatus.UNMATCHED,
            match_method=method,
            stable_seq=stable_seq,
            stable_at=now,
            **_study_fields(info),
        )
        audit_record(
            actor=None,
            action="study.ingest",
            obj=study,
            patient_data=True,
            patient_id=info.patient_id,
            details={
                "source": source,
                "orthanc_id": info.orthanc_id,
                "matched": method or "unmatched",
                "instances": info.number_of_instances,
            },
        )
        if order is not None:
            order_mark_acquired(order=order)
        changed = False
    else:
        changed = study.orthanc_last_update != info.last_update or study.number_of_instances != (
            info.number_of_instances
        )
        if not changed:
            return IngestOutcome(study=study)
        for name, value in _study_fields(info).items():
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
    return IngestOutcome(study=study, created=created, changed=changed)


def _study_fields(info: OrthancStudy) -> dict[str, Any]:
    return {
        "accession_number": info.accession[:16],
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
            series_instance_uid=s["uid"],
            defaults={
                "study": study,
                "orthanc_id": s["orthanc_id"],
                "series_number": s["number"],
                "modality": s["modality"],
                "body_part": s["body_part"],
                "description": s["description"],
                "number_of_instances": s["number_of_instances"],
            },
        )


# --- reconciliation queue --------------------------------------------------------------------


@transaction.atomic
def study_link_order(*, actor: User, study: Study, order: Order, request=None) -> Study:
    """A QC officer resolves an unmatched study by linking it to its order."""
    if not actor.has_role("qc_officer", "admin"):
        from core.exceptions import AccessDenied

        raise AccessDenied("Only QC officers and admins resolve the reconciliation queue")
    if order.status == OrderStatus.CANCELLED:
        raise InvalidInput(f"Order {order.accession_number} is cancelled")
    if Study.objects.filter(order=order).exists():
        raise Conflict(f"Order {order.accession_number} is already linked to a study")
    updated = Study.objects.filter(
        pk=study.pk, ingest_status=IngestStatus.UNMATCHED, order__isnull=True
    ).update(
        order=order,
        hospital=order.hospital,
        unit=order.unit,
        ingest_status=IngestStatus.MATCHED,
        match_method=MatchMethod.MANUAL,
        qc_outcome=QCOutcome.PENDING,
        routable_at=None,
        updated_at=timezone.now(),
    )
    if not updated:
        raise Conflict("This study is no longer in the reconciliation queue")
    study.refresh_from_db()
    audit_record(
        actor=actor,
        action="study.link_order",
        obj=study,
        patient_data=True,
        patient_id=study.patient_id,
        details={"order": order.pk, "accession": order.accession_number},
        request=request,
    )
    order_mark_acquired(order=order)
    from dicom.tasks import study_qc_task

    on_commit(lambda: study_qc_task.delay(study.pk))
    return study


# --- reconciler over /changes ----------------------------------------------------------------


@dataclass
class ReconcileResult:
    start_seq: int
    end_seq: int
    stable_seen: int = 0
    ingested: int = 0
    skipped_locked: bool = False
    errors: list[str] = field(default_factory=list)


def reconcile_changes(*, page_size: int = 500, max_pages: int = 100) -> ReconcileResult:
    """Walk Orthanc's /changes from the stored cursor and ingest every stable study seen.

    One reconciler at a time (a cache lock); the cursor only moves forward, and only past a
    page whose studies were all ingested, so a crash replays rather than skips.
    """
    cursor, _ = IngestCursor.objects.get_or_create(name=CURSOR_NAME)
    result = ReconcileResult(start_seq=cursor.last_seq, end_seq=cursor.last_seq)
    if not cache.add(RECONCILE_LOCK, "1", timeout=300):
        result.skipped_locked = True
        return result
    try:
        client = orthanc_client_from_settings()
        since = cursor.last_seq
        for _page in range(max_pages):
            page = client.changes(since=since, limit=page_size)
            for change in page.get("Changes", []):
                if change.get("ChangeType") != "StableStudy":
                    continue
                result.stable_seen += 1
                outcome = study_ingest(
                    orthanc_id=change["ID"], stable_seq=change.get("Seq"), source="reconciler"
                )
                if outcome.created or outcome.changed:
                    result.ingested += 1
            last = int(page.get("Last", since))
            if last > since:
                IngestCursor.objects.filter(name=CURSOR_NAME, last_seq__lt=last).update(
                    last_seq=last, updated_at=timezone.now()
                )
                since = last
            result.end_seq = since
            if page.get("Done", True):
                break
    finally:
        cache.delete(RECONCILE_LOCK)
    return result
