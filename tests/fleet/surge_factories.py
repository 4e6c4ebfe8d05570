"""A hand-made surge instance whose ETA ranking is known by hand (see test_surge.py).

Incident at (30.50, 111.00), needs 2 CT. Every unit sits on the meridian 111.00, so its road
distance is |dlat| x 110.86 km/deg (the WGS84 meridian arc near 30.5 N) x 1.3, driven at 50 km/h:
``MIN_PER_DEG`` minutes per degree of latitude.

=========  ===========  ==========================  ======================================
unit       status       where                        ETA (min)
=========  ===========  ==========================  ======================================
CT F       en_route     GPS 30.40 (0.10 deg)         17.29
CT B       scanning     GPS 30.55 (0.05 deg)         leave now 15 + 8.65 = 23.65;
                        4 exams left (6 - 2 done)    finish 4 x 15 + 15 + 8.65 = 83.65
CT A       available    GPS 30.70 (0.20 deg)         34.59
CT C       available    no GPS, depot 31.00 (0.5)    86.47
CT D       out of service                            excluded
CT E       available    no licences                  excluded
MR 1       available    at the incident              not offered for CT
=========  ===========  ==========================  ======================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from core.choices import Role
from dicom.choices import OrderStatus
from fleet.models import Unit, Visit
from tests.core.factories import UserFactory
from tests.dicom.factories import OrderFactory
from tests.fleet.factories import license_unit
from tests.fleet.map_factories import (
    HubeiHospitalFactory,
    OperatorFactory,
    UnitFactory,
    UnitPositionFactory,
    VisitFactory,
    dispatcher,
)
from tests.fleet.request_factories import ServiceRequestFactory

INCIDENT = (30.50, 111.00)
MIN_PER_DEG = 110.86 * 1.3 / 50 * 60  # 172.94


@dataclass
class Surge:
    operator: object
    dispatcher: object
    units: dict[str, Unit]
    hospitals: dict[str, object]
    hospital_users: dict[str, list] = field(default_factory=dict)
    visits: dict[str, Visit] = field(default_factory=dict)
    requests: dict[str, object] = field(default_factory=dict)
    orders: dict[str, object] = field(default_factory=dict)


def _unit(
    operator, name, *, status="available", modality="CT", at=None, licensed=True, depot=(31.00, 111.00)
):
    unit = UnitFactory(
        operator=operator,
        name=name,
        modality=modality,
        status=status,
        depot_latitude=depot[0],
        depot_longitude=depot[1],
    )
    if at is not None:
        UnitPositionFactory(unit=unit, latitude=at, longitude=111.00)
    if licensed:
        license_unit(unit)
    return unit


def build_surge() -> Surge:
    today = timezone.localdate()
    day = dt.timedelta(days=1)
    operator = OperatorFactory(name="Surge Operator")
    units = {
        "F": _unit(operator, "CT F", status="en_route", at=30.40),
        "B": _unit(operator, "CT B", status="scanning", at=30.55),
        "A": _unit(operator, "CT A", at=30.70),
        "C": _unit(operator, "CT C"),
        "D": _unit(operator, "CT D", status="out_of_service", at=30.50),
        "E": _unit(operator, "CT E", at=30.51, licensed=False),
        "M": _unit(operator, "MR 1", modality="MR", at=30.50),
    }
    hospitals = {key: HubeiHospitalFactory(name=f"Hospital {key}") for key in ("1", "2", "3")}
    users = {
        "1": [UserFactory(organisation=hospitals["1"], roles=[Role.HOSPITAL_USER]) for _ in range(2)],
        "2": [UserFactory(organisation=hospitals["2"], roles=[Role.HOSPITAL_USER])],
        "3": [UserFactory(organisation=hospitals["3"], roles=[Role.HOSPITAL_USER])],
    }
    surge = Surge(operator, dispatcher(operator), units, hospitals, users)
    v = surge.visits
    v["F_today"] = VisitFactory(
        unit=units["F"], hospital=hospitals["1"], date=today, status="en_route", exams_booked=5
    )
    v["F_done"] = VisitFactory(
        unit=units["F"], hospital=hospitals["2"], date=today, status="done", sequence=0
    )
    v["F_tomorrow"] = VisitFactory(unit=units["F"], hospital=hospitals["2"], date=today + day, exams_booked=3)
    v["F_later"] = VisitFactory(unit=units["F"], hospital=hospitals["2"], date=today + 2 * day)
    v["B_current"] = VisitFactory(
        unit=units["B"],
        hospital=hospitals["3"],
        date=today,
        status="on_site",
        exams_booked=6,
        arrived_at=timezone.now() - dt.timedelta(hours=1),
    )
    v["B_tomorrow"] = VisitFactory(unit=units["B"], hospital=hospitals["1"], date=today + day, locked=True)
    v["A_tomorrow"] = VisitFactory(unit=units["A"], hospital=hospitals["1"], date=today + day)
    for _ in range(2):
        OrderFactory(
            unit=units["B"],
            hospital=hospitals["3"],
            scheduled_date=today,
            status=OrderStatus.ACQUIRED,
            created_by=users["3"][0],
        )
    surge.orders["F_today"] = OrderFactory(
        unit=units["F"], hospital=hospitals["1"], scheduled_date=today, created_by=users["1"][0]
    )
    r = surge.requests
    for key, visit_key, hospital in (("F_today", "F_today", "1"), ("F_tomorrow", "F_tomorrow", "2")):
        r[key] = ServiceRequestFactory(
            hospital=hospitals[hospital],
            operator=operator,
            status="scheduled",
            visit=v[visit_key],
            earliest_date=today,
            latest_date=today + 5 * day,
            created_by=users[hospital][0],
        )
    r["A_tomorrow"] = ServiceRequestFactory(
        hospital=hospitals["1"],
        operator=operator,
        status="scheduled",
        visit=v["A_tomorrow"],
        created_by=users["1"][0],
    )
    return surge
