"""Coverage rows: every active contract against its interval, with exact dates and states."""

from __future__ import annotations

import datetime

import pytest

from fleet.selectors_coverage import CoverageRow, coverage_rows, withdrawal_uncovered
from fleet.selectors_requests import hospitals_overdue
from tests.fleet.factories import OperatorFactory, UnitFactory
from tests.fleet.map_factories import HubeiHospitalFactory, VisitFactory
from tests.fleet.request_factories import ServiceContractFactory

pytestmark = pytest.mark.django_db

ON = datetime.date(2026, 3, 31)


def _d(n: int) -> datetime.date:
    return ON + datetime.timedelta(days=n)


def _contract(operator, name, *, interval=14, modality="CT", **kwargs):
    hospital = HubeiHospitalFactory(name=name, latitude=30.0 + len(name) / 100, longitude=111.0)
    ServiceContractFactory(
        operator=operator, hospital=hospital, modality=modality, interval_days=interval, **kwargs
    )
    return hospital


@pytest.fixture
def world():
    operator = OperatorFactory()
    ct = UnitFactory(operator=operator, modality="CT", name="CT A")
    ct2 = UnitFactory(operator=operator, modality="CT", name="CT B")
    mr = UnitFactory(operator=operator, modality="MR", name="MR A")
    lapsed = _contract(operator, "Lapsed")  # done 20 days ago, every 14: 6 days overdue
    VisitFactory(unit=ct, hospital=lapsed, date=_d(-20), status="done")
    soon = _contract(operator, "Due soon")  # due in 2 days, booked tomorrow by the other van
    VisitFactory(unit=ct, hospital=soon, date=_d(-12), status="done")
    VisitFactory(unit=ct2, hospital=soon, date=_d(1), status="planned")
    late = _contract(operator, "Booked late")  # due in 4 days (ok), but booked in 6: late
    VisitFactory(unit=ct, hospital=late, date=_d(-10), status="done")
    VisitFactory(unit=ct, hospital=late, date=_d(6), status="planned")
    VisitFactory(unit=ct, hospital=late, date=_d(3), status="cancelled")  # does not count
    fine = _contract(operator, "Fine", interval=30)  # due in 28 days, nothing booked: not late yet
    VisitFactory(unit=ct, hospital=fine, date=_d(-2), status="done")
    _contract(operator, "Never", starts_on=_d(-5))  # never served: due on the start day
    today = _contract(operator, "Today")  # a visit planned for today is the last visit
    VisitFactory(unit=ct, hospital=today, date=ON, status="planned")
    due_today = _contract(operator, "Due today")
    VisitFactory(unit=ct, hospital=due_today, date=_d(-14), status="done")
    VisitFactory(unit=ct, hospital=due_today, date=_d(2), status="en_route")
    mr_only = _contract(operator, "MR", modality="MR", interval=60)
    VisitFactory(unit=mr, hospital=mr_only, date=_d(-1), status="done")
    VisitFactory(unit=ct, hospital=mr_only, date=_d(5), status="planned")  # a CT visit: not the MR's
    _contract(operator, "Inactive", active=False)
    _contract(operator, "Not started", starts_on=_d(1))
    _contract(OperatorFactory(), "Other operator's")
    return operator, ct, ct2, mr


def test_every_active_contract_with_exact_dates_and_states(world):
    operator, *_ = world
    rows = coverage_rows(on=ON, operator_id=operator.pk)
    got = [
        (
            r.hospital_name,
            r.modality,
            r.last_visit,
            r.next_visit,
            r.due_on,
            r.days_overdue,
            r.state,
            r.will_be_late,
        )
        for r in rows
    ]
    assert got == [
        ("Lapsed", "CT", _d(-20), None, _d(-6), 6, "overdue", True),
        ("Never", "CT", None, None, _d(-5), 5, "overdue", True),
        ("Due today", "CT", _d(-14), _d(2), ON, 0, "due_soon", True),
        ("Due soon", "CT", _d(-12), _d(1), _d(2), -2, "due_soon", False),
        ("Booked late", "CT", _d(-10), _d(6), _d(4), -4, "ok", True),
        ("Today", "CT", ON, None, _d(14), -14, "ok", True),
        ("Fine", "CT", _d(-2), None, _d(28), -28, "ok", False),
        ("MR", "MR", _d(-1), None, _d(59), -59, "ok", False),
    ]
    assert isinstance(rows[0], CoverageRow)
    first = rows[0]
    assert (first.interval_days, first.latitude, first.longitude, first.region_code) == (
        14,
        30.06,
        111.0,
        "HB-01",
    )
    assert first.as_dict()["due_on"] == "2026-03-25"
    assert rows[3].days_left == 2


def test_overdue_rows_agree_with_hospitals_overdue(world):
    operator, *_ = world
    overdue = [
        (r.contract_id, r.days_overdue, r.due_on) for r in coverage_rows(on=ON, operator_id=operator.pk)
    ]
    overdue = [row for row in overdue if row[1] > 0]
    assert overdue == [
        (r.contract_id, r.days_overdue, r.due_on) for r in hospitals_overdue(on=ON, operator_id=operator.pk)
    ]


