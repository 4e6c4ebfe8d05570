from django.conf import settings
from django.db import models

from telerad.choices import TaskStatus


class ReadingTask(models.Model):
    """A routable study on the reading worklists: its pool, SLA deadline, eligible readers, claim."""

    study = models.OneToOneField("dicom.Study", on_delete=models.PROTECT, related_name="reading_task")
    pool = models.ForeignKey("telerad.ReadingPool", on_delete=models.PROTECT, related_name="tasks")
    hospital = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="reading_tasks")
    modality = models.CharField(max_length=16)
    body_part = models.CharField(max_length=16, blank=True)
    subspecialty = models.CharField(max_length=32, blank=True)
    priority = models.CharField(max_length=8)  # dicom.choices.Priority
    # 0 = STAT, 1 = urgent, 2 = routine: the worklist sorts by it, then by deadline.
    priority_rank = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.UNCLAIMED)
    routed_at = models.DateTimeField()
    deadline = models.DateTimeField()
    eligible = models.ManyToManyField("telerad.Radiologist", related_name="eligible_tasks", blank=True)
    # Direct assignment by a pool lead: only this reader may claim.
    assigned_to = models.ForeignKey(
        "telerad.Radiologist", on_delete=models.PROTECT, null=True, blank=True, related_name="assigned_tasks"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="claimed_tasks",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # Set once each: the SLA sweep sends each warning/breach event exactly once.
    sla_warned_at = models.DateTimeField(null=True, blank=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    # No eligible reader on shift at routing: the pool lead was asked to assign.
    escalated_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)

    tenant_lookups = {
        "hospital": "hospital_id",
        "operator": "study__unit__operator_id",
        "reading_group": "pool__reading_group_id",
    }

    class Meta:
        ordering = ["priority_rank", "deadline", "id"]
        indexes = [
            models.Index(fields=["status", "priority_rank", "deadline", "id"], name="task_worklist_idx"),
            # A reader's worklist is their pools' open tasks in priority/deadline order.
            models.Index(
                fields=["pool", "status", "priority_rank", "deadline", "id"], name="task_pool_worklist_idx"
            ),
            models.Index(fields=["claim_expires_at"], name="task_claim_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.priority}, {self.status})"
