from django.conf import settings
from django.db import models

from telerad.choices import EventKind


class ReadingEvent(models.Model):
    """One live worklist event; its id is the sequence number clients resume from."""

    kind = models.CharField(max_length=32, choices=EventKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    task = models.ForeignKey(
        "telerad.ReadingTask", on_delete=models.CASCADE, null=True, related_name="events"
    )
    # Audience: everyone in the pool, or one user (e.g. a notification to a hospital contact).
    pool = models.ForeignKey(
        "telerad.ReadingPool", on_delete=models.CASCADE, null=True, related_name="events"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, related_name="reading_events"
    )
    hospital = models.ForeignKey("core.Organisation", on_delete=models.CASCADE, null=True, related_name="+")
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["pool", "id"], name="event_pool_seq_idx"),
            models.Index(fields=["user", "id"], name="event_user_seq_idx"),
            models.Index(fields=["hospital", "id"], name="event_hospital_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"
