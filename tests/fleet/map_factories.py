"""Factories for the fleet map and day view tests: operators' staff, sites, positions, visits, crew."""

from __future__ import annotations

import datetime

import factory
from django.utils import timezone

from core.choices import OrganisationKind, Role
from fleet.models import CrewMember, Site, UnitPosition, Visit
from tests.core.factories import OrganisationFactory, UserFactory
from tests.fleet.factories import OperatorFactory, UnitFactory

__all__ = [
    "CrewMemberFactory",
    "HubeiHospitalFactory",
    "OperatorFactory",
    "SiteFactory",
    "UnitFactory",
    "UnitPositionFactory",
    "VisitFactory",
    "dispatcher",
    "hospital_user",
]


class HubeiHospitalFactory(OrganisationFactory):
    kind = OrganisationKind.HOSPITAL
    name = factory.Sequence(lambda n: f"Hubei County Hospital {n}")
    latitude = 30.6
    longitude = 114.3


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    kind = "hospital"
    name = factory.Sequence(lambda n: f"Site {n}")
    latitude = 30.59
    longitude = 114.31


class UnitPositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UnitPosition

    unit = factory.SubFactory(UnitFactory)
    latitude = 30.7
    longitude = 111.3
    speed_mps = 12.5
    heading_deg = 90.0
    device_time = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(seconds=30))
    received_at = factory.LazyFunction(timezone.now)


class CrewMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CrewMember

    operator = factory.SelfAttribute("unit.operator")
    unit = factory.SubFactory(UnitFactory)
    full_name = factory.Sequence(lambda n: f"Crew Member {n}")
    role = "technologist"


class VisitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visit

    unit = factory.SubFactory(UnitFactory)
    hospital = factory.SubFactory(HubeiHospitalFactory)
    date = factory.LazyFunction(timezone.localdate)
    sequence = 1
    status = "planned"
    exams_booked = 0


def dispatcher(operator, *, username: str | None = None, role: str = Role.DISPATCHER):
    kwargs = {"username": username} if username else {}
    return UserFactory(organisation=operator, roles=[role], **kwargs)


def hospital_user(hospital=None, *, username: str | None = None):
    kwargs = {"username": username} if username else {}
    return UserFactory(organisation=hospital or HubeiHospitalFactory(), roles=[Role.HOSPITAL_USER], **kwargs)
