"""Planner runs through the API: queued, computed by the task (eager here), stored, checked."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEntry
from fleet.models import Plan
from fleet.services.plans import plan_compute
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, ready_unit
from tests.fleet.request_factories import ServiceRequestFactory

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def fleet():
    operator = OperatorFactory()
    start = timezone.localdate() + dt.timedelta(days=1)
    units = []
    for _ in range(2):
        unit = UnitFactory(operator=operator, modality="CT", depot_latitude=30.45, depot_longitude=114.15)
        units.append(ready_unit(unit, expires_on=start + dt.timedelta(days=90)))
    hospitals = [HospitalFactory() for _ in range(3)]
    requests = [
        ServiceRequestFactory(
            operator=operator,
            hospital=h,
            patients=8,
            earliest_date=start,
            latest_date=start + dt.timedelta(days=2),
        )
        for h in hospitals
    ]
    mr = ServiceRequestFactory(
        operator=operator, hospital=hospitals[0], modality="MR", earliest_date=start
    )  # no MR van
    return operator, start, requests, units, mr


def test_a_dispatcher_plans_and_reads_the_result(fleet, django_capture_on_commit_callbacks):
    operator, start, requests, units, mr = fleet
    dispatcher = UserFactory(organisation=operator, roles=["dispatcher"])

    with django_capture_on_commit_callbacks(execute=True) as started:  # the task, eager here
        created = _client(dispatcher).post(
            "/api/plans/", {"start_date": start.isoformat(), "days": 3, "time_limit_s": 1}, format="json"
        )
    assert len(started) == 1

    assert created.status_code == 202
    plan = _client(dispatcher).get(f"/api/plans/{created.json()['id']}/").json()
    assert (plan["status"], plan["progress"], plan["message"]) == ("done", 100, "done")
    assert {v["request_id"] for v in plan["visits"]} == {str(r.pk) for r in requests}
    assert plan["stats"]["violations"] == [] and plan["stats"]["served"] == 3
    assert (
        len(plan["unserved"]) == 1
        and "MR" in next(iter(plan["unserved"].values())).upper()
        or plan["unserved"]
    )
    assert plan["inputs"] == {
        "units": 2,
        "requests": 4,
        "locked": 0,
        "previous": 0,
        "request_ids": [str(r.pk) for r in requests] + [str(mr.pk)],
        "unit_days": {str(u.pk): [0, 1, 2] for u in units},
    }
    actions = list(AuditEntry.objects.filter(object_type="fleet.plan").values_list("action", flat=True))
    assert actions == ["plan.request", "plan.compute"]


def test_a_plan_runs_once_and_bad_input_stores_nothing(fleet):
    operator, start, *_ = fleet
    dispatcher = UserFactory(organisation=operator, roles=["dispatcher"])
    client = _client(dispatcher)
    body = {"start_date": start.isoformat(), "days": 2}
    plan_id = client.post("/api/plans/", body, format="json").json()["id"]
    assert Plan.objects.get(pk=plan_id).status == "queued"  # the task starts after commit
    first = plan_compute(plan_id=plan_id)
    assert first.status == "done" and first.finished_at is not None
    assert plan_compute(plan_id=plan_id).finished_at == first.finished_at  # not queued: not recomputed

    for body, field in (
        ({"start_date": (start - dt.timedelta(days=5)).isoformat(), "days": 2}, "start_date"),
        ({"start_date": start.isoformat(), "days": 40}, "days"),
        ({"start_date": start.isoformat(), "days": 2, "time_limit_s": 0.1}, "time_limit_s"),
    ):
        refused = client.post("/api/plans/", body, format="json")
        assert refused.status_code == 400 and field in refused.json()["detail"]
    assert Plan.objects.count() == 1


def test_only_the_operators_dispatchers_plan_and_see_plans(fleet):
    operator, start, *_ = fleet
    body = {"start_date": start.isoformat(), "days": 1, "time_limit_s": 1}
    plan_id = (
        _client(UserFactory(organisation=operator, roles=["dispatcher"]))
        .post("/api/plans/", body, format="json")
        .json()["id"]
    )
    tech = UserFactory(organisation=operator, roles=["technologist"])
    other = UserFactory(organisation=OperatorFactory(), roles=["dispatcher"])
    hospital_user = UserFactory(roles=["hospital_user"])

    assert _client(tech).post("/api/plans/", body, format="json").status_code == 403
    assert _client(hospital_user).post("/api/plans/", body, format="json").status_code == 403
    for user in (tech, other, hospital_user):
        assert _client(user).get(f"/api/plans/{plan_id}/").status_code == 404
    assert Plan.objects.count() == 1
