"""Peer review (RADPEER): a share of signed reports, and every report QC picks, gets a second reader.

Selection happens when a report is signed (``report_sign`` calls ``peer_review_after_sign``):

- sampled: ``sha256(f"{seed}:{report_id}")`` mapped to [0, 100) is below the pool's
  ``peer_review_percent``; the seed is ``settings.PEER_REVIEW_SEED`` (default ``"caravan"``), so
  the choice is reproducible and cannot be steered by the reader;
- picked: a QC officer asked for the study (``peer_review_request``). A pick before the report is
  signed is stored as an audit entry (``action="peer_review.pick"`` on the study) and honoured at
  sign time; a pick of a study already signed creates the review at once.

The reviewer is a reader routing found eligible for the study (``ReadingTask.eligible``), still a
member of the pool, active, and not the first reader; fewest open peer reviews first, then id.
Shift is ignored: a review is not urgent. With nobody eligible the review is stored as cancelled
(reviewer empty, the reason in ``comment``) and audited as ``peer_review.unassigned``.

A score 3 notifies the first reader and every active QC officer of the operator and of the pool's
reading group (messages carry the review and report ids only, no patient data).
"""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from core.choices import OrganisationKind, Role
from core.exceptions import AccessDenied, Conflict, InvalidInput, NotFound
from core.models import AuditEntry, User
from core.services import audit_record
from dicom.models import Study
from dicom.study_access import study_visible_to
from telerad.choices import ReportStatus
from telerad.models import (
    PeerReview,
    PeerReviewReason,
    PeerReviewStatus,
    Radiologist,
    RadpeerScore,
    Report,
    Significance,
)
from telerad.services.notifications import notify

logger = logging.getLogger(__name__)

PICK_ACTION = "peer_review.pick"
DISCREPANCY_KIND = "peer_review.discrepancy"
ASSIGNED_KIND = "peer_review.assigned"
NO_REVIEWER_COMMENT = (
    "No eligible reviewer (pool member eligible for the study, other than the first reader)."
)
_STUDY_TYPE = Study._meta.label_lower


def peer_review_seed() -> str:
    return str(getattr(settings, "PEER_REVIEW_SEED", "caravan"))


def peer_review_selected(*, report_id: int, percent: Decimal | int | float, seed: str) -> bool:
    """Whether the sample includes ``report_id``: hash of (seed, id) in [0, 100) below ``percent``.

    Exact integer arithmetic on the first 64 bits of the hash; ``percent`` counts to 1/100 %.
    """
    digest = hashlib.sha256(f"{seed}:{report_id}".encode()).digest()
    value = int.from_bytes(digest[:8], "big")  # uniform in [0, 2**64)
    hundredths = int(Decimal(str(percent)) * 100)
    return value * 10_000 < hundredths * 2**64


def study_is_picked(study_id: int) -> bool:
    """A QC officer asked for this study's report to be peer reviewed (pick stored in the audit log)."""
    return AuditEntry.objects.filter(
        action=PICK_ACTION, object_type=_STUDY_TYPE, object_id=str(study_id)
    ).exists()


def _pick_requester(study_id: int) -> User | None:
    entry = (
        AuditEntry.objects.filter(action=PICK_ACTION, object_type=_STUDY_TYPE, object_id=str(study_id))
        .order_by("id")
        .first()
    )
    return User.objects.filter(pk=entry.actor_id).first() if entry and entry.actor_id else None


def reviewer_candidates(report: Report) -> list[Radiologist]:
    """Eligible second readers, best first: fewest open peer reviews, then profile id."""
    task = report.task
    return list(
        Radiologist.objects.filter(
            eligible_tasks=task,
            pools=task.pool,
            user__is_active=True,
            user__groups__name=Role.RADIOLOGIST,
        )
        .exclude(user_id=report.author_id)
        .annotate(
            open_reviews=Count(
                "user__peer_reviews",
                filter=Q(user__peer_reviews__status=PeerReviewStatus.ASSIGNED),
                distinct=True,
            )
        )
        .select_related("user")
        .distinct()
        .order_by("open_reviews", "pk")
    )


