"""Withdrawal through the real what-if planner (OR-Tools, Celery eager): refused, then allowed
once the what-if plan without the unit is published."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from fleet.models import Plan, Unit, UnitWithdrawal, Visit
from fleet.services.plans import plan_publish
from tests.fleet.factories import OperatorFactory, UnitFactory, ready_unit
from tests.fleet.map_factories import HubeiHospitalFactory, VisitFactory, dispatcher, hospital_user
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def _d(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_refused_then_allowed_after_publishing_the_real_whatif_plan(django_capture_on_commit_callbacks):
    """The done-when end to end: 409 with the uncovered list; the what-if plan (OR-Tools, Celery
    eager) moves the requests to the other van; once it is published the withdrawal goes through."""
    operator = OperatorFactory()
    depot = {"depot_latitude": 30.70, "depot_longitude": 111.28, "capacity_per_day": 30}
    leaving = ready_unit(UnitFactory(operator=operator, modality="CT", name="CT Leaving", **depot))
    staying = ready_unit(UnitFactory(operator=operator, modality="CT", name="CT Staying", **depot))
    user = dispatcher(operator)
    scheduled = []
    for k, (name, lat, lon) in enumerate(
        [("Zigui Hospital", 30.83, 110.98), ("Yidu Hospital", 30.38, 111.45)]
    ):
        hospital = HubeiHospitalFactory(name=name, latitude=lat, longitude=lon)
        ServiceContractFactory(operator=operator, hospital=hospital, interval_days=14, starts_on=_d(-60))
        VisitFactory(unit=leaving, hospital=hospital, date=_d(-5), status="done")
        visit = VisitFactory(unit=leaving, hospital=hospital, date=_d(2 + k))
        scheduled.append(
            ServiceRequestFactory(
                operator=operator,
                hospital=hospital,
                status="scheduled",
                visit=visit,
                patients=10,
                earliest_date=_d(1),
                latest_date=_d(5),
                created_by=hospital_user(hospital),
            )
        )
    client = _client(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/units/{leaving.pk}/withdraw/", {}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert [row["hospital_name"] for row in body["uncovered"]] == ["Yidu Hospital", "Zigui Hospital"]
    plan = Plan.objects.get(pk=body["whatif_plan"])
    assert (plan.kind, plan.excluded_units, plan.published_at) == ("whatif", [leaving.pk], None)
    assert plan.status == "done", plan.message
    assert Unit.objects.get(pk=leaving.pk).status == "available"

    with django_capture_on_commit_callbacks(execute=True):
        plan_publish(actor=user, plan=plan)
    for request in scheduled:
        request.refresh_from_db()
        assert (request.status, request.visit.unit_id) == ("scheduled", staying.pk)
    assert not Visit.objects.filter(unit=leaving, date__gte=TODAY).exclude(status="cancelled").exists()

    response = client.post(f"/api/units/{leaving.pk}/withdraw/", {}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "withdrawn"
    assert Unit.objects.get(pk=leaving.pk).status == "withdrawn"
    assert list(UnitWithdrawal.objects.order_by("id").values_list("outcome", flat=True)) == [
        "refused",
        "withdrawn",
    ]
