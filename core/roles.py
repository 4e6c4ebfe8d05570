"""Roles as Django groups, and the model permissions each role carries.

Later apps extend ``ROLE_PERMISSIONS``; ``roles_sync`` (run after every migrate) makes the
groups match it, so permissions are data, reviewed in one place.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from core.choices import Role

ROLE_PERMISSIONS: dict[str, set[str]] = {
    Role.DISPATCHER: {"core.view_organisation"},
    Role.TECHNOLOGIST: set(),
    Role.RADIOLOGIST: set(),
    Role.HOSPITAL_USER: set(),
    Role.QC_OFFICER: {"core.view_organisation", "core.view_auditentry"},
    Role.ADMIN: {
        "core.view_organisation",
        "core.add_organisation",
        "core.change_organisation",
        "core.view_user",
        "core.add_user",
        "core.change_user",
        "core.view_auditentry",
    },
}


def roles_sync() -> None:
    """Create one group per role and set its permissions to exactly ``ROLE_PERMISSIONS``."""
    for role in Role.values:
        group, _ = Group.objects.get_or_create(name=role)
        wanted = ROLE_PERMISSIONS.get(role, set())
        perms = []
        for dotted in sorted(wanted):
            app_label, codename = dotted.split(".", 1)
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:  # the app defining it may not be migrated yet
                perms.append(perm)
        group.permissions.set(perms)