def _assign(*, report: Report, reason: str, requested_by: User | None) -> PeerReview:
    task = report.task
    candidates = reviewer_candidates(report)
    reviewer = candidates[0].user if candidates else None
    review = PeerReview.objects.create(
        report=report,
        pool=task.pool,
        first_reader_id=report.author_id,
        reviewer=reviewer,
        reason=reason,
        requested_by=requested_by,
        status=PeerReviewStatus.ASSIGNED if reviewer else PeerReviewStatus.CANCELLED,
        comment="" if reviewer else NO_REVIEWER_COMMENT,
    )
    details = {"report": report.pk, "pool": task.pool_id, "reason": reason}
    if reviewer is None:
        audit_record(actor=requested_by, action="peer_review.unassigned", obj=review, details=details)
        logger.info("peer review %s of report %s: no eligible reviewer", review.pk, report.pk)
    else:
        audit_record(
            actor=requested_by,
            action="peer_review.assign",
            obj=review,
            details={**details, "reviewer": reviewer.pk},
        )
        # No patient data and no first reader: the review page shows the rest, behind a login.
        notify(
            recipient=reviewer,
            kind=ASSIGNED_KIND,
            message=f"A {task.modality} study is waiting for your peer review (review #{review.pk}).",
        )
    return review


@transaction.atomic
def peer_review_sample(*, report: Report, seed: str | None = None) -> PeerReview | None:
    """Select a just-signed report for peer review (sampled or picked) and assign it; else None.

    Idempotent: a report already reviewed (in any state) returns its review unchanged.
    """
    report = Report.objects.select_related("task__pool").get(pk=report.pk)
    if report.status != ReportStatus.FINAL:
        return None
    existing = PeerReview.objects.filter(report=report).first()
    if existing is not None:
        return existing
    if study_is_picked(report.study_id):
        return _assign(
            report=report, reason=PeerReviewReason.QC_PICK, requested_by=_pick_requester(report.study_id)
        )
    percent = report.task.pool.peer_review_percent
    if peer_review_selected(report_id=report.pk, percent=percent, seed=seed or peer_review_seed()):
        return _assign(report=report, reason=PeerReviewReason.SAMPLED, requested_by=None)
    return None


def peer_review_after_sign(report: Report) -> None:
    """Called by ``report_sign``: sample in a savepoint; a failure here never undoes the signature."""
    try:
        with transaction.atomic():
            peer_review_sample(report=report)
    except Exception:  # the signature stands; the review can be requested again by QC
        logger.exception("peer review sampling failed for report %s", report.pk)


# --- QC picks --------------------------------------------------------------------------------


def user_is_quality_staff(user: User) -> bool:
    """QC officers and administrators (and superusers): they pick studies and see the rates."""
    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return False
    return user.is_superuser or user.has_role(Role.QC_OFFICER, Role.ADMIN)


def _may_pick(user: User, study: Study) -> bool:
    # Quality staff pick within their tenancy: an operator's the studies its vans acquired, a
    # reading group's QC officer the studies its pools read (``dicom.study_access``).
    return study_visible_to(user, study)


@transaction.atomic
def peer_review_request(
    *, actor: User, study: Study, request: HttpRequest | None = None
) -> tuple[PeerReview | None, bool]:
    """A QC pick: review this study's report. Returns (review or None if not signed yet, created).

    A signed report gets its review now (an existing review is returned, ``created`` False). An
    unsigned one is picked: the pick is an audit entry that sign-time sampling honours.
    """
    if not user_is_quality_staff(actor):
        raise AccessDenied("Only QC officers and administrators pick studies for peer review")
    study = Study.objects.select_for_update().filter(pk=study.pk).first()  # type: ignore[assignment]
    if study is None or not _may_pick(actor, study):
        raise NotFound("No study matches the given id")
    report = Report.objects.filter(study=study).select_related("task__pool").first()
    existing = PeerReview.objects.filter(report=report).first() if report else None
    if existing is not None:
        return existing, False
    audit_record(
        actor=actor,
        action=PICK_ACTION,
        obj=study,
        details={"report": report.pk if report else None},
        request=request,
    )
    if report is None or report.status != ReportStatus.FINAL:
        return None, False
    return _assign(report=report, reason=PeerReviewReason.QC_PICK, requested_by=actor), True


