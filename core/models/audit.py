import json

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit entry through the ORM."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The audit log is append-only: entries cannot be updated")

    def delete(self):
        raise AppendOnlyError("The audit log is append-only: entries cannot be deleted")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("The audit log is append-only: entries cannot be updated")

    def bulk_create(self, *args, **kwargs):
        raise AppendOnlyError("Audit entries are written one by one through core.services.audit_record")


class AuditEntry(models.Model):
    """One append-only, hash-chained record of who did what to which object, when and from where."""

    timestamp = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Copied from the actor at write time so the chain does not depend on later edits to users.
    actor_username = models.CharField(max_length=150, blank=True)
    actor_role = models.CharField(max_length=32, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=128, blank=True)
    patient_data = models.BooleanField(default=False)
    # The patient the entry concerns (when patient_data), for "who has seen this patient".
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    source_ip = models.CharField(max_length=45, blank=True)
    # Canonical JSON text (sorted keys, compact): hashed exactly as stored. See core.audit_chain.
    details = models.TextField(default="{}", blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]
        default_permissions = ("view",)
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id} by {self.actor_username or '-'}"

    def save(self, *args, **kwargs):
        if self.pk is not None or not kwargs.pop("_via_service", False):
            raise AppendOnlyError("Audit entries are written once, through core.services.audit_record")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The audit log is append-only: entries cannot be deleted")

    @property
    def details_data(self) -> dict:
        return json.loads(self.details)


class AuditCheck(models.Model):
    """One run of the audit chain verification (nightly beat task or ``manage.py audit_verify``)."""

    ran_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ok = models.BooleanField()
    entries = models.PositiveBigIntegerField(default=0)
    first_broken_id = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    alerted = models.BooleanField(default=False, help_text="Admins and QC officers were alerted")

    class Meta:
        ordering = ["-ran_at", "-id"]

    def __str__(self) -> str:
        return f"audit check {self.ran_at:%Y-%m-%d %H:%M}: {'OK' if self.ok else 'BROKEN'}"
