"""Peer-review discrepancy rates (RADPEER) per first reader.

Computed here from ``PeerReview`` rows (``telerad.selectors_peer`` answers the peer-review pages;
this module needs only counts). A review counts when it is **done** and was **completed** in the
date range. Discrepancy rate = reviews scored 2 or 3 / reviews; significant = scored 3 / reviews.
Filters: dates, hospital and unit (of the reviewed study), pool (of the review). An operator sees
the reviews of reports on studies its units acquired.
"""

from __future__ import annotations

from django.db.models import Count, Q

from core.quality.base import Dashboard, Table, bar_chart, rate
from core.quality.filters import DashboardFilters
from telerad.models import PeerReview
from telerad.models.peer import PeerReviewStatus, RadpeerScore

COLUMNS = [
    ("reader", "First reader"),
    ("reviews", "Reviews"),
    ("score_1", "Score 1"),
    ("score_2", "Score 2"),
    ("score_3", "Score 3"),
    ("discrepancy_percent", "Discrepancy (2-3, %)"),
    ("significant_percent", "Likely significant (3, %)"),
]
TOTAL = "All readers"


def _row(reader: str, n: int, s1: int, s2: int, s3: int) -> dict:
    return {
        "reader": reader,
        "reviews": n,
        "score_1": s1,
        "score_2": s2,
        "score_3": s3,
        "discrepancy_percent": rate(s2 + s3, n),
        "significant_percent": rate(s3, n),
    }


def peer_review(filters: DashboardFilters) -> Dashboard:
    """One row per first reader plus an "All readers" total. One query."""
    reviews = PeerReview.objects.filter(
        status=PeerReviewStatus.DONE,
        completed_at__gte=filters.start_at,
        completed_at__lt=filters.end_before,
    )
    if filters.operator_id is not None:
        reviews = reviews.filter(report__study__unit__operator_id=filters.operator_id)
    if filters.pool_id is not None:
        reviews = reviews.filter(pool_id=filters.pool_id)
    if filters.hospital_id is not None:
        reviews = reviews.filter(report__study__hospital_id=filters.hospital_id)
    if filters.unit_id is not None:
        reviews = reviews.filter(report__study__unit_id=filters.unit_id)
    grouped = (
        reviews.order_by()
        .values(
            "first_reader_id", "first_reader__username", "first_reader__first_name", "first_reader__last_name"
        )
        .annotate(
            n=Count("id"),
            s1=Count("id", filter=Q(score=RadpeerScore.AGREE)),
            s2=Count("id", filter=Q(score=RadpeerScore.UNLIKELY_SIGNIFICANT)),
            s3=Count("id", filter=Q(score=RadpeerScore.LIKELY_SIGNIFICANT)),
        )
    )
    rows = []
    for g in grouped:
        name = f"{g['first_reader__first_name']} {g['first_reader__last_name']}".strip()
        rows.append(_row(name or g["first_reader__username"], g["n"], g["s1"], g["s2"], g["s3"]))
    rows.sort(key=lambda r: r["reader"])
    total = _row(TOTAL, *(sum(r[k] for r in rows) for k in ("reviews", "score_1", "score_2", "score_3")))
    chart = bar_chart(
        [r["reader"] for r in rows],
        [(f"Score {s}", [r[f"score_{s}"] for r in rows]) for s in (1, 2, 3)],
        y_label="reviews",
        stacked=True,
    )
    table = Table("peer", "Peer review per first reader", COLUMNS, [*rows, total])
    return Dashboard(key="peer", title="Peer-review discrepancies", tables=[table], chart=chart)
