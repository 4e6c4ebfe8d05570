"""Tele-reading. The foundation holds the reader profile the demo needs; the reading issue extends it."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class Radiologist(models.Model):
    """A remote reader's profile: subspecialties, regions licensed in, shift and load limit."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="radiologist"
    )
    subspecialties = models.JSONField(default=list, blank=True)
    licensed_regions = models.JSONField(default=list, blank=True)
    on_shift = models.BooleanField(default=False)
    max_concurrent = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])

    organisation_lookup = "user__organisation_id"

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.username
