from django.contrib.auth.models import AbstractUser
from django.db import models, transaction

from core.choices import Role


class User(AbstractUser):
    """A person who logs in; belongs to one organisation and holds roles through groups."""

    organisation = models.ForeignKey(
        "core.Organisation", on_delete=models.PROTECT, related_name="users", null=True, blank=True
    )

    organisation_lookup = "organisation_id"
    _roles_cache: set[str] | None = None

    class Meta:
        ordering = ["username"]

    def save(self, *args, **kwargs):
        # set_password() keeps the new raw password in _password until this save; every way a
        # password changes (password forms, admin, changepassword) passes here, and a hash
        # upgrade at login clears it first, so it is not taken for a change.
        existing = not self._state.adding
        password_changed = existing and getattr(self, "_password", None) is not None
        with transaction.atomic():
            super().save(*args, **kwargs)
            if password_changed or (existing and not self.is_active):
                # A changed password or a deactivation ends the user's API tokens (docs/security.md).
                from core.services.api_tokens import api_tokens_revoke_for_user

                api_tokens_revoke_for_user(
                    user=self, reason="password_changed" if password_changed else "deactivated"
                )

    @property
    def roles(self) -> set[str]:
        """Role names held, cached per instance (groups are named after roles)."""
        cached = getattr(self, "_roles_cache", None)
        if cached is None:
            names = set(self.groups.values_list("name", flat=True)) if self.pk else set()
            cached = {name for name in names if name in Role.values}
            self._roles_cache = cached
        return cached

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def primary_role(self) -> str:
        """The role recorded in audit entries: the first held, in Role order."""
        for role in Role.values:
            if role in self.roles:
                return role
        return "superuser" if self.is_superuser else ""
