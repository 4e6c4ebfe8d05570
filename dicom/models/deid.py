"""De-identified copies of studies for teaching and research (dicom/services/deid.py)."""

from django.conf import settings
from django.db import models


class PseudonymKind(models.TextChoices):
    PATIENT = "patient", "Patient ID"
    UID = "uid", "DICOM UID"


class DeidExportStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Pseudonym(models.Model):
    """The stable replacement of one original identifier within one project (the re-identification key)."""

    # A teaching file or research protocol: pseudonyms never carry over from one to another.
    project = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=PseudonymKind.choices)
    # Patient IDs are only unique within the hospital that issued them, so a patient's key is
    # (issuer, ID); UIDs are globally unique and leave it empty.
    issuer = models.CharField(max_length=64, blank=True)
    original = models.CharField(max_length=64)
    pseudonym = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "kind", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "issuer", "original"], name="pseudonym_unique_original"
            ),
            # Two originals must never share a replacement, or two patients would be merged.
            models.UniqueConstraint(fields=["project", "kind", "pseudonym"], name="pseudonym_unique_value"),
        ]

    def __str__(self) -> str:
        # The original value is the secret half of the pair: keep it out of reprs and logs.
        return f"{self.project} {self.kind} -> {self.pseudonym}"


class DeidExport(models.Model):
    """One de-identified copy of a study in Orthanc, made for one project (one per study and project)."""

    study = models.ForeignKey("dicom.Study", on_delete=models.PROTECT, related_name="deid_exports")
    project = models.CharField(max_length=64)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=8, choices=DeidExportStatus.choices, default=DeidExportStatus.RUNNING, db_index=True
    )
    deid_orthanc_id = models.CharField(max_length=44, blank=True)
    deid_study_instance_uid = models.CharField(max_length=64, blank=True)
    series_count = models.PositiveIntegerField(default=0)
    instance_count = models.PositiveIntegerField(default=0)
    # Original SOP Instance UID -> the one Orthanc generated for the copy (see docs/deidentification.md:
    # Orthanc cannot be given per-instance UIDs in a series job, so these change when a copy is re-made).
    instance_uids = models.JSONField(default=dict, blank=True)
    # Why the last attempt failed; Orthanc's error text without its "Details" (no tag values).
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "study__hospital_id"

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["study", "project"], name="deidexport_unique_study_project"),
        ]

    def __str__(self) -> str:
        return f"de-id of study {self.study_id} for {self.project} ({self.status})"
