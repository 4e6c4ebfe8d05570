from django.conf import settings
from django.db import models

from telerad.choices import CriticalStatus


class CriticalResult(models.Model):
    """A critical finding: the hospital is notified, escalating until someone acknowledges."""

    report = models.OneToOneField("telerad.Report", on_delete=models.PROTECT, related_name="critical_result")
    study = models.ForeignKey("dicom.Study", on_delete=models.PROTECT, related_name="critical_results")
    hospital = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="critical_results"
    )
    summary = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=CriticalStatus.choices, default=CriticalStatus.OPEN)
    flagged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    flagged_at = models.DateTimeField()
    # How many contacts have been notified so far (the next escalation notifies the next one).
    escalation_level = models.PositiveSmallIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True, db_index=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    tenant_lookups = {
        "hospital": "hospital_id",
        "operator": "study__unit__operator_id",
        "reading_group": "report__task__pool__reading_group_id",
    }

    class Meta:
        ordering = ["-flagged_at"]

    def __str__(self) -> str:
        return f"critical result {self.pk} ({self.status})"


class Notification(models.Model):
    """A message to one user (critical result, escalation); shown in the portal, optionally emailed."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32)
    critical_result = models.ForeignKey(
        CriticalResult, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "recipient__organisation_id"

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"notification {self.pk} to {self.recipient_id}"
