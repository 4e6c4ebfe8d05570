"""Organisations and users: creation and role assignment."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction

from core.choices import ROLE_ORGANISATION_KINDS, OrganisationKind, Role
from core.exceptions import Conflict, InvalidInput
from core.models import Organisation, User
from core.services.audit import audit_record


def _check_role(role: str) -> Role:
    if role not in Role.values:
        raise InvalidInput(
            f"Unknown role {role!r}; valid roles: {', '.join(Role.values)}", code="unknown_role"
        )
    return Role(role)


@transaction.atomic
def organisation_create(
    *,
    actor: User | None,
    name: str,
    kind: str,
    region_code: str,
    latitude: float | None = None,
    longitude: float | None = None,
    address: str = "",
) -> Organisation:
    if kind not in OrganisationKind.values:
        raise InvalidInput(f"Unknown organisation kind {kind!r}; valid: {', '.join(OrganisationKind.values)}")
    if not region_code:
        raise InvalidInput("region_code is required")
    if (latitude is None) != (longitude is None):
        raise InvalidInput("latitude and longitude go together")
    if latitude is not None and not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # type: ignore[operator]
        raise InvalidInput("latitude must be within [-90, 90] and longitude within [-180, 180]")
    if Organisation.objects.filter(name=name).exists():
        raise Conflict(f"An organisation named {name!r} already exists")
    org = Organisation.objects.create(
        name=name, kind=kind, region_code=region_code, latitude=latitude, longitude=longitude, address=address
    )
    audit_record(actor=actor, action="organisation.create", obj=org, details={"kind": kind})
    return org


@transaction.atomic
def user_assign_role(*, actor: User | None, user: User, role: str) -> None:
    """Give ``user`` a role; refused if the role is unknown or does not fit their organisation."""
    checked = _check_role(role)
    if user.organisation is None:
        raise InvalidInput(f"User {user.username!r} has no organisation; a role needs one")
    allowed = ROLE_ORGANISATION_KINDS[checked]
    if user.organisation.kind not in allowed:
        raise InvalidInput(
            f"Role {checked.value!r} belongs to organisations of kind {', '.join(sorted(allowed))}; "
            f"{user.organisation.name!r} is a {user.organisation.kind}",
            code="role_organisation_mismatch",
        )
    group, _ = Group.objects.get_or_create(name=checked.value)
    user.groups.add(group)
    user._roles_cache = None
    audit_record(actor=actor, action="user.role_assign", obj=user, details={"role": checked.value})


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    username: str,
    password: str | None,
    organisation: Organisation,
    roles: list[str],
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> User:
    for role in roles:
        _check_role(role)
    if User.objects.filter(username=username).exists():
        raise Conflict(f"A user named {username!r} already exists")
    user = User(
        username=username, organisation=organisation, email=email, first_name=first_name, last_name=last_name
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    audit_record(actor=actor, action="user.create", obj=user, details={"organisation": organisation.pk})
    for role in roles:
        user_assign_role(actor=actor, user=user, role=role)
    return user
