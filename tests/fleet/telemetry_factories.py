"""Factories and helpers for the telemetry tests (kept apart from factories.py to avoid clashes)."""

from __future__ import annotations

from datetime import datetime

import factory
from django.utils import timezone
from geopy.distance import geodesic
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from fleet.choices import SiteKind
from fleet.models import DeviceToken, Site, Unit, Visit
from fleet.services.telemetry import device_token_issue
from tests.core.factories import OrganisationFactory
from tests.fleet.factories import UnitFactory

HOSPITAL_LAT, HOSPITAL_LON = 30.7, 111.3
DEPOT_LAT, DEPOT_LON = 30.6, 111.2


class HospitalFactory(OrganisationFactory):
    kind = OrganisationKind.HOSPITAL
    name = factory.Sequence(lambda n: f"Telemetry hospital {n}")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    kind = SiteKind.HOSPITAL
    name = factory.Sequence(lambda n: f"Site {n}")
    organisation = factory.SubFactory(HospitalFactory)
    latitude = HOSPITAL_LAT
    longitude = HOSPITAL_LON
    radius_m = 300


class DepotSiteFactory(SiteFactory):
    kind = SiteKind.DEPOT
    organisation = None
    latitude = DEPOT_LAT
    longitude = DEPOT_LON


class VisitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visit

    unit = factory.SubFactory(UnitFactory)
    hospital = factory.SubFactory(HospitalFactory)
    date = factory.LazyFunction(timezone.localdate)


def device_key(unit: Unit, label: str = "gps") -> tuple[DeviceToken, str]:
    return device_token_issue(unit=unit, actor=None, label=label)


def offset(lat: float, lon: float, metres: float, bearing: float = 0.0) -> tuple[float, float]:
    """The point ``metres`` from (lat, lon) along ``bearing`` degrees (0 = north), geodesically."""
    point = geodesic(meters=metres).destination((lat, lon), bearing)
    return point.latitude, point.longitude


def fix(
    at: datetime,
    lat: float,
    lon: float,
    fix_id: str | None = None,
    speed: float = 10.0,
    heading: float = 90.0,
) -> dict:
    body = {"lat": lat, "lon": lon, "speed": speed, "heading": heading, "device_time": at.isoformat()}
    if fix_id is not None:
        body["fix_id"] = fix_id
    return body


def post_fixes(unit_id: int, key: str | None, fixes: list, *, scheme: str = "Device"):
    client = APIClient()
    headers = {} if key is None else {"HTTP_AUTHORIZATION": f"{scheme} {key}"}
    return client.post(f"/api/units/{unit_id}/telemetry/", {"fixes": fixes}, format="json", **headers)