# --- scoring ---------------------------------------------------------------------------------


def _clean_score(score: object, significance: object, comment: object) -> tuple[int, str, str]:
    try:
        value = int(score)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        value = 0
    if value not in RadpeerScore.values:
        raise InvalidInput("score: 1, 2 or 3 (RADPEER)", code="invalid_field", extra={"field": "score"})
    sig = significance if isinstance(significance, str) else ""
    if value == RadpeerScore.AGREE and sig:
        raise InvalidInput(
            "significance: a score of 1 has no significance modifier",
            code="invalid_field",
            extra={"field": "significance"},
        )
    if value != RadpeerScore.AGREE and sig not in (Significance.A, Significance.B):
        raise InvalidInput(
            "significance: a discrepancy (2 or 3) is 'a' or 'b'",
            code="invalid_field",
            extra={"field": "significance"},
        )
    text = comment.strip() if isinstance(comment, str) else ""
    if len(text) > 4000:
        raise InvalidInput(
            "comment: at most 4000 characters", code="invalid_field", extra={"field": "comment"}
        )
    if value != RadpeerScore.AGREE and not text:
        raise InvalidInput(
            "comment: describe the discrepancy", code="invalid_field", extra={"field": "comment"}
        )
    return value, sig, text


def discrepancy_recipients(review: PeerReview) -> list[User]:
    """Who hears of a score 3: the first reader, then active QC officers (the operator whose van
    acquired the study, the pool's group)."""
    officers = (
        User.objects.filter(is_active=True, groups__name=Role.QC_OFFICER)
        .filter(
            Q(
                organisation__kind=OrganisationKind.OPERATOR,
                organisation__units__studies__report=review.report_id,
            )
            | Q(organisation_id=review.pool.reading_group_id)
        )
        .exclude(pk=review.first_reader_id)
        .distinct()
        .order_by("pk")
    )
    return [review.first_reader, *officers]


@transaction.atomic
def peer_review_submit(
    *,
    actor: User,
    review: PeerReview,
    score: int,
    significance: str = "",
    comment: str = "",
    request: HttpRequest | None = None,
) -> PeerReview:
    """The assigned reviewer scores the report (once): assigned -> done; a 3 notifies."""
    current = PeerReview.objects.select_related("pool", "first_reader").filter(pk=review.pk).first()
    if current is None or current.reviewer_id != actor.pk:
        raise NotFound("No peer review matches the given id")
    value, sig, text = _clean_score(score, significance, comment)
    now = timezone.now()
    # Compare-and-swap: two submissions (double click, two tabs) cannot both score.
    swapped = PeerReview.objects.filter(
        pk=current.pk, reviewer=actor, status=PeerReviewStatus.ASSIGNED
    ).update(status=PeerReviewStatus.DONE, score=value, significance=sig, comment=text, completed_at=now)
    if swapped != 1:
        raise Conflict(f"This peer review is {current.get_status_display().lower()}", code="review_closed")
    current.status, current.score, current.significance = PeerReviewStatus.DONE, value, sig
    current.comment, current.completed_at = text, now
    audit_record(
        actor=actor,
        action="peer_review.score",
        obj=current,
        details={"report": current.report_id, "score": value, "significance": sig},
        request=request,
    )
    if value == RadpeerScore.LIKELY_SIGNIFICANT:
        message = f"Peer review of report #{current.report_id} scored {value}{sig}: significant discrepancy."
        for recipient in discrepancy_recipients(current):
            notify(recipient=recipient, kind=DISCREPANCY_KIND, message=message)
    return current
