"""A small plannable fleet for the plan pages: crewed, licensed CT vans and hospitals with requests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from core.models import Organisation, User
from fleet.models import ServiceRequest, Unit
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import (
    CrewCredentialFactory,
    CrewMemberFactory,
    OperatorFactory,
    UnitFactory,
    license_unit,
)
from tests.fleet.map_factories import dispatcher
from tests.fleet.request_factories import ServiceRequestFactory

# Hubei county towns (lat, lon), an hour or two apart by road.
PLACES = [
    ("Zigui County People's Hospital", 30.83, 110.98),
    ("Xingshan County Hospital", 31.35, 110.75),
    ("Yidu City Hospital", 30.38, 111.45),
    ("Dangyang People's Hospital", 30.82, 111.79),
    ("Zhijiang People's Hospital", 30.42, 111.76),
]


@dataclass
class PlanFleet:
    operator: Organisation
    units: list[Unit]
    hospitals: list[Organisation]
    requests: list[ServiceRequest]
    unservable: ServiceRequest
    dispatcher: User
    start: dt.date


def crewed_unit(operator: Organisation, *, name: str, modality: str = "CT") -> Unit:
    """A unit the planner can use: every licence valid, and a credentialed radiographer aboard."""
    unit = UnitFactory(
        operator=operator,
        name=name,
        modality=modality,
        depot_name="Yichang depot",
        depot_latitude=30.69,
        depot_longitude=111.29,
    )
    license_unit(unit, expires_on=timezone.localdate() + dt.timedelta(days=365))
    member = CrewMemberFactory(operator=operator, unit=unit)
    CrewCredentialFactory(crew_member=member)
    return unit


def plan_fleet(*, username: str | None = None, hospitals: int = 4) -> PlanFleet:
    """Two crewed CT vans, ``hospitals`` hospitals each asking for CT in the next days, and one
    MR request no unit can serve (the operator has no MRI van)."""
    operator = OperatorFactory(name="Caravan Plan Test Operator")
    start = timezone.localdate() + dt.timedelta(days=1)
    units = [crewed_unit(operator, name="Plan CT 1"), crewed_unit(operator, name="Plan CT 2")]
    places = [HospitalFactory(name=n, latitude=lat, longitude=lon) for n, lat, lon in PLACES[:hospitals]]
    requests = [
        ServiceRequestFactory(
            operator=operator,
            hospital=hospital,
            patients=6 + index,
            earliest_date=start,
            latest_date=start + dt.timedelta(days=2),
            priority="urgent" if index == 0 else "routine",
        )
        for index, hospital in enumerate(places)
    ]
    unservable = ServiceRequestFactory(
        operator=operator,
        hospital=places[0],
        modality="MR",
        patients=4,
        earliest_date=start,
        latest_date=start + dt.timedelta(days=2),
    )
    return PlanFleet(
        operator=operator,
        units=units,
        hospitals=places,
        requests=requests,
        unservable=unservable,
        dispatcher=dispatcher(operator, username=username),
        start=start,
    )
