"""Studies Orthanc is receiving, and the quiet-for-StableAge rule that ingests them even when
Orthanc never says they are stable.

Orthanc announces ``StableStudy`` only from memory: a study still receiving (or not yet
``ORTHANC_STABLE_AGE`` seconds quiet) when Orthanc stops or crashes is never announced after
the restart, although Orthanc holds every instance. So the reconciler also follows the
``NewStudy``/``NewSeries`` changes, remembers each such study as a ``ReceivingStudy``, and treats
one with no new instance for StableAge as stable itself: it is ingested through the same
idempotent ``study_ingest`` a ``StableStudy`` leads to, so a later ``StableStudy`` finds it
unchanged, and instances arriving after that are today's late-series path.

``NewInstance`` changes are not resolved one by one (a request per image): Orthanc moves the
study's ``LastUpdate`` with every instance it stores, and that is read before a study is
declared quiet, so the rule waits for the last instance whatever changes were seen.

A change log that lost the pre-crash changes (a damaged or replaced index) is covered by the
recovery scan: every ``RECONCILE_RECOVERY_INTERVAL`` seconds, Orthanc's studies of the last
``RECONCILE_RECOVERY_DAYS`` study dates (``/tools/find``, paginated, bounded) are compared with
the mirrored studies; one unknown to the platform, or with another ``LastUpdate``, becomes a
``ReceivingStudy`` and the quiet rule takes it from there.

Logs name Orthanc ids only, never tags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from dicom.models import ReceivingStudy, Study
from dicom.orthanc_client import OrthancClient, OrthancError
from dicom.services.ingest import study_ingest

logger = logging.getLogger(__name__)

RECOVERY_SCAN_KEY = "dicom:reconcile-recovery-scan"
# An Orthanc study the quiet rule has settled (ingested, unchanged, or no clinical study: a
# de-identified copy, only the platform's own objects), remembered with the LastUpdate it had,
# so the recovery scan does not bring it back each time when the mirror's stamp differs. Only
# the scan reads it: changes seen in /changes are always checked against Orthanc.
SETTLED_KEY = "dicom:reconcile-settled:{}"
QUIET_BATCH = 200
SCAN_PAGE = 100
SCAN_MAX_PAGES = 20


def orthanc_time(value: str | None) -> datetime | None:
    """Orthanc's ``20261208T024607`` (change Date, LastUpdate; Orthanc writes both in UTC)."""
    if not value:
        return None
    try:
        return datetime.strptime(value.strip()[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def stable_age() -> timedelta:
    return timedelta(seconds=settings.ORTHANC_STABLE_AGE)


def receiving_note(*, orthanc_id: str, at: datetime | None, seq: int = 0) -> None:
    """Remember that Orthanc received something for this study at ``at`` (never moves back)."""
    at = at or timezone.now()
    row, created = ReceivingStudy.objects.get_or_create(
        orthanc_id=orthanc_id, defaults={"last_instance_at": at, "last_seq": seq}
    )
    if not created and (at > row.last_instance_at or seq > row.last_seq):
        ReceivingStudy.objects.filter(pk=row.pk).update(
            last_instance_at=max(at, row.last_instance_at), last_seq=max(seq, row.last_seq)
        )


def receiving_follow(client: OrthancClient, change: dict[str, Any]) -> None:
    """Follow one ``NewStudy``/``NewSeries`` change of the log (others are ignored here)."""
    kind = change.get("ChangeType")
    at = orthanc_time(change.get("Date"))
    seq = int(change.get("Seq") or 0)
    if kind == "NewStudy":
        receiving_note(orthanc_id=change["ID"], at=at, seq=seq)
    elif kind == "NewSeries":
        # A new series may be a late series of a study already mirrored: follow its study.
        try:
            parent = client.get_json(f"series/{change['ID']}").get("ParentStudy")
        except OrthancError as exc:
            if exc.status_code == 404:
                return  # deleted since; nothing to follow
            raise
        if parent:
            receiving_note(orthanc_id=parent, at=at, seq=seq)


def receiving_done(orthanc_id: str) -> None:
    """Orthanc said the study is stable and it was ingested: stop watching it."""
    ReceivingStudy.objects.filter(orthanc_id=orthanc_id).delete()


@dataclass
class QuietResult:
    checked: int = 0
    recovered: int = 0
    still_receiving: int = 0
    gone: int = 0


def receiving_ingest_quiet(
    *, client: OrthancClient, now: datetime | None = None, limit: int = QUIET_BATCH
) -> QuietResult:
    """Ingest every watched study with no new instance for StableAge, as a StableStudy would."""
    now = now or timezone.now()
    horizon = now - stable_age()
    result = QuietResult()
    due = list(
        ReceivingStudy.objects.filter(last_instance_at__lte=horizon).order_by("last_instance_at")[:limit]
    )
    for row in due:
        result.checked += 1
        try:
            study = client.study(row.orthanc_id)
        except OrthancError as exc:
            if exc.status_code != 404:
                raise
            result.gone += 1
            row.delete()
            continue
        last_update = study.get("LastUpdate", "")
        last = orthanc_time(last_update)
        if last is not None and last > horizon:
            # Instances arrived after the change we saw (NewInstance is not followed one by one).
            result.still_receiving += 1
            ReceivingStudy.objects.filter(pk=row.pk).update(last_instance_at=last)
            continue
        mirrored = Study.objects.filter(orthanc_id=row.orthanc_id, orthanc_last_update=last_update).exists()
        if not mirrored:
            outcome = study_ingest(orthanc_id=row.orthanc_id, source="reconciler-quiet")
            cache.set(SETTLED_KEY.format(row.orthanc_id), last_update, timeout=_recovery_window_seconds())
            if outcome.study is not None and (outcome.created or outcome.changed):
                result.recovered += 1
                logger.warning(
                    "reconcile: Orthanc study %s quiet for %d s without StableStudy; %s as stable "
                    "(study %s, %d instances)",
                    row.orthanc_id,
                    settings.ORTHANC_STABLE_AGE,
                    "ingested" if outcome.created else "updated",
                    outcome.study.pk,
                    outcome.study.number_of_instances,
                )
        row.delete()
    return result


def _recovery_window_seconds() -> int:
    return settings.RECONCILE_RECOVERY_DAYS * 86400


def recovery_scan(
    *,
    client: OrthancClient,
    now: datetime | None = None,
    page_size: int = SCAN_PAGE,
    max_pages: int = SCAN_MAX_PAGES,
) -> int:
    """Compare Orthanc's recent studies with the mirrored ones; watch those the platform lacks.

    Recent = a StudyDate within the last ``RECONCILE_RECOVERY_DAYS`` days (Orthanc 1.10's
    ``/tools/find`` cannot filter on LastUpdate); at most ``max_pages`` pages of ``page_size``.
    Returns how many studies it started to watch.
    """
    now = now or timezone.now()
    first_day = timezone.localdate(now) - timedelta(days=settings.RECONCILE_RECOVERY_DAYS)
    found = 0
    for page in range(max_pages):
        answers = client.post_json(
            "tools/find",
            {
                "Level": "Study",
                "Query": {"StudyDate": f"{first_day:%Y%m%d}-"},
                "Expand": True,
                "Since": page * page_size,
                "Limit": page_size,
            },
        )
        if not answers:
            break
        last_updates = {a["ID"]: a.get("LastUpdate", "") for a in answers}
        known = dict(
            Study.objects.filter(orthanc_id__in=last_updates).values_list("orthanc_id", "orthanc_last_update")
        )
        watched = set(
            ReceivingStudy.objects.filter(orthanc_id__in=last_updates).values_list("orthanc_id", flat=True)
        )
        for orthanc_id, last_update in last_updates.items():
            if known.get(orthanc_id) == last_update or orthanc_id in watched:
                continue
            if cache.get(SETTLED_KEY.format(orthanc_id)) == last_update:
                continue
            receiving_note(orthanc_id=orthanc_id, at=orthanc_time(last_update))
            found += 1
            logger.warning(
                "reconcile: recovery scan found Orthanc study %s %s the platform; watching it",
                orthanc_id,
                "changed since its last ingest by" if orthanc_id in known else "unknown to",
            )
        if len(answers) < page_size:
            break
    return found


def recovery_scan_due() -> bool:
    """At most one recovery scan per RECONCILE_RECOVERY_INTERVAL (across reconcilers)."""
    return bool(cache.add(RECOVERY_SCAN_KEY, "1", timeout=settings.RECONCILE_RECOVERY_INTERVAL))
