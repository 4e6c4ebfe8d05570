"""A unit's day: its visits in order with crew, times, orders, and exams done against booked."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.utils import timezone

from core.choices import Role
from tests.dicom.factories import OrderFactory
from tests.fleet.map_factories import (
    CrewMemberFactory,
    HubeiHospitalFactory,
    OperatorFactory,
    UnitFactory,
    VisitFactory,
    dispatcher,
    hospital_user,
)

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 11, 24)


def _url(unit, day=DAY) -> str:
    return f"/fleet/units/{unit.pk}/day/{day if isinstance(day, str) else day.isoformat()}/"


@pytest.fixture
def day():
    operator = OperatorFactory()
    unit = UnitFactory(operator=operator, name="Day Van")
    first = HubeiHospitalFactory(name="Zigui County People's Hospital")
    second = HubeiHospitalFactory(name="Xingshan County Hospital")
    elsewhere = HubeiHospitalFactory(name="Badong County Hospital")
    arrived = timezone.make_aware(datetime.datetime(2026, 11, 24, 8, 5))
    v1 = VisitFactory(unit=unit, hospital=first, date=DAY, sequence=1, status="done",
                      arrived_at=arrived, departed_at=arrived + datetime.timedelta(hours=3))  # fmt: skip
    v2 = VisitFactory(unit=unit, hospital=second, date=DAY, sequence=2, status="planned", exams_booked=6)
    VisitFactory(unit=unit, hospital=first, date=DAY + datetime.timedelta(days=1))  # another day
    driver = CrewMemberFactory(unit=unit, full_name="Wang Qiang", role="driver")
    tech = CrewMemberFactory(unit=unit, full_name="Chen Jing", role="technologist")
    v1.crew.set([driver, tech])

    def order(accession, *, hospital=first, status="scheduled", **kwargs):
        kwargs.setdefault("unit", unit)
        kwargs.setdefault("scheduled_date", DAY)
        return OrderFactory(hospital=hospital, status=status, accession_number=accession, **kwargs)

    orders = {
        "acq1": order("ACQ1", status="acquired"),
        "acq2": order("ACQ2", status="acquired"),
        "sch": order("SCH1"),
        "cxl": order("CXL1", status="cancelled"),
        "v2": order("V2A", hospital=second, status="in_progress"),
        "loose": order("LOOSE1", hospital=elsewhere),
        "other_day": order("NEXTDAY", scheduled_date=DAY + datetime.timedelta(days=1)),
        "other_unit": order("OTHERVAN", unit=UnitFactory(operator=operator)),
    }
    return {"operator": operator, "unit": unit, "v1": v1, "v2": v2, "orders": orders}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_day_view_lists_visits_orders_crew_and_counts(day, django_assert_max_num_queries):
    client = _client(dispatcher(day["operator"]))
    with django_assert_max_num_queries(14):
        response = client.get(_url(day["unit"]))
    assert response.status_code == 200
    html = response.content.decode()
    visits = re.findall(r'data-visit="(\d+)" data-status="(\w+)"', html)
    assert visits == [(str(day["v1"].pk), "done"), (str(day["v2"].pk), "planned")]
    assert html.index("1. Zigui County People&#x27;s Hospital") < html.index("2. Xingshan County Hospital")
    first, second = html.split("data-unplanned")[0].split('data-visit="')[1:3]
    # Done = acquired; booked = the visit's own count, else its orders less the cancelled.
    assert re.search(r"data-visit-done>2<.*data-visit-booked>3<", first, re.S)
    assert re.search(r"data-visit-done>0<.*data-visit-booked>6<", second, re.S)
    assert re.findall(r'data-order="(\w+)"', first) == ["ACQ1", "ACQ2", "CXL1", "SCH1"]
    assert re.findall(r'data-order="(\w+)"', second) == ["V2A"]
    assert "Chen Jing (Technologist), Wang Qiang (Driver)" in first
    assert "08:05" in first and "11:05" in first
    assert "none assigned" in second
    assert "data-day-done>2<" in html and "data-day-booked>9<" in html
    # An order of the day at a hospital the unit does not visit is shown apart.
    assert re.findall(r'data-order="(\w+)"', html.split("data-unplanned")[1]) == ["LOOSE1"]
    assert "NEXTDAY" not in html and "OTHERVAN" not in html
    # A logistics page: no patient identity.
    assert "ZHANG^SAN" not in html and day["orders"]["acq1"].patient_id not in html


def test_day_without_visits_says_so(day):
    html = _client(dispatcher(day["operator"], role=Role.ADMIN)).get(_url(day["unit"], "2026-11-20")).content
    assert b"data-no-visits" in html


@pytest.mark.parametrize("who", ["other_operator", "hospital", "technologist"])
def test_others_get_404(day, who):
    user = {
        "other_operator": lambda: dispatcher(OperatorFactory()),
        "hospital": lambda: hospital_user(day["v1"].hospital),
        "technologist": lambda: dispatcher(day["operator"], role=Role.TECHNOLOGIST),
    }[who]()
    response = _client(user).get(_url(day["unit"]))
    assert response.status_code == 404
    assert b"ACQ1" not in response.content


def test_anonymous_is_sent_to_login(day):
    response = Client().get(_url(day["unit"]))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("bad", ["2026-13-01", "20261124", "2026-1-24", "today"])
def test_bad_date_is_404(day, bad):
    assert _client(dispatcher(day["operator"])).get(_url(day["unit"], bad)).status_code == 404


def test_unknown_unit_is_404(day):
    client = _client(dispatcher(day["operator"]))
    assert client.get(f"/fleet/units/{day['unit'].pk + 999}/day/2026-11-24/").status_code == 404