def test_every_operator_without_a_filter_and_one_query(world, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = coverage_rows(on=ON)
    assert len(rows) == 9
    assert "Other operator's" in {r.hospital_name for r in rows}


# --- withdrawal_uncovered ------------------------------------------------------------------------


@pytest.fixture
def fleet():
    operator = OperatorFactory()
    unit = UnitFactory(operator=operator, modality="CT", name="CT Leaving")
    other = UnitFactory(operator=operator, modality="CT", name="CT Staying")
    broken = UnitFactory(operator=operator, modality="CT", name="CT Broken", status="out_of_service")
    mr = UnitFactory(operator=operator, modality="MR", name="MR Van")
    return operator, unit, other, broken, mr


def _hospital(name):
    return HubeiHospitalFactory(name=name)


def test_withdrawal_uncovered_exact_list(fleet):
    operator, unit, other, broken, mr = fleet
    a = _hospital("A covered")  # another van comes earlier
    VisitFactory(unit=unit, hospital=a, date=_d(3))
    VisitFactory(unit=other, hospital=a, date=_d(2))
    b = _hospital("B no contract")  # no contract: deadline is the van's own visit date
    VisitFactory(unit=unit, hospital=b, date=_d(3))
    VisitFactory(unit=other, hospital=b, date=_d(5))
    c = _hospital("C due later")  # contract due in 4 days: a visit on day 4 still covers
    ServiceContractFactory(operator=operator, hospital=c, interval_days=14)
    VisitFactory(unit=other, hospital=c, date=_d(-10), status="done")
    VisitFactory(unit=unit, hospital=c, date=_d(2))
    VisitFactory(unit=other, hospital=c, date=_d(4))
    d = _hospital("D only a broken van")
    VisitFactory(unit=unit, hospital=d, date=_d(5))
    VisitFactory(unit=broken, hospital=d, date=_d(5))
    e = _hospital("E only an MR van")
    VisitFactory(unit=unit, hospital=e, date=_d(5), status="en_route")
    VisitFactory(unit=mr, hospital=e, date=_d(5))
    f = _hospital("F cancelled cover")
    VisitFactory(unit=unit, hospital=f, date=_d(5))
    VisitFactory(unit=other, hospital=f, date=_d(5), status="cancelled")
    g = _hospital("G last served")  # the leaving van served it; due in 7 days, nothing booked
    ServiceContractFactory(operator=operator, hospital=g, interval_days=14)
    VisitFactory(unit=unit, hospital=g, date=_d(-7), status="done")
    h = _hospital("H last served, booked")
    ServiceContractFactory(operator=operator, hospital=h, interval_days=14)
    VisitFactory(unit=unit, hospital=h, date=_d(-7), status="done")
    VisitFactory(unit=other, hospital=h, date=_d(6))
    i = _hospital("I already overdue")  # not the withdrawal's doing: the coverage view shows it
    ServiceContractFactory(operator=operator, hospital=i, interval_days=14)
    VisitFactory(unit=unit, hospital=i, date=_d(-30), status="done")
    j = _hospital("J past visit")
    VisitFactory(unit=unit, hospital=j, date=_d(-1))
    k = _hospital("K due far")  # last served by the van, due beyond the 14-day horizon
    ServiceContractFactory(operator=operator, hospital=k, interval_days=30)
    VisitFactory(unit=unit, hospital=k, date=_d(-1), status="done")

    rows = withdrawal_uncovered(unit=unit, on=ON)
    assert [(r["hospital_name"], r["visit_date"], r["deadline"], r["why"]) for r in rows] == [
        ("B no contract", "2026-04-03", "2026-04-03", "booked"),
        ("D only a broken van", "2026-04-05", "2026-04-05", "booked"),
        ("E only an MR van", "2026-04-05", "2026-04-05", "booked"),
        ("F cancelled cover", "2026-04-05", "2026-04-05", "booked"),
        ("G last served", None, "2026-04-07", "last_served"),
    ]
    assert rows[0] == {
        "hospital_id": b.pk,
        "hospital_name": "B no contract",
        "modality": "CT",
        "visit_date": "2026-04-03",
        "deadline": "2026-04-03",
        "why": "booked",
    }


def test_nothing_uncovered_for_an_idle_unit(fleet):
    _, unit, *_ = fleet
    assert withdrawal_uncovered(unit=unit, on=ON) == []


# --- the page ------------------------------------------------------------------------------------


def test_coverage_page_renders_rows_by_state(client):
    from django.utils import timezone

    from core.choices import Role
    from tests.fleet.map_factories import dispatcher, hospital_user

    today = timezone.localdate()
    operator = OperatorFactory()
    unit = UnitFactory(operator=operator, modality="CT", name="CT Page")
    lapsed = _contract(operator, "Lapsed Page")
    VisitFactory(unit=unit, hospital=lapsed, date=today - datetime.timedelta(days=20), status="done")
    soon = _contract(operator, "Soon Page")
    VisitFactory(unit=unit, hospital=soon, date=today - datetime.timedelta(days=13), status="done")
    client.force_login(dispatcher(operator))
    response = client.get("/fleet/coverage/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="state-overdue"' in html and "6 days overdue" in html
    assert 'class="state-due_soon"' in html and "due in 1 day" in html
    assert 'id="coverage-data"' in html and "fleet/coverage.js" in html and "leaflet.js" in html
    assert "Withdraw CT Page" in html
    assert 'name="override_reason"' not in html  # dispatchers cannot override
    client.force_login(dispatcher(operator, role=Role.ADMIN))
    assert 'name="override_reason"' in client.get("/fleet/coverage/").content.decode()
    client.force_login(hospital_user())
    assert client.get("/fleet/coverage/").status_code == 403
