"""Enumerations of the tele-reading domain."""

from django.db import models


class TaskStatus(models.TextChoices):
    UNCLAIMED = "unclaimed", "Waiting for a reader"
    CLAIMED = "claimed", "Claimed"
    REPORTED = "reported", "Reported (final)"
    CANCELLED = "cancelled", "Cancelled"


class ReportStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PRELIMINARY = "preliminary", "Preliminary"
    FINAL = "final", "Final"


class EventKind(models.TextChoices):
    STUDY_ADDED = "study.added", "Study added"
    STUDY_CLAIMED = "study.claimed", "Study claimed"
    STUDY_RELEASED = "study.released", "Study released"
    STUDY_REPORTED = "study.reported", "Study reported"
    SLA_WARNING = "sla.warning", "SLA warning (80 %)"
    SLA_BREACH = "sla.breach", "SLA breached"
    CRITICAL_RESULT = "critical.result", "Critical result"
    CRITICAL_ACK = "critical.acknowledged", "Critical result acknowledged"
    STUDY_ESCALATED = "study.escalated", "Study escalated to the pool lead"
    REPORT_ADDENDUM = "report.addendum", "Signed addendum to a final report"
    STUDY_QC_FAILED = "study.qc_failed", "QC failed after the study was routed"


class CriticalStatus(models.TextChoices):
    OPEN = "open", "Open (notifying)"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
