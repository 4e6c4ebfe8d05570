from django.db import models

from dicom.choices import QCOutcome


class QCResult(models.Model):
    """One run of the acquisition QC rules over a study; the newest is the study's verdict."""

    study = models.ForeignKey("dicom.Study", on_delete=models.CASCADE, related_name="qc_results")
    outcome = models.CharField(max_length=8, choices=QCOutcome.choices)
    # [{"rule": id, "severity": "warn"|"fail", "message": str, "series": uid|None}, ...]
    findings = models.JSONField(default=list)
    rules_run = models.JSONField(default=list)
    # The study's instance count when QC ran: a late series makes QC run again.
    number_of_instances = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_lookups = {
        "hospital": "study__hospital_id",
        "operator": "study__unit__operator_id",
        "reading_group": "study__reading_task__pool__reading_group_id",
    }

    class Meta:
        ordering = ["study", "-created_at"]

    def __str__(self) -> str:
        return f"QC {self.outcome} for study {self.study_id}"
