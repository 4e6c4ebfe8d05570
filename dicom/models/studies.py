from django.conf import settings
from django.db import models

from dicom.choices import IngestStatus, MatchMethod, QCOutcome


class Study(models.Model):
    """A study stored in Orthanc, mirrored here: matched to its order, QC'd and routed."""

    orthanc_id = models.CharField(max_length=44, unique=True)
    # Unique among studies that are not UID conflicts (see ``uid_conflict_with``).
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    # Set when Orthanc holds this study's UID under another patient ID too: the study first
    # mirrored under that UID; this one waits in the reconciliation queue, never routed.
    uid_conflict_with = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="uid_conflicts"
    )
    # The accession the platform shows and sends: the order's once the study is matched or
    # linked (the hospital files the report under it), else what the scanner sent.
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    # What the scanner wrote in the images (AccessionNumber as Orthanc holds it, never modified
    # there): kept for the audit and reconciliation history.
    source_accession_number = models.CharField(max_length=16, blank=True)
    patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=128, blank=True)
    patient_sex = models.CharField(max_length=1, blank=True)
    patient_birth_date = models.DateField(null=True, blank=True)
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)
    description = models.CharField(max_length=128, blank=True)
    modalities = models.CharField(max_length=64, blank=True)  # e.g. "CT" or "CT\\SR"
    body_part = models.CharField(max_length=16, blank=True)
    # AE title that sent the images (Orthanc's RemoteAET metadata): which van.
    source_aet = models.CharField(max_length=16, blank=True)
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)

    order = models.OneToOneField(
        "dicom.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="study"
    )
    hospital = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="studies"
    )
    unit = models.ForeignKey(
        "fleet.Unit", on_delete=models.PROTECT, null=True, blank=True, related_name="studies"
    )
    ingest_status = models.CharField(max_length=16, choices=IngestStatus.choices, db_index=True)
    match_method = models.CharField(max_length=16, choices=MatchMethod.choices, blank=True)
    qc_outcome = models.CharField(
        max_length=8, choices=QCOutcome.choices, default=QCOutcome.PENDING, db_index=True
    )

    # Orthanc's LastUpdate of the study when we last mirrored it; a newer one means new instances.
    orthanc_last_update = models.CharField(max_length=32, blank=True)
    stable_seq = models.BigIntegerField(null=True, blank=True)
    # When Orthanc declared the study stable (the nudge or the reconciler noticed), when we
    # first mirrored it, and when it became readable (matched, QC passed or warned).
    stable_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    routable_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # A QC officer's release of a failed QC verdict (``study_qc_release``): the study is read
    # despite the failure, for the reason given. A new QC verdict (late series) clears it.
    qc_released_at = models.DateTimeField(null=True, blank=True)
    qc_released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    qc_release_reason = models.TextField(blank=True)

    tenant_lookups = {
        "hospital": "hospital_id",
        "operator": "unit__operator_id",
        "reading_group": "reading_task__pool__reading_group_id",
    }

    class Meta:
        ordering = ["-ingested_at"]
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(
                fields=["study_instance_uid"],
                condition=models.Q(uid_conflict_with__isnull=True),
                name="study_uid_unique_unless_conflict",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.accession_number or '(no accession)'} {self.modalities} [{self.orthanc_id[:8]}]"


class Series(models.Model):
    """A series of a mirrored study."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    orthanc_id = models.CharField(max_length=44, unique=True)
    series_instance_uid = models.CharField(max_length=64, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    body_part = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=128, blank=True)
    number_of_instances = models.PositiveIntegerField(default=0)

    tenant_lookups = {
        "hospital": "study__hospital_id",
        "operator": "study__unit__operator_id",
        "reading_group": "study__reading_task__pool__reading_group_id",
    }

    class Meta:
        ordering = ["study", "series_number", "id"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "series_instance_uid"], name="series_uid_unique_per_study"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.modality} #{self.series_number} ({self.number_of_instances})"
