"""Peer review reads: a reviewer's queue, one review for its reviewer, discrepancy rates over time.

The reviewer sees the report's content, never who wrote it: ``peer_review_get_for_reviewer``
loads no author, and ``telerad.api.peer`` serialises only the fields listed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypedDict

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.http import HttpRequest

from core.access import scope_for_user
from core.exceptions import InvalidInput, NotFound
from core.models import User
from core.services import audit_record
from telerad.models import PeerReview, PeerReviewStatus, RadpeerScore

BUCKETS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


def peer_reviews_for_reviewer(
    user: User, *, status: str | None = PeerReviewStatus.ASSIGNED
) -> QuerySet[PeerReview]:
    """The reviewer's own reviews (open ones by default; ``status=None``: all), oldest first."""
    reviews = PeerReview.objects.filter(reviewer_id=user.pk)
    if status:
        reviews = reviews.filter(status=status)
    return reviews.select_related("report__study__hospital", "report__study__order", "report__task").order_by(
        "assigned_at", "id"
    )


def peer_review_get_for_reviewer(user: User, pk: int, *, request: HttpRequest | None = None) -> PeerReview:
    """The review if ``user`` is its reviewer (else ``NotFound``), audited as a patient-data read."""
    review = peer_reviews_for_reviewer(user, status=None).filter(pk=pk).first()
    if review is None:
        raise NotFound("No peer review matches the given id")
    audit_record(
        actor=user,
        action="peer_review.view",
        obj=review,
        patient_data=True,
        patient_id=review.report.study.patient_id,
        details={"report": review.report_id},
        request=request,
    )
    return review


class DiscrepancyRate(TypedDict):
    first_reader: int
    first_reader_name: str
    period: date
    reviewed: int
    score_2: int
    score_3: int
    discrepancy_rate: float


def peer_discrepancy_rates(
    *,
    start: datetime,
    end: datetime,
    pool_id: int | None = None,
    reader_id: int | None = None,
    bucket: str = "month",
    viewer=None,
) -> list[DiscrepancyRate]:
    """Per first reader and period: completed reviews and their discrepancies.

    Counts reviews with status done and ``start <= completed_at < end``, optionally of one pool,
    one first reader (user id); with ``viewer``, only reviews in that user's tenancy
    (``core.access``: a reading group's of its pools, an operator's of its vans' studies).
    ``bucket`` is "day", "week" or "month" (truncated in the current time zone; ``period`` is
    the bucket's first day).
    ``discrepancy_rate`` = (score 2 + score 3) / reviewed. Rows sorted by period, then reader id.
    """
    trunc = BUCKETS.get(bucket)
    if trunc is None:
        raise InvalidInput(
            f"bucket: one of {', '.join(BUCKETS)}", code="invalid_field", extra={"field": "bucket"}
        )
    reviews = PeerReview.objects.filter(
        status=PeerReviewStatus.DONE, completed_at__gte=start, completed_at__lt=end
    )
    if pool_id is not None:
        reviews = reviews.filter(pool_id=pool_id)
    if reader_id is not None:
        reviews = reviews.filter(first_reader_id=reader_id)
    if viewer is not None:
        reviews = scope_for_user(viewer, reviews)
    rows = (
        reviews.annotate(period=trunc("completed_at"))
        .values(
            "period",
            "first_reader_id",
            username=F("first_reader__username"),
            first_name=F("first_reader__first_name"),
            last_name=F("first_reader__last_name"),
        )
        .annotate(
            reviewed=Count("id"),
            score_2=Count("id", filter=Q(score=RadpeerScore.UNLIKELY_SIGNIFICANT)),
            score_3=Count("id", filter=Q(score=RadpeerScore.LIKELY_SIGNIFICANT)),
        )
        .order_by("period", "first_reader_id")
    )
    return [_rate(row) for row in rows]


def _rate(row: Mapping[str, Any]) -> DiscrepancyRate:
    period = row["period"]
    name = f"{row['first_name']} {row['last_name']}".strip() or row["username"]
    return {
        "first_reader": row["first_reader_id"],
        "first_reader_name": name,
        "period": period.date() if isinstance(period, datetime) else period,
        "reviewed": row["reviewed"],
        "score_2": row["score_2"],
        "score_3": row["score_3"],
        "discrepancy_rate": (row["score_2"] + row["score_3"]) / row["reviewed"],
    }
