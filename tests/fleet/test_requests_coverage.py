"""Coverage: which contracted hospitals are overdue a visit, by exactly how many days."""

from __future__ import annotations

import datetime

import pytest

from fleet.selectors_requests import OverdueHospital, hospitals_overdue, service_requests_to_plan
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, VisitFactory
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory

pytestmark = pytest.mark.django_db

ON = datetime.date(2026, 3, 31)


def _days(n: int) -> datetime.date:
    return ON - datetime.timedelta(days=n)


@pytest.fixture
def fleet():
    operator = OperatorFactory()
    ct = UnitFactory(operator=operator, modality="CT")
    mr = UnitFactory(operator=operator, modality="MR", name="MRI Van")
    return operator, ct, mr


def _contract(operator, name, *, interval=14, modality="CT", **kwargs):
    hospital = HospitalFactory(name=name)
    ServiceContractFactory(
        operator=operator, hospital=hospital, modality=modality, interval_days=interval, **kwargs
    )
    return hospital


def test_overdue_days_on_a_hand_made_fleet(fleet):
    operator, ct, mr = fleet
    lapsed = _contract(operator, "Lapsed")  # done 20 days ago, every 14: due 6 days ago
    VisitFactory(unit=ct, hospital=lapsed, date=_days(20), status="done")
    on_time = _contract(operator, "On time")  # exactly 14 days ago: due today, not late
    VisitFactory(unit=ct, hospital=on_time, date=_days(14), status="done")
    one_day = _contract(operator, "One day")
    VisitFactory(unit=ct, hospital=one_day, date=_days(15), status="done")
    _contract(operator, "Never", starts_on=_days(10))  # never served: due from the start
    cancelled = _contract(
        operator, "Cancelled", interval=7
    )  # a cancelled visit does not count: due 23 days ago
    VisitFactory(unit=ct, hospital=cancelled, date=_days(30), status="done")
    VisitFactory(unit=ct, hospital=cancelled, date=_days(1), status="cancelled")
    booked = _contract(operator, "Booked")  # a visit planned for the future does not undo the lapse
    VisitFactory(unit=ct, hospital=booked, date=_days(16), status="done")
    VisitFactory(unit=ct, hospital=booked, date=ON + datetime.timedelta(days=3), status="planned")
    scheduled = _contract(operator, "Scheduled today")  # a visit planned for today counts
    VisitFactory(unit=ct, hospital=scheduled, date=ON, status="planned")
    wrong_modality = _contract(operator, "MR only")  # an MR visit does not serve the CT contract
    VisitFactory(unit=mr, hospital=wrong_modality, date=_days(2), status="done")
    VisitFactory(unit=ct, hospital=wrong_modality, date=_days(17), status="done")
    _contract(operator, "Inactive", active=False)
    _contract(operator, "Not started", starts_on=ON + datetime.timedelta(days=1))
    _contract(OperatorFactory(), "Other operator's")

    rows = hospitals_overdue(on=ON, operator_id=operator.pk)
    assert [(r.hospital_name, r.days_overdue, r.last_visit, r.due_on, r.next_visit) for r in rows] == [
        ("Cancelled", 23, _days(30), _days(23), None),
        ("Never", 10, None, _days(10), None),
        ("Lapsed", 6, _days(20), _days(6), None),
        ("MR only", 3, _days(17), _days(3), None),
        ("Booked", 2, _days(16), _days(2), ON + datetime.timedelta(days=3)),
        ("One day", 1, _days(15), _days(1), None),
    ]
    assert isinstance(rows[0], OverdueHospital)
    assert rows[0].interval_days == 7 and rows[0].modality == "CT"


def test_every_operator_without_a_filter(fleet):
    operator, _, _ = fleet
    _contract(operator, "Ours", starts_on=_days(3))
    _contract(OperatorFactory(), "Theirs", starts_on=_days(5))
    assert [(r.hospital_name, r.days_overdue) for r in hospitals_overdue(on=ON)] == [
        ("Theirs", 5),
        ("Ours", 3),
    ]


def test_one_query(fleet, django_assert_num_queries):
    operator, ct, _ = fleet
    for n in range(5):
        hospital = _contract(operator, f"H{n}")
        VisitFactory(unit=ct, hospital=hospital, date=_days(20 + n), status="done")
    with django_assert_num_queries(1):
        assert len(hospitals_overdue(on=ON, operator_id=operator.pk)) == 5


def test_requests_to_plan_overlap_the_horizon(fleet):
    operator, _, _ = fleet
    hospital = _contract(operator, "Planned for")
    start, end = ON, ON + datetime.timedelta(days=9)

    def filed(first: int, last: int, status: str = "submitted", op=operator):
        return ServiceRequestFactory(
            hospital=hospital,
            operator=op,
            status=status,
            earliest_date=ON + datetime.timedelta(days=first),
            latest_date=ON + datetime.timedelta(days=last),
        )

    inside = filed(2, 4)
    straddling = filed(-3, 0)
    planned = filed(9, 20, status="planned")
    filed(-5, -1)  # over before the horizon
    filed(10, 12)  # starts after it
    filed(1, 3, status="scheduled")
    filed(1, 3, status="declined")
    filed(1, 3, op=OperatorFactory())
    rows = service_requests_to_plan(operator_id=operator.pk, start=start, end=end)
    assert list(rows) == [straddling, inside, planned]
