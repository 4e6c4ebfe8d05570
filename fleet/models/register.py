"""Fleet register. The foundation holds the minimum the demo needs; the fleet issue extends it."""

__all__ = ["CrewMember", "Unit", "Visit", "ae_title_validator"]

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from fleet.choices import CrewRole, Modality, UnitStatus, VisitStatus

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
    created_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["date", "unit_id", "sequence"]
        indexes = [models.Index(fields=["unit", "date"]), models.Index(fields=["hospital", "date"])]

    def __str__(self) -> str:
        return f"{self.unit} at {self.hospital} on {self.date}"
