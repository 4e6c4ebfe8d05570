from django.conf import settings
from django.db import models

from telerad.choices import ReportStatus


class Report(models.Model):
    """The reader's report on a study: draft -> preliminary -> final; immutable once final."""

    task = models.OneToOneField("telerad.ReadingTask", on_delete=models.PROTECT, related_name="report")
    study = models.OneToOneField("dicom.Study", on_delete=models.PROTECT, related_name="report")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reports")
    template = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT)
    fields = models.JSONField(default=dict)  # structured: findings, impression, category...
    free_text = models.TextField(blank=True)
    critical = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "study__hospital_id"

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report {self.pk} v{self.version} ({self.status})"


class ReportVersion(models.Model):
    """Every saved state of a report, kept forever (append-only)."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ReportStatus.choices)
    fields = models.JSONField(default=dict)
    free_text = models.TextField(blank=True)
    critical = models.BooleanField(default=False)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    saved_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "report__study__hospital_id"

    class Meta:
        ordering = ["report", "version"]
        constraints = [models.UniqueConstraint(fields=["report", "version"], name="report_version_unique")]

    def __str__(self) -> str:
        return f"report {self.report_id} v{self.version}"


class Addendum(models.Model):
    """A signed addition to a final report; the report itself never changes."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="addenda")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    signed_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "report__study__hospital_id"

    class Meta:
        ordering = ["report", "created_at", "id"]
        verbose_name_plural = "addenda"

    def __str__(self) -> str:
        return f"addendum {self.pk} to report {self.report_id}"
