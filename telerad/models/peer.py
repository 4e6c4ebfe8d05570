"""Peer review: a second reader scores a signed report, blind to who wrote it (RADPEER)."""

from django.conf import settings
from django.db import models


class PeerReviewReason(models.TextChoices):
    SAMPLED = "sampled", "Random sample"  # the pool's configured share of signed reports
    QC_PICK = "qc_pick", "Picked by QC"  # a QC officer asked for this study to be reviewed


class PeerReviewStatus(models.TextChoices):
    ASSIGNED = "assigned", "Assigned"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"  # no eligible reviewer, or withdrawn by QC


class RadpeerScore(models.IntegerChoices):
    AGREE = 1, "1: concur with interpretation"
    UNLIKELY_SIGNIFICANT = 2, "2: discrepancy, unlikely to be clinically significant"
    LIKELY_SIGNIFICANT = 3, "3: discrepancy, likely to be clinically significant"


class Significance(models.TextChoices):
    """RADPEER's modifier of a discrepancy (scores 2 and 3)."""

    NONE = "", "—"
    A = "a", "a: unlikely to be clinically significant"
    B = "b", "b: likely to be clinically significant"


class PeerReview(models.Model):
    """One report's peer review: who reviews it, why it was chosen, and the score given."""

    report = models.OneToOneField("telerad.Report", on_delete=models.PROTECT, related_name="peer_review")
    pool = models.ForeignKey("telerad.ReadingPool", on_delete=models.PROTECT, related_name="peer_reviews")
    # The first reader, kept for discrepancy rates; never shown to the reviewer.
    first_reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="peer_reviews"
    )
    reason = models.CharField(max_length=10, choices=PeerReviewReason.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=PeerReviewStatus.choices, default=PeerReviewStatus.ASSIGNED
    )
    score = models.PositiveSmallIntegerField(choices=RadpeerScore.choices, null=True, blank=True)
    significance = models.CharField(max_length=1, choices=Significance.choices, blank=True, default="")
    comment = models.TextField(blank=True, max_length=4000)
    assigned_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    # Hospitals never see peer reviews: they are the readers' quality process, not the patient's.
    tenant_lookups = {
        "reading_group": "pool__reading_group_id",
        "operator": "report__study__unit__operator_id",
    }

    class Meta:
        ordering = ["-assigned_at", "-id"]
        indexes = [
            models.Index(fields=["reviewer", "status"]),
            models.Index(fields=["first_reader", "completed_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(reviewer=models.F("first_reader")), name="peer_review_not_own_report"
            ),
            models.CheckConstraint(
                condition=models.Q(status="done", score__isnull=False) | ~models.Q(status="done"),
                name="peer_review_done_has_score",
            ),
        ]

    def __str__(self) -> str:
        return f"peer review {self.pk} of report {self.report_id} ({self.status})"
