from django.db import models


class IngestCursor(models.Model):
    """How far the reconciler has walked Orthanc's /changes log (one row per Orthanc)."""

    name = models.CharField(max_length=64, unique=True)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seq}"
