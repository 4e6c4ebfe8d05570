"""Publishing plans, locks, and the re-plans that follow a breakdown or a cancelled request.

Real planner runs (OR-Tools, 1 s), Celery eager in the test process: ``on_commit`` callbacks are
run by ``django_capture_on_commit_callbacks(execute=True)``.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from core.exceptions import Conflict
from core.models import AuditEntry
from dicom.choices import OrderStatus
from dicom.models import Order
from fleet.models import Plan, PlanKind, ServiceRequest, Visit
from fleet.services.plans import plan_compute, plan_lock_set, plan_publish, plan_request
from fleet.services.requests import service_request_cancel, service_request_decline
from fleet.services.units import unit_transition
from telerad.models import Notification
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, ready_unit
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory, exam

pytestmark = pytest.mark.django_db

# Hospitals around Yichang (lat, lon); both vans start from the Yichang depot.
PLACES = [(30.83, 110.98), (31.35, 110.75), (30.38, 111.45), (30.82, 111.79), (30.42, 111.76)]
DEPOT = {"depot_latitude": 30.70, "depot_longitude": 111.28}


@pytest.fixture(autouse=True)
def _quick_replans(settings):
    settings.PLANNER_REPLAN_TIME_LIMIT_S = 1.0


@pytest.fixture
def world():
    operator = OperatorFactory()
    start = timezone.localdate() + dt.timedelta(days=1)
    units = [
        ready_unit(UnitFactory(operator=operator, modality="CT", capacity_per_day=30, **DEPOT))
        for _ in range(2)
    ]
    requests = []
    for k, (lat, lon) in enumerate(PLACES):
        hospital = HospitalFactory(latitude=lat, longitude=lon)
        ServiceContractFactory(operator=operator, hospital=hospital)  # booking its exams needs one
        requests.append(
            ServiceRequestFactory(
                operator=operator,
                hospital=hospital,
                patients=10,
                earliest_date=start,
                latest_date=start + dt.timedelta(days=4),
                exams=[exam(10 * k + 1), exam(10 * k + 2)],
            )
        )
    dispatcher = UserFactory(organisation=operator, roles=[Role.DISPATCHER])
    return operator, start, units, requests, dispatcher


def _computed(dispatcher, operator, start, capture, *, days=5, base_plan=None) -> Plan:
    with capture(execute=True):
        plan = plan_request(
            actor=dispatcher,
            operator=operator,
            start_date=start,
            days=days,
            time_limit_s=1,
            base_plan=base_plan,
        )
    plan.refresh_from_db()
    assert plan.status == "done", plan.message
    return plan


def _placement() -> dict[int, tuple[int, dt.date, int]]:
    return {
        sr.pk: (sr.visit.unit_id, sr.visit.date, sr.visit.pk)
        for sr in ServiceRequest.objects.select_related("visit").filter(status="scheduled")
    }


def test_publishing_books_visits_orders_and_tells_each_hospital(world, django_capture_on_commit_callbacks):
    operator, start, units, requests, dispatcher = world
    plan = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    assert len(plan.visits) == 5

    with django_capture_on_commit_callbacks(execute=True):
        published = plan_publish(actor=dispatcher, plan=plan)

    assert published.published_at is not None and published.published_by == dispatcher
    assert published.publish_summary == {
        "created": 5,
        "moved": 0,
        "unchanged": 0,
        "unscheduled": 0,
        "kept": 0,
        "unplaced": 0,
        "skipped": 0,
        "hospitals_notified": 5,
    }
    placed = _placement()
    for entry in plan.visits:
        unit_id, day, _ = placed[int(entry["request_id"])]
        assert (unit_id, day) == (int(entry["unit_id"]), start + dt.timedelta(days=entry["day"]))
    assert Visit.objects.filter(plan=plan, status="planned").count() == 5
    for sr in requests:
        orders = Order.objects.filter(hospital=sr.hospital, status=OrderStatus.SCHEDULED)
        assert [(o.unit_id, o.scheduled_date, o.visit_id) for o in orders] == [placed[sr.pk]] * 2
        [notice] = Notification.objects.filter(recipient=sr.created_by)
        assert notice.kind == "visit.scheduled" and placed[sr.pk][1].strftime("%d %b %Y") in notice.message
        assert "WANG" not in notice.message  # no patient data in notifications
    assert AuditEntry.objects.filter(action="plan.publish", object_id=str(plan.pk)).count() == 1

    with pytest.raises(Conflict, match="already published"):
        plan_publish(actor=dispatcher, plan=plan)
    assert Visit.objects.count() == 5 and Notification.objects.count() == 5


def test_a_plan_computed_before_another_was_published_is_stale(world, django_capture_on_commit_callbacks):
    operator, start, _, _, dispatcher = world
    first = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    second = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    Plan.objects.filter(pk=second.pk).update(started_at=first.started_at)  # computed side by side
    plan_publish(actor=dispatcher, plan=first)

    with pytest.raises(Conflict, match=f"Plan {first.pk} was published after plan {second.pk}"):
        plan_publish(actor=dispatcher, plan=second)
    second.refresh_from_db()
    assert second.published_at is None and Visit.objects.filter(plan=second).count() == 0


def test_a_base_plans_lock_holds_against_a_better_placement(world, django_capture_on_commit_callbacks):
    operator, start, units, requests, dispatcher = world
    base = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    # The dispatcher wants request 0 served on day 3 (say, the hospital asked), on the second van.
    target = str(requests[0].pk)
    entries = [e for e in base.visits if e["request_id"] != target]
    entries.append(
        {
            "request_id": target,
            "unit_id": str(units[1].pk),
            "day": 3,
            "sequence": 1,
            "arrive_minute": 60.0,
            "depart_minute": 240.0,
        }  # fmt: skip
    )
    Plan.objects.filter(pk=base.pk).update(visits=entries)
    base.refresh_from_db()
    base = plan_lock_set(actor=dispatcher, plan=base, request_id=target, locked=True)
    assert [e["locked"] for e in base.visits if e["request_id"] == target] == [True]

    rerun = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks, base_plan=base)

    [kept] = [e for e in rerun.visits if e["request_id"] == target]
    assert (kept["unit_id"], kept["day"], kept["locked"]) == (str(units[1].pk), 3, True)
    assert rerun.inputs["locked"] == 1
    plan_publish(actor=dispatcher, plan=rerun)
    visit = ServiceRequest.objects.get(pk=target).visit
    assert (visit.unit_id, visit.date, visit.locked) == (units[1].pk, start + dt.timedelta(days=3), True)


def test_locks_only_on_a_done_unpublished_plan_and_a_placed_request(
    world, django_capture_on_commit_callbacks
):
    operator, start, _, requests, dispatcher = world
    plan = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    with pytest.raises(Exception, match="places no request 999999"):
        plan_lock_set(actor=dispatcher, plan=plan, request_id="999999", locked=True)
    plan_publish(actor=dispatcher, plan=plan)
    with pytest.raises(Conflict, match="already published"):
        plan_lock_set(actor=dispatcher, plan=plan, request_id=str(requests[0].pk), locked=True)


def test_a_breakdown_replan_moves_only_the_broken_vans_visits(world, django_capture_on_commit_callbacks):
    operator, start, units, requests, dispatcher = world
    plan = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    plan_publish(actor=dispatcher, plan=plan)
    before = _placement()
    broken, working = units
    on_broken = {pk for pk, (unit_id, _, _) in before.items() if unit_id == broken.pk}
    on_working = set(before) - on_broken
    assert on_broken and on_working, "both vans must have work for this test to mean anything"
    Notification.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        unit_transition(unit=broken, to_status="out_of_service", actor=dispatcher, reason="gearbox")

    replan = Plan.objects.get(kind=PlanKind.REPLAN)
    assert replan.published_at is not None, replan.message
    assert "out of service: gearbox" in replan.reason and replan.start_date == timezone.localdate()
    after = _placement()
    for pk in on_working:  # untouched: same visit row, unit and day
        assert after[pk] == before[pk]
    for pk in on_broken:  # the working van took them (10 patients each, 30 a day: room enough)
        assert after[pk][0] == working.pk
        sr = ServiceRequest.objects.get(pk=pk)
        orders = Order.objects.filter(hospital=sr.hospital)
        assert [(o.unit_id, o.scheduled_date, o.visit_id) for o in orders] == [after[pk]] * 2
        [notice] = Notification.objects.filter(recipient=sr.created_by)
        assert notice.kind == "visit.moved" and after[pk][1].strftime("%d %b %Y") in notice.message
    assert Notification.objects.count() == len(on_broken)
    assert not Visit.objects.filter(unit=broken, status="planned").exists()
    assert replan.publish_summary["moved"] == len(on_broken)
    assert replan.publish_summary["unchanged"] == len(on_working)


def test_a_locked_visit_survives_a_replan(world, django_capture_on_commit_callbacks):
    operator, start, units, requests, dispatcher = world
    plan = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    plan_publish(actor=dispatcher, plan=plan)
    before = _placement()
    broken, working = units
    locked_pk = next(pk for pk, (unit_id, _, _) in before.items() if unit_id == working.pk)
    Visit.objects.filter(pk=before[locked_pk][2]).update(locked=True)

    with django_capture_on_commit_callbacks(execute=True):
        unit_transition(unit=broken, to_status="out_of_service", actor=dispatcher, reason="flat tyre")

    assert _placement()[locked_pk] == before[locked_pk]
    assert Visit.objects.get(pk=before[locked_pk][2]).locked


def test_a_hospital_cancelling_a_scheduled_request_frees_the_visit_and_replans(
    world, django_capture_on_commit_callbacks
):
    operator, start, units, requests, dispatcher = world
    plan_publish(
        actor=dispatcher, plan=_computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    )
    sr = ServiceRequest.objects.get(pk=requests[2].pk)
    visit = sr.visit

    with django_capture_on_commit_callbacks(execute=True):
        service_request_cancel(service_request=sr, actor=sr.created_by, reason="scanner repaired")

    sr.refresh_from_db()
    visit.refresh_from_db()
    assert sr.status == "declined" and visit.status == "cancelled"
    assert set(Order.objects.filter(hospital=sr.hospital).values_list("status", flat=True)) == {"cancelled"}
    replan = Plan.objects.get(kind=PlanKind.REPLAN)
    assert replan.reason == f"request {sr.pk} cancelled" and replan.published_at is not None
    assert str(sr.pk) not in replan.inputs["request_ids"]


def test_declining_a_scheduled_request_tells_the_hospital(world, django_capture_on_commit_callbacks):
    operator, start, units, requests, dispatcher = world
    plan_publish(
        actor=dispatcher, plan=_computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    )
    sr = ServiceRequest.objects.get(pk=requests[1].pk)
    Notification.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        service_request_decline(service_request=sr, actor=dispatcher, reason="the road is closed")

    [notice] = Notification.objects.filter(recipient=sr.created_by)
    assert notice.kind == "request.declined" and "the road is closed" in notice.message
    assert Visit.objects.get(pk=sr.visit_id).status == "cancelled"


def test_the_plan_api_lists_locks_and_publishes_for_the_operator_only(
    world, django_capture_on_commit_callbacks
):
    operator, start, units, requests, dispatcher = world
    plan = _computed(dispatcher, operator, start, django_capture_on_commit_callbacks)
    Plan.objects.create(operator=OperatorFactory(), start_date=start, days=3)  # another operator's
    client = APIClient()
    client.force_authenticate(dispatcher)

    listed = client.get("/api/plans/").json()
    assert [p["id"] for p in listed] == [plan.pk]
    target = plan.visits[0]["request_id"]
    locked = client.post(
        f"/api/plans/{plan.pk}/locks/", {"request_id": target, "locked": True}, format="json"
    )
    assert locked.status_code == 200
    assert [v["locked"] for v in locked.json()["visits"] if v["request_id"] == target] == [True]
    bad = client.post(f"/api/plans/{plan.pk}/locks/", {"request_id": "0", "locked": True}, format="json")
    assert bad.status_code == 400

    outsider = APIClient()
    outsider.force_authenticate(requests[0].created_by)  # a hospital user
    assert outsider.post(f"/api/plans/{plan.pk}/publish/").status_code == 404
    assert outsider.get("/api/plans/").json() == []
    assert Visit.objects.count() == 0

    published = client.post(f"/api/plans/{plan.pk}/publish/")
    assert published.status_code == 200 and published.json()["publish_summary"]["created"] == 5
    assert client.post(f"/api/plans/{plan.pk}/publish/").status_code == 409


def test_a_whatif_without_a_van_is_never_published_by_itself(world, django_capture_on_commit_callbacks):
    from fleet.services.plans import whatif_request

    operator, start, units, requests, dispatcher = world
    with django_capture_on_commit_callbacks(execute=True):
        plan = whatif_request(actor=dispatcher, operator=operator, excluded_units=[units[0].pk], days=7)
    plan.refresh_from_db()
    assert (plan.kind, plan.status, plan.published_at) == ("whatif", "done", None)
    assert plan.inputs["unit_days"][str(units[0].pk)] == []
    assert {e["unit_id"] for e in plan.visits} == {str(units[1].pk)}
    assert plan_compute(plan_id=plan.pk).status == "done"  # idempotent: not computed twice
