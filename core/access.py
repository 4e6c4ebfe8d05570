"""Organisation scoping: which rows a user may reach.

A model opts in with ``organisation_lookup`` (the ORM path to its owning organisation's id).
Staff of the operator organisation see across hospitals; everyone else sees only their own
organisation's rows. Out-of-scope objects are reported as not found, so ids of other
organisations' objects reveal nothing.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from core.choices import OrganisationKind
from core.exceptions import NotFound

M = TypeVar("M", bound=models.Model)


def user_is_cross_organisation(user) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    org = user.organisation
    return org is not None and org.kind == OrganisationKind.OPERATOR


def scope_for_user(user, queryset: models.QuerySet[M]) -> models.QuerySet[M]:
    lookup = getattr(queryset.model, "organisation_lookup", None)
    if lookup is None:
        raise ImproperlyConfigured(f"{queryset.model.__name__} does not declare organisation_lookup")
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    if user_is_cross_organisation(user):
        return queryset
    if user.organisation_id is None:
        return queryset.none()
    return queryset.filter(**{lookup: user.organisation_id})


def get_for_user(user, queryset: models.QuerySet[M], **lookup) -> M:
    """The one object matching ``lookup`` within the user's scope, else ``NotFound``."""
    obj = scope_for_user(user, queryset).filter(**lookup).first()
    if obj is None:
        raise NotFound(f"No {queryset.model._meta.verbose_name} matches the given id")
    return obj
