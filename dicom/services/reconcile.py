"""The two ways a study that matched nothing (or clashed) is not lost: the QC officer's
reconciliation queue, and the reconciler that walks Orthanc's /changes so a study that became
stable while the platform was down is still ingested."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import User
from core.on_commit import on_commit
from core.services import audit_record
from dicom.choices import IngestStatus, MatchMethod, OrderStatus, QCOutcome
from dicom.models import IngestCursor, Order, Study
from dicom.orthanc_client import orthanc_client_from_settings
from dicom.services.ingest import study_ingest
from dicom.services.orders import order_mark_acquired
from dicom.services.receiving import (
    receiving_done,
    receiving_follow,
    receiving_ingest_quiet,
    recovery_scan,
    recovery_scan_due,
)

CURSOR_NAME = "orthanc"
RECONCILE_LOCK = "dicom:reconcile-lock"
# Changes that say a study is receiving images (NewInstance is read through LastUpdate instead).
RECEIVING_CHANGES = frozenset({"NewStudy", "NewSeries"})


# --- reconciliation queue --------------------------------------------------------------------


@transaction.atomic
def study_link_order(*, actor: User, study: Study, order: Order, request=None) -> Study:
    """A QC officer resolves an unmatched study by linking it to its order."""
    if not actor.has_role("qc_officer", "admin"):
        raise AccessDenied("Only QC officers and admins resolve the reconciliation queue")
    if order.status == OrderStatus.CANCELLED:
        raise InvalidInput(f"Order {order.accession_number} is cancelled")
    if study.ingest_status == IngestStatus.UID_CONFLICT:
        raise Conflict(
            f"Study {study.pk} reuses the Study Instance UID of study {study.uid_conflict_with_id}, "
            "which Orthanc holds under another patient ID; nothing was linked. Correct the patient "
            "in Orthanc (or delete the wrong copy there) and the reconciler takes the result up",
            code="study_uid_conflict",
        )
    if Study.objects.filter(order=order).exists():
        raise Conflict(f"Order {order.accession_number} is already linked to a study")
    updated = Study.objects.filter(
        pk=study.pk, ingest_status=IngestStatus.UNMATCHED, order__isnull=True
    ).update(
        order=order,
        hospital=order.hospital,
        unit=order.unit,
        # The order's accession wins; the scanner's stays in source_accession_number.
        accession_number=order.accession_number,
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
        details={
            "order": order.pk,
            "accession": order.accession_number,
            "source_accession": study.source_accession_number,
        },
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
    # Studies ingested (or updated) by the quiet-for-StableAge rule, with no StableStudy.
    recovered: int = 0
    # Studies the recovery scan found in Orthanc but not (or not as now) in the platform.
    scan_found: int | None = None
    skipped_locked: bool = False
    errors: list[str] = field(default_factory=list)


def reconcile_changes(
    *,
    page_size: int = 500,
    max_pages: int = 100,
    now: datetime | None = None,
    scan: bool | None = None,
) -> ReconcileResult:
    """Walk Orthanc's /changes from the stored cursor and ingest every stable study seen.

    Besides ``StableStudy``, it follows ``NewStudy``/``NewSeries`` and ingests a study quiet for
    StableAge even if Orthanc never announces it (a restart forgets unstable studies); every
    ``RECONCILE_RECOVERY_INTERVAL`` seconds (``scan``: True always, False never) it also compares
    Orthanc's recent studies with the mirror (dicom/services/receiving.py). ``now`` is for tests.

    One reconciler at a time (a cache lock); the cursor only moves forward, and only past a
    page whose studies were all ingested or remembered, so a crash replays rather than skips.
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
                if change.get("ChangeType") in RECEIVING_CHANGES:
                    receiving_follow(client, change)
                    continue
                if change.get("ChangeType") != "StableStudy":
                    continue
                result.stable_seen += 1
                outcome = study_ingest(
                    orthanc_id=change["ID"], stable_seq=change.get("Seq"), source="reconciler"
                )
                receiving_done(change["ID"])
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
        if scan or (scan is None and recovery_scan_due()):
            result.scan_found = recovery_scan(client=client, now=now)
        result.recovered = receiving_ingest_quiet(client=client, now=now).recovered
    finally:
        cache.delete(RECONCILE_LOCK)
    return result
