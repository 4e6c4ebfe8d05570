"""The stalled-study sweep: queue QC or routing again for a study stuck past the cutoff, count
the tries, and alert the people who can act once the tries run out.

A study stalls when its task was lost: QC's retries ran out during a long database outage, the
broker refused the message, a worker died mid-task. Both tasks are idempotent (QC stores the
verdict of the study as it is; routing makes at most one reading task), so queuing again is
harmless. Tries are counted in the cache per stall (the key holds the time the study entered
the stage: a late series or a new verdict starts a fresh count).
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.access import operator_staff
from core.choices import Role
from core.models import User
from core.on_commit import on_commit
from core.services import audit_record
from dicom.models import Study
from dicom.selectors_stalled import studies_stalled_in_qc, studies_stalled_unrouted

logger = logging.getLogger(__name__)

STALLED_KIND = "study.stalled"
# Named, not imported: telerad builds on dicom (the same task QC schedules after a verdict).
ROUTE_TASK = "telerad.tasks.claims.route_study_task"
TRIES_TTL = 7 * 24 * 3600
STAGE_QC, STAGE_ROUTING = "qc", "routing"


def _tries_key(stage: str, study: Study) -> str:
    since = study.updated_at if stage == STAGE_QC else study.routable_at
    stamp = int(since.timestamp() * 1_000_000) if since else 0
    return f"dicom:stalled:{stage}:{study.pk}:{stamp}"


def stalled_tries(*, stage: str, study: Study) -> int:
    """How many sweeps have queued this stall again so far."""
    return int(cache.get(_tries_key(stage, study), 0))


def _count_try(stage: str, study: Study) -> int:
    key = _tries_key(stage, study)
    cache.add(key, 0, TRIES_TTL)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, TRIES_TTL)
        return 1


def _requeue(stage: str, study_id: int) -> None:
    if stage == STAGE_QC:
        from dicom.tasks import study_qc_task

        on_commit(lambda: study_qc_task.delay(study_id))
    else:
        on_commit(lambda: current_app.tasks[ROUTE_TASK].delay(study_id))


def alert_recipients(study: Study) -> list[User]:
    """The active QC officers of the operator whose van acquired the study, else its
    administrators; a study of no operator goes to the platform's superusers, never to every
    operator's staff (``core.access.operator_staff``)."""
    operator_id = study.unit.operator_id if study.unit_id and study.unit is not None else None
    officers = operator_staff(operator_id, Role.QC_OFFICER)
    if operator_id is not None and not officers.exists():
        officers = operator_staff(operator_id, Role.ADMIN)
    return list(officers.order_by("id"))


def _alert(stage: str, study: Study, tries: int) -> None:
    waiting = "its QC verdict" if stage == STAGE_QC else "a reading task"
    # Ids only: the log and the notification name no patient.
    logger.error(
        "study %s (Orthanc %s) stalled waiting for %s; queued again %d times",
        study.pk,
        study.orthanc_id,
        waiting,
        tries - 1,
    )
    text = (
        f"Study {study.pk} (Orthanc {study.orthanc_id}) has waited for {waiting} for more than "
        f"{settings.STALLED_STUDY_MINUTES} minutes although the platform queued it again "
        f"{tries - 1} times. Check the workers, the database and the broker (/api/health/)."
    )
    # Imported here, as the audit chain alarm does: notifications live in telerad.
    from telerad.services.notifications import notify

    with transaction.atomic():
        audit_record(
            actor=None,
            action=STALLED_KIND,
            obj=study,
            details={"stage": stage, "tries": tries - 1, "orthanc_id": study.orthanc_id},
        )
        for user in alert_recipients(study):
            notify(recipient=user, kind=STALLED_KIND, message=text)


def stalled_studies_sweep(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Queue each stalled study's QC or routing again; alert once when a stall outlives
    ``STALLED_STUDY_ALERT_TRIES`` re-queues (the sweep after the last one still finds it).

    The study keeps being queued after the alert: the cause (a database outage) may pass.
    """
    now = now or timezone.now()
    counts = {STAGE_QC: 0, STAGE_ROUTING: 0, "alerted": 0}
    for stage, studies in (
        (STAGE_QC, studies_stalled_in_qc(now=now)),
        (STAGE_ROUTING, studies_stalled_unrouted(now=now)),
    ):
        for study in studies.select_related("unit")[:limit]:
            tries = _count_try(stage, study)
            if tries == settings.STALLED_STUDY_ALERT_TRIES + 1:
                try:
                    _alert(stage, study, tries)
                    counts["alerted"] += 1
                except Exception:  # the re-queue below must still happen
                    logger.exception("study %s: the stalled alert could not be stored", study.pk)
            _requeue(stage, study.pk)
            counts[stage] += 1
    if counts[STAGE_QC] or counts[STAGE_ROUTING]:
        logger.warning(
            "stalled sweep: queued QC again for %d and routing for %d studies (%d alerts)",
            counts[STAGE_QC],
            counts[STAGE_ROUTING],
            counts["alerted"],
        )
    return counts
