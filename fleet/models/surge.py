"""Emergency surge (incidents that need many units at one place fast) and unit withdrawals."""

__all__ = [
    "Incident",
    "IncidentStatus",
    "IncidentUnit",
    "RegionExit",
    "UnitWithdrawal",
    "WithdrawalOutcome",
]

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

_LAT = [MinValueValidator(-90), MaxValueValidator(90)]
_LON = [MinValueValidator(-180), MaxValueValidator(180)]


class IncidentStatus(models.TextChoices):
    DECLARED = "declared", "Declared"  # ranking and proposal shown, nothing moved yet
    DISPATCHED = "dispatched", "Dispatched"  # confirmed: units sent, routine visits rebooked
    CLOSED = "closed", "Closed"


class Incident(models.Model):
    """A disaster or mass-casualty event: units of some modalities are needed at one place."""

    operator = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="incidents")
    name = models.CharField(max_length=200)
    latitude = models.FloatField(validators=_LAT)
    longitude = models.FloatField(validators=_LON)
    hospital = models.ForeignKey(
        "core.Organisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="incidents_received",
        help_text="The hospital receiving the casualties, when the units work at one",
    )
    needs = models.JSONField(default=dict, help_text='Units needed per modality, e.g. {"CT": 2, "DX": 1}')
    starts_at = models.DateTimeField()
    days = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(30)],
        help_text="Expected length in days: the units sent do no routine work from the start day",
    )
    status = models.CharField(max_length=12, choices=IncidentStatus.choices, default=IncidentStatus.DECLARED)
    notes = models.TextField(blank=True, max_length=2000)
    proposal = models.JSONField(
        default=dict, blank=True, help_text="Ranking and visits to cancel, as proposed"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "operator_id"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"incident {self.pk} {self.name} ({self.status})"


class IncidentUnit(models.Model):
    """A unit sent to an incident: its ETA when sent, and when it got there."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="units")
    unit = models.ForeignKey("fleet.Unit", on_delete=models.PROTECT, related_name="incident_assignments")
    eta_minutes = models.FloatField()
    finishes_current_visit = models.BooleanField(default=False)
    dispatched_at = models.DateTimeField()
    arrived_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "incident__operator_id"

    class Meta:
        ordering = ["incident_id", "eta_minutes"]
        constraints = [models.UniqueConstraint(fields=["incident", "unit"], name="incident_unit_unique")]

    def __str__(self) -> str:
        return f"{self.unit_id} to incident {self.incident_id}"


class WithdrawalOutcome(models.TextChoices):
    REFUSED = "refused", "Refused"  # hospitals would miss their interval
    WITHDRAWN = "withdrawn", "Withdrawn"  # every hospital covered (for a region: service ended)
    OVERRIDDEN = "overridden", "Withdrawn by override"  # an admin accepted the gap, with a reason


class UnitWithdrawal(models.Model):
    """One attempt to take a unit out of the fleet for good, and what came of it."""

    unit = models.ForeignKey("fleet.Unit", on_delete=models.CASCADE, related_name="withdrawals")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=12, choices=WithdrawalOutcome.choices)
    uncovered = models.JSONField(
        default=list, blank=True, help_text="Hospitals that would miss their interval"
    )
    whatif_plan = models.ForeignKey(
        "fleet.Plan", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True, max_length=2000)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"withdrawal of {self.unit_id}: {self.outcome}"


class RegionExit(models.Model):
    """One attempt to end an operator's service in a region, and what came of it."""

    operator = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="region_exits")
    region_code = models.CharField(max_length=32)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=12, choices=WithdrawalOutcome.choices)
    uncovered = models.JSONField(default=list, blank=True, help_text="Contracts no other operator takes over")
    contracts_ended = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True, max_length=2000)

    organisation_lookup = "operator_id"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"exit of {self.operator_id} from {self.region_code}: {self.outcome}"
