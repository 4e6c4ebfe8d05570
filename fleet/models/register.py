"""Fleet register. The foundation holds the minimum the demo needs; the fleet issue extends it."""

__all__ = [
    "CrewCredential",
    "CrewMember",
    "EquipmentQC",
    "Licence",
    "MaintenanceWindow",
    "Unit",
    "UnitStatusChange",
    "Visit",
    "ae_title_validator",
]

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from fleet.choices import (
    CredentialKind,
    CrewRole,
    EquipmentQCResult,
    LicenceKind,
    Modality,
    UnitStatus,
    VisitStatus,
)

ae_title_validator = RegexValidator(
    r"^[A-Z0-9_\-]{1,16}$", "AE titles are 1-16 characters: capitals, digits, '_' or '-'"
)


class Unit(models.Model):
    """A vehicle-mounted scanner (CT, MRI or DR van) run by the operator."""

    operator = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="units")
    name = models.CharField(max_length=100, unique=True)
    modality = models.CharField(max_length=2, choices=Modality.choices)
    scanner_model = models.CharField(max_length=120, blank=True)
    ae_title = models.CharField(max_length=16, unique=True, validators=[ae_title_validator])
    capacity_per_day = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    depot_name = models.CharField(max_length=120)
    depot_latitude = models.FloatField(validators=[MinValueValidator(-90), MaxValueValidator(90)])
    depot_longitude = models.FloatField(validators=[MinValueValidator(-180), MaxValueValidator(180)])
    status = models.CharField(max_length=20, choices=UnitStatus.choices, default=UnitStatus.AVAILABLE)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "operator_id"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.modality})"


class CrewMember(models.Model):
    """A person working on the vans (driver, technologist, radiographer)."""

    operator = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="crew")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="crew_member"
    )
    full_name = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=CrewRole.choices)
    unit = models.ForeignKey(Unit, on_delete=models.SET_NULL, null=True, blank=True, related_name="crew")

    organisation_lookup = "operator_id"

    class Meta:
        ordering = ["full_name"]
        constraints = [models.UniqueConstraint(fields=["operator", "full_name"], name="crew_unique_name")]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.role})"


class Visit(models.Model):
    """A unit at a hospital on a day (planned by dispatch; arrival/departure from telemetry)."""

    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="visits")
    hospital = models.ForeignKey("core.Organisation", on_delete=models.PROTECT, related_name="visits")
    date = models.DateField(db_index=True)
    sequence = models.PositiveSmallIntegerField(
        default=1, help_text="Order of the stop on the unit's route that day"
    )
    status = models.CharField(max_length=20, choices=VisitStatus.choices, default=VisitStatus.PLANNED)
    exams_booked = models.PositiveSmallIntegerField(default=0)
    arrived_at = models.DateTimeField(null=True, blank=True)
    departed_at = models.DateTimeField(null=True, blank=True)
    crew = models.ManyToManyField(CrewMember, blank=True, related_name="visits")
    locked = models.BooleanField(
        default=False, help_text="Kept on its unit and day by every re-plan (the dispatcher locked it)"
    )
    plan = models.ForeignKey(
        "fleet.Plan",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="published_visits",
        help_text="The plan that published (or last moved) this visit",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_lookups = {"operator": "unit__operator_id", "hospital": "hospital_id"}

    class Meta:
        ordering = ["date", "unit_id", "sequence"]
        indexes = [models.Index(fields=["unit", "date"]), models.Index(fields=["hospital", "date"])]

    def __str__(self) -> str:
        return f"{self.unit} at {self.hospital} on {self.date}"


class Licence(models.Model):
    """A permit held by a unit; a required one missing or expired blocks dispatch."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="licences")
    kind = models.CharField(max_length=30, choices=LicenceKind.choices)
    number = models.CharField(max_length=64)
    issuer = models.CharField(max_length=150)
    expires_on = models.DateField(help_text="Last day on which the licence is valid")
    created_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["unit_id", "kind", "-expires_on"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "kind", "number"], name="licence_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number} of {self.unit_id}"


class CrewCredential(models.Model):
    """A crew member's qualification (radiographer certificate, MR-safety training, driving licence)."""

    crew_member = models.ForeignKey(CrewMember, on_delete=models.CASCADE, related_name="credentials")
    kind = models.CharField(max_length=30, choices=CredentialKind.choices)
    number = models.CharField(max_length=64, blank=True)
    expires_on = models.DateField(help_text="Last day on which the credential is valid")
    created_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "crew_member__operator_id"

    class Meta:
        ordering = ["crew_member_id", "kind", "-expires_on"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.crew_member_id}"


class MaintenanceWindow(models.Model):
    """A planned period in which the unit is in the workshop and cannot be dispatched."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="maintenance_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["unit_id", "starts_at"]
        indexes = [models.Index(fields=["unit", "ends_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="maintenance_window_positive"
            )
        ]

    def __str__(self) -> str:
        return f"maintenance of {self.unit_id} {self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%Y-%m-%d %H:%M}"


class EquipmentQC(models.Model):
    """A daily phantom check of a unit's scanner; the platform computes the result."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="qc_checks")
    performed_at = models.DateTimeField()
    day = models.DateField(help_text="The unit's local day the check counts for")
    performed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    measurements = models.JSONField()
    tolerances = models.JSONField(help_text="The tolerances the result was computed against")
    result = models.CharField(max_length=4, choices=EquipmentQCResult.choices)
    failures = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["unit_id", "-performed_at", "-id"]
        indexes = [models.Index(fields=["unit", "day"])]

    def __str__(self) -> str:
        return f"QC {self.result} of {self.unit_id} at {self.performed_at:%Y-%m-%d %H:%M}"


class UnitStatusChange(models.Model):
    """One transition of a unit's status: who (None: the system, e.g. a geofence), when, why."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=UnitStatus.choices)
    to_status = models.CharField(max_length=20, choices=UnitStatus.choices)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["unit_id", "-at", "-id"]
        indexes = [models.Index(fields=["unit", "at"])]

    def __str__(self) -> str:
        return f"{self.unit_id}: {self.from_status} -> {self.to_status} at {self.at:%Y-%m-%d %H:%M}"
