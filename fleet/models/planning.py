"""Hospital service contracts and the service requests the planner turns into visits."""

__all__ = [
    "PRIORITY_WEIGHT",
    "Plan",
    "PlanKind",
    "PlanStatus",
    "RequestPriority",
    "ServiceContract",
    "ServiceRequest",
    "ServiceRequestStatus",
]

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from fleet.choices import Modality

PATIENTS_MIN = 1
PATIENTS_MAX = 200


class RequestPriority(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    EMERGENCY = "emergency", "Emergency"


# The planner's objective weight of serving a request of each priority.
PRIORITY_WEIGHT: dict[str, int] = {
    RequestPriority.ROUTINE: 1,
    RequestPriority.URGENT: 3,
    RequestPriority.EMERGENCY: 10,
}


class ServiceRequestStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    PLANNED = "planned", "Planned"
    SCHEDULED = "scheduled", "Scheduled"
    FULFILLED = "fulfilled", "Fulfilled"
    DECLINED = "declined", "Declined"


class ServiceContract(models.Model):
    """An operator's promise to visit a hospital with a modality at least every ``interval_days``."""

    operator = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="contracts_served"
    )
    hospital = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="service_contracts"
    )
    modality = models.CharField(max_length=2, choices=Modality.choices)
    interval_days = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    active = models.BooleanField(default=True)
    starts_on = models.DateField(help_text="First day the service interval counts")
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_lookups = {"hospital": "hospital_id", "operator": "operator_id"}

    class Meta:
        ordering = ["hospital_id", "modality"]
        constraints = [
            models.UniqueConstraint(
                fields=["operator", "hospital", "modality"], name="service_contract_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(interval_days__gte=1), name="service_contract_interval_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.modality} every {self.interval_days} days at {self.hospital_id}"


class ServiceRequest(models.Model):
    """A hospital's ask for a modality, N patients, within a date window; dispatch plans it."""

    hospital = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="service_requests"
    )
    operator = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="service_requests_served"
    )
    modality = models.CharField(max_length=2, choices=Modality.choices)
    patients = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(PATIENTS_MIN), MaxValueValidator(PATIENTS_MAX)]
    )
    earliest_date = models.DateField()
    latest_date = models.DateField()
    priority = models.CharField(
        max_length=10, choices=RequestPriority.choices, default=RequestPriority.ROUTINE
    )
    notes = models.TextField(blank=True, max_length=2000)
    # Optional exams to book once a visit is fixed: [{procedure, body_part, patient_id,
    # patient_name, sex, birth_date}], validated by the service (patient data: audited reads).
    exams = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=10, choices=ServiceRequestStatus.choices, default=ServiceRequestStatus.SUBMITTED
    )
    decline_reason = models.CharField(max_length=500, blank=True)
    visit = models.ForeignKey(
        "fleet.Visit",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="service_requests",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    tenant_lookups = {"hospital": "hospital_id", "operator": "operator_id"}

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["operator", "status"]),
            models.Index(fields=["hospital", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(earliest_date__lte=models.F("latest_date")),
                name="service_request_window_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(patients__gte=PATIENTS_MIN, patients__lte=PATIENTS_MAX),
                name="service_request_patients_range",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ServiceRequestStatus.values),
                name="service_request_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.modality} x{self.patients} for {self.hospital_id} ({self.status})"


class PlanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PlanKind(models.TextChoices):
    RUN = "run", "Planner run"  # a dispatcher asked for it
    REPLAN = "replan", "Re-plan"  # a breakdown, a cancelled request or an incident started it
    WHATIF = "whatif", "What-if"  # a unit withdrawal asks how the fleet does without it


class Plan(models.Model):
    """One planner run for an operator over a horizon: its input snapshot, result and stats."""

    operator = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="plans")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    start_date = models.DateField()
    days = models.PositiveSmallIntegerField()
    time_limit_s = models.FloatField(default=5.0)
    status = models.CharField(max_length=10, choices=PlanStatus.choices, default=PlanStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100, for the page")
    message = models.CharField(max_length=300, blank=True)
    inputs = models.JSONField(default=dict, blank=True, help_text="What the planner saw")
    visits = models.JSONField(default=list, blank=True)
    unserved = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=10, choices=PlanKind.choices, default=PlanKind.RUN)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it ran (re-plans, what-ifs)")
    excluded_units = models.JSONField(
        default=list, blank=True, help_text="Unit ids the planner must not use (what-if without them)"
    )
    base_plan = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The plan whose locked visits this run keeps",
    )
    auto_publish = models.BooleanField(default=False, help_text="Publish as soon as it is done (re-plans)")
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    publish_summary = models.JSONField(default=dict, blank=True, help_text="Visits created, moved, cancelled")

    organisation_lookup = "operator_id"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"plan {self.pk} {self.start_date} +{self.days}d ({self.status})"
