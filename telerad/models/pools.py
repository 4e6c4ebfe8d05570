from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class ReadingPool(models.Model):
    """A reading contract: a reading group's readers serving hospitals/regions for some modalities."""

    reading_group = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="reading_pools"
    )
    name = models.CharField(max_length=120, unique=True)
    hospitals = models.ManyToManyField("core.Organisation", blank=True, related_name="served_by_pools")
    # Region codes served (a hospital in one of them is served even if not listed by name).
    regions = models.JSONField(default=list, blank=True)
    modalities = models.JSONField(default=list)  # e.g. ["CT", "MR"]
    # SLA per priority, minutes from routing to a final report.
    sla_stat_minutes = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    sla_urgent_minutes = models.PositiveIntegerField(default=240, validators=[MinValueValidator(1)])
    sla_routine_minutes = models.PositiveIntegerField(default=1440, validators=[MinValueValidator(1)])
    lead = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="led_pools"
    )
    is_active = models.BooleanField(default=True)
    # Share of signed reports sent to a second reader for peer review (0 to 100 %).
    peer_review_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=5,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )

    organisation_lookup = "reading_group_id"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Radiologist(models.Model):
    """A remote reader's profile: subspecialties, regions licensed in, shift and load limit."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="radiologist"
    )
    pools = models.ManyToManyField(ReadingPool, blank=True, related_name="readers")
    subspecialties = models.JSONField(default=list, blank=True)
    licensed_regions = models.JSONField(default=list, blank=True)
    on_shift = models.BooleanField(default=False)
    max_concurrent = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])

    organisation_lookup = "user__organisation_id"

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.username
