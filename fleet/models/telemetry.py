"""Telemetry: GPS fixes from the vans, device tokens, geofenced sites and their events."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from fleet.choices import GeofenceEventKind, SiteKind

__all__ = ["DeviceToken", "GeofenceEvent", "GpsFix", "Site", "UnitPosition", "UnitSiteState"]

_LAT = [MinValueValidator(-90), MaxValueValidator(90)]
_LON = [MinValueValidator(-180), MaxValueValidator(180)]


class DeviceToken(models.Model):
    """The secret a van's GPS device sends telemetry with (only its SHA-256 is stored)."""

    unit = models.ForeignKey("fleet.Unit", on_delete=models.CASCADE, related_name="device_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    organisation_lookup = "unit__operator_id"

    def __str__(self) -> str:
        return f"device token {self.pk} of {self.unit_id}"


class Site(models.Model):
    """A geofenced place: a hospital the vans visit or a depot they return to."""

    kind = models.CharField(max_length=10, choices=SiteKind.choices)
    name = models.CharField(max_length=150)
    organisation = models.ForeignKey(
        "core.Organisation", on_delete=models.CASCADE, null=True, blank=True, related_name="sites"
    )
    latitude = models.FloatField(validators=_LAT)
    longitude = models.FloatField(validators=_LON)
    radius_m = models.PositiveIntegerField(default=300, validators=[MinValueValidator(20)])

    class Meta:
        ordering = ["kind", "name"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="site_unique_kind_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class GpsFix(models.Model):
    """One GPS position reported by a van's device (device time and arrival time both kept)."""

    unit = models.ForeignKey("fleet.Unit", on_delete=models.CASCADE, related_name="fixes")
    fix_id = models.CharField(max_length=64, null=True, blank=True)
    device_time = models.DateTimeField()
    received_at = models.DateTimeField()
    latitude = models.FloatField(validators=_LAT)
    longitude = models.FloatField(validators=_LON)
    speed_mps = models.FloatField(null=True, blank=True)
    heading_deg = models.FloatField(null=True, blank=True)
    flagged = models.BooleanField(default=False, help_text="Not trusted (e.g. an impossible jump)")
    flag_reason = models.CharField(max_length=200, blank=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["unit_id", "device_time"]
        indexes = [models.Index(fields=["unit", "device_time"]), models.Index(fields=["received_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "fix_id"],
                condition=models.Q(fix_id__isnull=False),
                name="gpsfix_unique_fix_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.unit_id} @ {self.device_time:%Y-%m-%d %H:%M:%S}"


class UnitPosition(models.Model):
    """A unit's latest trusted position by device time (not by arrival order)."""

    unit = models.OneToOneField("fleet.Unit", on_delete=models.CASCADE, related_name="position")
    latitude = models.FloatField(validators=_LAT)
    longitude = models.FloatField(validators=_LON)
    speed_mps = models.FloatField(null=True, blank=True)
    heading_deg = models.FloatField(null=True, blank=True)
    device_time = models.DateTimeField()
    received_at = models.DateTimeField()

    organisation_lookup = "unit__operator_id"

    def __str__(self) -> str:
        return f"{self.unit_id} last seen {self.device_time:%Y-%m-%d %H:%M:%S}"


class UnitSiteState(models.Model):
    """Which site a unit is inside now, for geofence hysteresis (one arrival, one departure)."""

    unit = models.OneToOneField("fleet.Unit", on_delete=models.CASCADE, related_name="site_state")
    site = models.ForeignKey(Site, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.unit_id} in {self.site_id or 'no site'}"


class GeofenceEvent(models.Model):
    """A unit arrived at or departed from a site (from telemetry)."""

    unit = models.ForeignKey("fleet.Unit", on_delete=models.CASCADE, related_name="geofence_events")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=GeofenceEventKind.choices)
    at = models.DateTimeField(help_text="Device time of the fix that decided it")
    fix = models.ForeignKey(GpsFix, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    visit = models.ForeignKey(
        "fleet.Visit", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    organisation_lookup = "unit__operator_id"

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["unit", "at"])]

    def __str__(self) -> str:
        return f"{self.unit_id} {self.kind} {self.site_id} at {self.at:%H:%M}"
