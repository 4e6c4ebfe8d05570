"""Roles as Django groups, and the model permissions each role carries.

Later apps extend ``ROLE_PERMISSIONS``; ``roles_sync`` (run after every migrate) makes the
groups match it, so permissions are data, reviewed in one place.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from core.choices import Role

# The fleet register (units, licences, crew credentials, maintenance windows, daily QC).
_FLEET_VIEW = {
    "fleet.view_unit",
    "fleet.view_licence",
    "fleet.view_crewmember",
    "fleet.view_crewcredential",
    "fleet.view_maintenancewindow",
    "fleet.view_equipmentqc",
    "fleet.view_unitstatuschange",
    "fleet.view_visit",
}
_FLEET_EDIT = {
    "fleet.change_unit",
    "fleet.add_licence",
    "fleet.add_crewcredential",
    "fleet.add_maintenancewindow",
    "fleet.change_visit",
}

# Service requests and hospital contracts (fleet/models/planning.py).
_REQUESTS_DISPATCH = {
    "fleet.view_servicerequest",
    "fleet.change_servicerequest",
    "fleet.view_servicecontract",
}
_REQUESTS_HOSPITAL = {"fleet.view_servicerequest", "fleet.add_servicerequest", "fleet.view_servicecontract"}
_CONTRACTS_EDIT = {"fleet.add_servicecontract", "fleet.change_servicecontract"}

ROLE_PERMISSIONS: dict[str, set[str]] = {
    Role.DISPATCHER: {"core.view_organisation", *_FLEET_VIEW, *_FLEET_EDIT, *_REQUESTS_DISPATCH},
    Role.TECHNOLOGIST: {"fleet.view_unit", "fleet.view_equipmentqc", "fleet.add_equipmentqc"},
    Role.RADIOLOGIST: set(),
    Role.HOSPITAL_USER: {*_REQUESTS_HOSPITAL},
    Role.QC_OFFICER: {
        "core.view_organisation",
        "core.view_auditentry",
        *_FLEET_VIEW,
        "fleet.add_equipmentqc",
    },
    Role.ADMIN: {
        "core.view_organisation",
        "core.add_organisation",
        "core.change_organisation",
        "core.view_user",
        "core.add_user",
        "core.change_user",
        "core.view_auditentry",
        *_FLEET_VIEW,
        *_FLEET_EDIT,
        "fleet.add_equipmentqc",
        *_REQUESTS_DISPATCH,
        *_CONTRACTS_EDIT,
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
