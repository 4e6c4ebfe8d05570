"""Reads: studies stuck between ingest and a reading task (QC pending, or routable but unrouted)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from dicom.choices import IngestStatus, QCOutcome
from dicom.models import Study


def _cutoff(now: datetime | None) -> datetime:
    return (now or timezone.now()) - timedelta(minutes=settings.STALLED_STUDY_MINUTES)


def _qc_pending(cutoff: datetime) -> Q:
    # Mirrored (or changed by a late series, which resets QC) longer ago than the cutoff and
    # still without a verdict. A UID conflict is never QC'd: it waits for a person, not a task.
    return Q(qc_outcome=QCOutcome.PENDING, updated_at__lte=cutoff) & ~Q(
        ingest_status=IngestStatus.UID_CONFLICT
    )


def _unrouted(cutoff: datetime) -> Q:
    # ``reading_task`` is telerad's one-to-one back to the study: a lookup, no import.
    return Q(routable_at__lte=cutoff, reading_task__isnull=True)


def studies_stalled_in_qc(*, now: datetime | None = None) -> QuerySet[Study]:
    return Study.objects.filter(_qc_pending(_cutoff(now))).order_by("updated_at", "pk")


def studies_stalled_unrouted(*, now: datetime | None = None) -> QuerySet[Study]:
    return Study.objects.filter(_unrouted(_cutoff(now))).order_by("routable_at", "pk")


def stalled_study_count(*, now: datetime | None = None) -> int:
    cutoff = _cutoff(now)
    return Study.objects.filter(_qc_pending(cutoff) | _unrouted(cutoff)).count()
