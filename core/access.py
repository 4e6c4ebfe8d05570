"""Tenancy: which rows a user may reach (docs/security.md, "Tenancy model").

Every user belongs to one organisation of one kind (operator, hospital, reading group). A model
that holds tenant data says, for each kind, the ORM path from a row to the organisation of that
kind that may see it:

- ``tenant_lookups = {OrganisationKind.HOSPITAL: "hospital_id", OrganisationKind.OPERATOR:
  "unit__operator_id", ...}`` — a kind left out sees none of these rows;
- or only ``organisation_lookup`` (the owner's id): then only the owner's own organisation,
  whatever its kind, sees the row (units and plans: the operator; a pool: its reading group).

Nobody but a superuser (the platform's own administrators) sees across organisations: an
operator's staff see the patients *their* vans scanned, not every hospital's. Out-of-scope
objects are reported as not found, so ids of other organisations' objects reveal nothing.
Role checks inside one organisation (a dispatcher does not open images) are the selectors'.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from core.exceptions import NotFound
from core.models import User

M = TypeVar("M", bound=models.Model)


def _active(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def user_is_platform_wide(user) -> bool:
    """Only superusers see every tenant's rows (no role of any organisation does)."""
    return _active(user) and bool(user.is_superuser)


def user_organisation_kind(user) -> str | None:
    """The kind of the user's organisation, or None (no organisation, or signed out)."""
    if not _active(user):
        return None
    org = user.organisation
    return None if org is None else str(org.kind)


def user_in_operator(user, operator_id: int | None) -> bool:
    """The user is staff of this operator (or a superuser)."""
    if user_is_platform_wide(user):
        return True
    return (
        _active(user)
        and operator_id is not None
        and user.organisation_id == operator_id
        and user_organisation_kind(user) == "operator"
    )


def operator_staff(operator_id: int | None, *roles: str) -> models.QuerySet[User]:
    """Active users of this operator holding one of ``roles`` (who an operator's alerts go to).

    With no operator (a study from an unknown AE title belongs to none), the platform's active
    superusers: never every operator's staff, since tenants are walls.
    """
    active = User.objects.filter(is_active=True)
    if operator_id is None:
        return active.filter(is_superuser=True)
    return active.filter(organisation_id=operator_id, groups__name__in=roles).distinct()


def tenant_lookup(model: type[models.Model], kind: str) -> str | None:
    """The ORM path from ``model`` to the organisation of ``kind`` that may see it (None: none)."""
    lookups = getattr(model, "tenant_lookups", None)
    if lookups is not None:
        return lookups.get(kind)
    own = getattr(model, "organisation_lookup", None)
    if own is None:
        raise ImproperlyConfigured(
            f"{model.__name__} declares neither tenant_lookups nor organisation_lookup"
        )
    return own


def scope_for_user(user, queryset: models.QuerySet[M]) -> models.QuerySet[M]:
    """The rows of ``queryset`` in the user's tenancy (all for a superuser, none when signed out)."""
    model = queryset.model
    if getattr(model, "tenant_lookups", None) is None and getattr(model, "organisation_lookup", None) is None:
        raise ImproperlyConfigured(
            f"{model.__name__} declares neither tenant_lookups nor organisation_lookup"
        )
    if user_is_platform_wide(user):
        return queryset
    kind = user_organisation_kind(user)
    if kind is None:
        return queryset.none()
    lookup = tenant_lookup(model, kind)
    if lookup is None:
        return queryset.none()
    return queryset.filter(**{lookup: user.organisation_id})


def get_for_user(user, queryset: models.QuerySet[M], **lookup) -> M:
    """The one object matching ``lookup`` within the user's scope, else ``NotFound``."""
    obj = scope_for_user(user, queryset).filter(**lookup).first()
    if obj is None:
        raise NotFound(f"No {queryset.model._meta.verbose_name} matches the given id")
    return obj
