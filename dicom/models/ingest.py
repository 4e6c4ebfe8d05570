from django.db import models


class IngestCursor(models.Model):
    """How far the reconciler has walked Orthanc's /changes log (one row per Orthanc)."""

    name = models.CharField(max_length=64, unique=True)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seq}"


class ReceivingStudy(models.Model):
    """A study Orthanc is receiving that the platform has not yet mirrored as stable."""

    orthanc_id = models.CharField(max_length=64, unique=True)
    # Orthanc's time (UTC) of the newest instance known for it: a change's Date, or the study's
    # LastUpdate once read. Quiet for ORTHANC_STABLE_AGE past this, it is ingested as stable.
    last_instance_at = models.DateTimeField(db_index=True)
    last_seq = models.BigIntegerField(default=0)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"receiving {self.orthanc_id} (last instance {self.last_instance_at:%H:%M:%S})"
