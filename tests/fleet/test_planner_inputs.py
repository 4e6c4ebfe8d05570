"""From the database to the planner: availability from licences, maintenance and status;
requests clipped and weighted; visits under way locked, planned ones kept as the previous plan;
and a run over that input respects every hard constraint."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from fleet.models import MaintenanceWindow
from fleet.planning.check import plan_violations
from fleet.planning.inputs import plan_input_build
from fleet.planning.model import LockedVisit, PreviousVisit
from fleet.planning.ortools_solver import plan_ortools
from fleet.planning.travel import GeodesicTravel
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import (
    CrewCredentialFactory,
    CrewMemberFactory,
    OperatorFactory,
    UnitFactory,
    VisitFactory,
    crew_unit,
    license_unit,
    ready_unit,
)
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory

pytestmark = pytest.mark.django_db
START = dt.date(2026, 12, 7)  # a Monday


def _world():
    operator = OperatorFactory()
    near = {"depot_latitude": 30.45, "depot_longitude": 114.15}  # a Wuhan depot, near the hospitals
    ct1 = UnitFactory(operator=operator, modality="CT", capacity_per_day=30, **near)
    ct2 = UnitFactory(operator=operator, modality="CT", capacity_per_day=30, **near)
    mr = UnitFactory(operator=operator, modality="MR", capacity_per_day=12, **near)
    broken = UnitFactory(operator=operator, modality="CT", status="out_of_service", **near)
    for unit in (ct1, mr, broken):
        ready_unit(unit, expires_on=START + dt.timedelta(days=60))
    license_unit(ct2, expires_on=START + dt.timedelta(days=2))  # valid days 0-2, expired from day 3
    crew_unit(ct2, expires_on=START + dt.timedelta(days=60))
    zone = timezone.get_current_timezone()
    MaintenanceWindow.objects.create(
        unit=ct1,
        starts_at=dt.datetime.combine(START + dt.timedelta(days=1), dt.time(9), tzinfo=zone),
        ends_at=dt.datetime.combine(START + dt.timedelta(days=1), dt.time(12), tzinfo=zone),
        reason="gantry service",
    )
    return operator, ct1, ct2, mr, broken


def test_availability_comes_from_licences_maintenance_and_status():
    operator, ct1, ct2, mr, broken = _world()

    inp = plan_input_build(operator_id=operator.pk, start=START, days=5)

    available = {u.id: sorted(u.available_days) for u in inp.units}
    assert available == {
        str(ct1.pk): [0, 2, 3, 4],  # maintenance on day 1
        str(ct2.pk): [0, 1, 2],  # a licence expires after day 2
        str(mr.pk): [0, 1, 2, 3, 4],
        str(broken.pk): [],  # out of service
    }


def test_a_unit_works_only_while_its_crew_is_qualified():
    operator = OperatorFactory()
    near = {"depot_latitude": 30.45, "depot_longitude": 114.15}
    expiring = UnitFactory(operator=operator, modality="CT", **near)
    uncrewed = UnitFactory(operator=operator, modality="CT", **near)
    mr_wrong_role = UnitFactory(operator=operator, modality="MR", **near)
    mr_wrong_kind = UnitFactory(operator=operator, modality="MR", **near)
    withdrawn = UnitFactory(operator=operator, modality="CT", status="withdrawn", **near)
    later = START + dt.timedelta(days=60)
    for unit in (expiring, uncrewed, mr_wrong_role, mr_wrong_kind, withdrawn):
        license_unit(unit, expires_on=later)
    crew_unit(expiring, expires_on=START + dt.timedelta(days=1))  # qualified on days 0 and 1
    crew_unit(withdrawn, expires_on=later)
    # MR needs MR-safety training held by a technologist or radiographer: a driver's does not count,
    # nor does a radiographer certificate.
    driver = CrewMemberFactory(operator=operator, unit=mr_wrong_role, role="driver")
    CrewCredentialFactory(crew_member=driver, kind="mr_safety_training", expires_on=later)
    tech = CrewMemberFactory(operator=operator, unit=mr_wrong_kind, role="technologist")
    CrewCredentialFactory(crew_member=tech, kind="radiographer_certificate", expires_on=later)

    inp = plan_input_build(operator_id=operator.pk, start=START, days=4)

    assert {u.id: sorted(u.available_days) for u in inp.units} == {
        str(expiring.pk): [0, 1],
        str(uncrewed.pk): [],
        str(mr_wrong_role.pk): [],
        str(mr_wrong_kind.pk): [],
    }  # the withdrawn unit is not in the fleet any more
    excluded = plan_input_build(
        operator_id=operator.pk, start=START, days=4, excluded_units=frozenset({expiring.pk})
    )
    assert {u.id: sorted(u.available_days) for u in excluded.units}[str(expiring.pk)] == []


def test_requests_are_clipped_weighted_and_visits_locked_or_previous():
    operator, ct1, ct2, mr, _ = _world()
    hospital, late = HospitalFactory(), HospitalFactory()
    ServiceContractFactory(
        operator=operator,
        hospital=late,
        modality="CT",
        interval_days=14,
        starts_on=START - dt.timedelta(days=44),
    )
    early = ServiceRequestFactory(
        operator=operator,
        hospital=hospital,
        earliest_date=START - dt.timedelta(days=3),
        latest_date=START + dt.timedelta(days=1),
    )
    overdue = ServiceRequestFactory(
        operator=operator,
        hospital=late,
        priority="urgent",
        earliest_date=START + dt.timedelta(days=2),
        latest_date=START + dt.timedelta(days=30),
    )
    under_way = ServiceRequestFactory(operator=operator, hospital=hospital, status="scheduled")
    planned = ServiceRequestFactory(
        operator=operator, hospital=hospital, modality="MR", patients=6, status="planned"
    )
    # Visits linked to requests: one en route (locked), one still planned (previous plan).
    under_way.status = "planned"
    under_way.visit = VisitFactory(unit=ct1, hospital=hospital, date=START, status="en_route")
    under_way.earliest_date, under_way.latest_date = START, START + dt.timedelta(days=3)
    under_way.save()
    planned.visit = VisitFactory(
        unit=mr, hospital=hospital, date=START + dt.timedelta(days=2), status="planned"
    )
    planned.earliest_date, planned.latest_date = START, START + dt.timedelta(days=4)
    planned.save()
    ServiceRequestFactory(operator=OperatorFactory(), hospital=hospital)  # another operator's
    ServiceRequestFactory(operator=operator, hospital=hospital, status="declined")

    inp = plan_input_build(operator_id=operator.pk, start=START, days=5)

    by_id = {r.id: r for r in inp.requests}
    assert set(by_id) == {str(early.pk), str(overdue.pk), str(under_way.pk), str(planned.pk)}
    assert (by_id[str(early.pk)].earliest_day, by_id[str(early.pk)].latest_day) == (0, 1)
    assert (by_id[str(overdue.pk)].earliest_day, by_id[str(overdue.pk)].latest_day) == (2, 4)
    assert by_id[str(overdue.pk)].overdue_days == 44  # never visited: due since its contract began
    assert by_id[str(overdue.pk)].weight > by_id[str(early.pk)].weight
    assert inp.locked == (LockedVisit(request_id=str(under_way.pk), unit_id=str(ct1.pk), day=0),)
    assert inp.previous == (PreviousVisit(request_id=str(planned.pk), unit_id=str(mr.pk), day=2),)

    travel = GeodesicTravel()
    result = plan_ortools(inp, travel, time_limit_s=1.0)
    assert plan_violations(inp, result, travel) == []
    placed = {(v.request_id, v.unit_id, v.day) for v in result.visits}
    assert (str(under_way.pk), str(ct1.pk), 0) in placed  # the visit under way stays
    assert all(not (v.unit_id == str(ct2.pk) and v.day > 2) for v in result.visits)  # expired licence


def test_a_unit_sent_to_an_incident_does_no_routine_work_while_it_lasts():
    from fleet.models import Incident, IncidentUnit
    from tests.core.factories import UserFactory

    operator = OperatorFactory()
    near = {"depot_latitude": 30.45, "depot_longitude": 114.15}
    sent, home = (ready_unit(UnitFactory(operator=operator, modality="CT", **near)) for _ in range(2))
    zone = timezone.get_current_timezone()
    incident = Incident.objects.create(
        operator=operator,
        name="Landslide",
        latitude=30.8,
        longitude=111.0,
        needs={"CT": 1},
        starts_at=dt.datetime.combine(START + dt.timedelta(days=1), dt.time(6), tzinfo=zone),
        days=2,
        status="dispatched",
        created_by=UserFactory(organisation=operator),
    )
    IncidentUnit.objects.create(
        incident=incident, unit=sent, eta_minutes=90.0, dispatched_at=incident.starts_at
    )

    inp = plan_input_build(operator_id=operator.pk, start=START, days=5)

    assert {u.id: sorted(u.available_days) for u in inp.units} == {
        str(sent.pk): [0, 3, 4],  # days 1 and 2 at the incident
        str(home.pk): [0, 1, 2, 3, 4],
    }
