from django.conf import settings
from django.db import models

from core.exceptions import Conflict
from telerad.choices import ReportStatus


class ReportImmutable(Conflict):
    """A final report, a report version or a signed addendum was about to change (HTTP 409).

    The ORM refuses here; the database refuses too (telerad/migrations/0003_report_guards.py).
    """

    code = "report_final"


class ReportQuerySet(models.QuerySet):
    # Bulk writes bypass save(): refuse them when they would touch a final report.
    def update(self, **kwargs):
        if self.filter(status=ReportStatus.FINAL).exists():
            raise ReportImmutable("A final report cannot be changed; add an addendum")
        return super().update(**kwargs)

    def delete(self):
        if self.filter(status=ReportStatus.FINAL).exists():
            raise ReportImmutable("A final report cannot be deleted")
        return super().delete()

    def bulk_update(self, objs, fields, batch_size=None):
        pks = [obj.pk for obj in objs if obj.pk is not None]
        if self.model._base_manager.filter(pk__in=pks, status=ReportStatus.FINAL).exists():
            raise ReportImmutable("A final report cannot be changed; add an addendum")
        return super().bulk_update(objs, fields, batch_size=batch_size)


class ReportVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ReportImmutable("Report versions are append-only")

    def delete(self):
        raise ReportImmutable("Report versions are append-only")

    def bulk_update(self, objs, fields, batch_size=None):
        raise ReportImmutable("Report versions are append-only")


class AddendumQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if self.filter(signed_at__isnull=False).exists():
            raise ReportImmutable("A signed addendum cannot be changed")
        return super().update(**kwargs)

    def delete(self):
        if self.filter(signed_at__isnull=False).exists():
            raise ReportImmutable("A signed addendum cannot be deleted")
        return super().delete()

    def bulk_update(self, objs, fields, batch_size=None):
        pks = [obj.pk for obj in objs if obj.pk is not None]
        if self.model._base_manager.filter(pk__in=pks, signed_at__isnull=False).exists():
            raise ReportImmutable("A signed addendum cannot be changed")
        return super().bulk_update(objs, fields, batch_size=batch_size)


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

    tenant_lookups = {
        "hospital": "study__hospital_id",
        "operator": "study__unit__operator_id",
        "reading_group": "task__pool__reading_group_id",
    }

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report {self.pk} v{self.version} ({self.status})"

    def save(self, *args, **kwargs):
        if self._stored_as_final():
            raise ReportImmutable("A final report cannot be changed; add an addendum")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._stored_as_final():
            raise ReportImmutable("A final report cannot be deleted")
        return super().delete(*args, **kwargs)

    def _stored_as_final(self) -> bool:
        # Ask the database, not this instance: a copy loaded before signing must not overwrite.
        return (
            self.pk is not None
            and type(self)._base_manager.filter(pk=self.pk, status=ReportStatus.FINAL).exists()
        )


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

    tenant_lookups = {
        "hospital": "report__study__hospital_id",
        "operator": "report__study__unit__operator_id",
        "reading_group": "report__task__pool__reading_group_id",
    }

    objects = ReportVersionQuerySet.as_manager()

    class Meta:
        ordering = ["report", "version"]
        constraints = [models.UniqueConstraint(fields=["report", "version"], name="report_version_unique")]

    def __str__(self) -> str:
        return f"report {self.report_id} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ReportImmutable("Report versions are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ReportImmutable("Report versions are append-only")


class Addendum(models.Model):
    """A signed addition to a final report; the report itself never changes."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="addenda")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    signed_at = models.DateTimeField(null=True, blank=True)

    tenant_lookups = {
        "hospital": "report__study__hospital_id",
        "operator": "report__study__unit__operator_id",
        "reading_group": "report__task__pool__reading_group_id",
    }

    objects = AddendumQuerySet.as_manager()

    class Meta:
        ordering = ["report", "created_at", "id"]
        verbose_name_plural = "addenda"

    def __str__(self) -> str:
        return f"addendum {self.pk} to report {self.report_id}"

    def save(self, *args, **kwargs):
        if self._stored_as_signed():
            raise ReportImmutable("A signed addendum cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._stored_as_signed():
            raise ReportImmutable("A signed addendum cannot be deleted")
        return super().delete(*args, **kwargs)

    def _stored_as_signed(self) -> bool:
        return (
            self.pk is not None
            and type(self)._base_manager.filter(pk=self.pk, signed_at__isnull=False).exists()
        )
