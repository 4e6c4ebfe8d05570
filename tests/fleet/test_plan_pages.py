"""The dispatcher's plan pages through Django's test client: access, list, start, progress,
review (timeline data, visits, unserved), lock, publish and re-run."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from core.choices import Role
from fleet.models import Plan, PlanStatus, ServiceRequest, Visit
from fleet.selectors_plans import plan_timeline
from tests.core.factories import UserFactory
from tests.fleet.factories import OperatorFactory
from tests.fleet.map_factories import dispatcher
from tests.fleet.plan_factories import plan_fleet

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def fleet():
    return plan_fleet()


def _done_plan(fleet, *, locked: str | None = None) -> Plan:
    """A finished plan stored as plan_compute stores one (no solver: exact, quick)."""
    a, b, c, d = fleet.requests
    unit1, unit2 = (str(u.pk) for u in fleet.units)
    visits = [
        {"request_id": str(a.pk), "unit_id": unit1, "day": 0, "sequence": 1, "arrive_minute": 65.2,
         "depart_minute": 155.0},
        {"request_id": str(b.pk), "unit_id": unit1, "day": 0, "sequence": 2, "arrive_minute": 200.0,
         "depart_minute": 300.0},
        {"request_id": str(c.pk), "unit_id": unit2, "day": 1, "sequence": 1, "arrive_minute": 50.0,
         "depart_minute": 160.0},
        {"request_id": str(d.pk), "unit_id": unit2, "day": 1, "sequence": 2, "arrive_minute": 190.0,
         "depart_minute": 310.0},
    ]  # fmt: skip
    for entry in visits:
        if entry["request_id"] == locked:
            entry["locked"] = True
    return Plan.objects.create(
        operator=fleet.operator,
        created_by=fleet.dispatcher,
        start_date=fleet.start,
        days=3,
        time_limit_s=1,
        status=PlanStatus.DONE,
        progress=100,
        message="done",
        inputs={"units": 2, "requests": 5, "locked": 0, "request_ids": [str(r.pk) for r in fleet.requests]
                + [str(fleet.unservable.pk)]},
        visits=visits,
        unserved={str(fleet.unservable.pk): "no MR unit"},
        stats={"served": 4, "requests": 5, "weighted_served": 6.0, "km": 412.37, "solver": "ortools",
               "status": "ok", "wall_seconds": 1.02, "changes": 0, "violations": []},
        finished_at=timezone.now(),
    )  # fmt: skip


def _timeline_json(html: str) -> dict:
    found = re.search(r'<script id="plan-timeline-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the page carries no timeline data"
    return json.loads(found.group(1))


# --- access ------------------------------------------------------------------------------------


def test_only_the_operators_dispatchers_and_admins_open_the_plan_pages(client, fleet):
    plan = _done_plan(fleet)
    urls = [f"/fleet/plans/{plan.pk}/", f"/fleet/plans/{plan.pk}/progress/"]
    posts = [
        f"/fleet/plans/{plan.pk}/locks/",
        f"/fleet/plans/{plan.pk}/publish/",
        f"/fleet/plans/{plan.pk}/rerun/",
    ]
    before = (list(Plan.objects.values_list("pk", "visits", "published_at")), Visit.objects.count())

    assert client.get("/fleet/plans/").status_code == 302  # anonymous: to the sign-in page
    assert client.get(urls[0])["Location"].startswith("/login/")

    hospital_user = UserFactory(organisation=fleet.hospitals[0], roles=[Role.HOSPITAL_USER])
    tech = UserFactory(organisation=fleet.operator, roles=[Role.TECHNOLOGIST])
    for user in (hospital_user, tech):
        client.force_login(user)
        assert client.get("/fleet/plans/").status_code == 403
        assert client.post("/fleet/plans/", {"start_date": fleet.start, "days": 2}).status_code == 403
        for url in urls:
            assert client.get(url).status_code == 404
        for url in posts:
            assert (
                client.post(url, {"request_id": str(fleet.requests[0].pk), "locked": "1"}).status_code == 404
            )

    other = dispatcher(OperatorFactory())
    client.force_login(other)
    listing = client.get("/fleet/plans/")
    assert listing.status_code == 200
    assert f'data-plan="{plan.pk}"' not in listing.content.decode()  # another operator's plans: unseen
    for url in urls:
        assert client.get(url).status_code == 404
    for url in posts:
        assert client.post(url, {"request_id": str(fleet.requests[0].pk), "locked": "1"}).status_code == 404

    assert (list(Plan.objects.values_list("pk", "visits", "published_at")), Visit.objects.count()) == before

    admin = UserFactory(organisation=fleet.operator, roles=[Role.ADMIN])
    client.force_login(admin)
    assert client.get("/fleet/plans/").status_code == 200
    assert client.get(urls[0]).status_code == 200


def test_the_dispatchers_home_card_links_to_the_plans(client, fleet):
    client.force_login(fleet.dispatcher)
    assert 'href="/fleet/plans/"' in client.get("/").content.decode()


# --- list and start ----------------------------------------------------------------------------


def test_the_list_offers_a_form_with_defaults_and_lists_recent_plans(client, fleet):
    plan = _done_plan(fleet)
    client.force_login(fleet.dispatcher)
    response = client.get("/fleet/plans/")
    html = response.content.decode()
    assert response.status_code == 200
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    assert re.search(rf'name="start_date"[^>]*value="{tomorrow}"', html)
    assert re.search(r'name="days"[^>]*value="7"', html)
    assert re.search(r'name="time_limit_s"[^>]*value="5"', html)
    rows = re.findall(r'<tr data-plan="(\d+)" data-status="(\w+)">', html)
    assert rows == [(str(plan.pk), "done")]
    assert "4/5" in html


def test_a_dispatcher_starts_a_plan_and_lands_on_its_review(
    client, fleet, django_capture_on_commit_callbacks
):
    client.force_login(fleet.dispatcher)
    with django_capture_on_commit_callbacks(execute=True) as started:  # the task, eager here
        response = client.post(
            "/fleet/plans/", {"start_date": fleet.start.isoformat(), "days": 3, "time_limit_s": 1}
        )
    assert len(started) == 1
    plan = Plan.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/fleet/plans/{plan.pk}/"
    assert (plan.status, plan.created_by, plan.days, plan.time_limit_s) == ("done", fleet.dispatcher, 3, 1.0)

    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-plan-progress data-state="done"' in html
    assert 'hx-trigger="every 1s"' not in html  # finished: nothing polls
    data = _timeline_json(html)
    assert len(data["items"]) == len(plan.visits) == plan.stats["served"]
    assert {item["request_id"] for item in data["items"]} == {str(r.pk) for r in fleet.requests}
    assert html.count("<tr data-visit=") == len(plan.visits)
    assert f'data-unserved="{fleet.unservable.pk}"' in html


def test_a_refused_start_stores_nothing_and_says_why(client, fleet):
    client.force_login(fleet.dispatcher)
    past = (timezone.localdate() - dt.timedelta(days=3)).isoformat()
    response = client.post("/fleet/plans/", {"start_date": past, "days": 3, "time_limit_s": 5})
    assert response.status_code == 400
    assert "cannot start in the past" in response.content.decode()
    response = client.post(
        "/fleet/plans/", {"start_date": fleet.start.isoformat(), "days": 40, "time_limit_s": 5}
    )
    assert response.status_code == 400
    assert Plan.objects.count() == 0


# --- progress ----------------------------------------------------------------------------------


def test_the_progress_partial_polls_while_the_plan_runs_then_carries_the_result(client, fleet):
    plan = Plan.objects.create(
        operator=fleet.operator, created_by=fleet.dispatcher, start_date=fleet.start, days=3
    )
    client.force_login(fleet.dispatcher)
    url = f"/fleet/plans/{plan.pk}/progress/"

    page = client.get(f"/fleet/plans/{plan.pk}/").content.decode()
    assert f'hx-get="{url}" hx-trigger="every 1s"' in page
    assert 'data-plan-progress data-state="queued"' in page
    assert "plan-timeline-data" not in page

    Plan.objects.filter(pk=plan.pk).update(
        status="running", progress=20, message="solving: 5 requests, 2 units"
    )
    partial = client.get(url, **HTMX).content.decode()
    assert "<html" not in partial  # a fragment
    assert 'hx-trigger="every 1s"' in partial
    assert 'data-plan-progress data-state="running"' in partial
    assert '<progress value="20" max="100"' in partial
    assert "solving: 5 requests, 2 units" in partial

    Plan.objects.filter(pk=plan.pk).delete()
    done = _done_plan(fleet)
    partial = client.get(f"/fleet/plans/{done.pk}/progress/", **HTMX).content.decode()
    assert 'hx-trigger="every 1s"' not in partial
    assert 'data-plan-progress data-state="done"' in partial
    assert len(_timeline_json(partial)["items"]) == 4

    Plan.objects.filter(pk=done.pk).update(status="failed", message="refused: 1 constraint violations")
    partial = client.get(f"/fleet/plans/{done.pk}/progress/", **HTMX).content.decode()
    assert 'hx-trigger="every 1s"' not in partial
    assert "The planner failed" in partial and "refused: 1 constraint violations" in partial


# --- review ------------------------------------------------------------------------------------


def test_the_timeline_names_units_hospitals_and_times(fleet, django_assert_max_num_queries):
    plan = _done_plan(fleet, locked=str(fleet.requests[1].pk))
    with django_assert_max_num_queries(2):
        data = plan_timeline(plan)
    unit1, unit2 = fleet.units
    assert [g["name"] for g in data["groups"]] == ["Plan CT 1", "Plan CT 2"]
    assert [g["visits"] for g in data["groups"]] == [2, 2]
    first = data["items"][0]
    day0 = fleet.start.isoformat()
    assert first == {
        "request_id": str(fleet.requests[0].pk),
        "unit_id": str(unit1.pk),
        "unit": "Plan CT 1",
        "day": 0,
        "date": day0,
        "sequence": 1,
        "start": f"{day0}T08:05:00",  # the crew's day opens at 07:00; 65.2 min later
        "end": f"{day0}T09:35:00",
        "arrive": "08:05",
        "depart": "09:35",
        "hospital": "Zigui County People's Hospital",
        "hospital_id": fleet.hospitals[0].pk,
        "latitude": 30.83,
        "longitude": 110.98,
        "patients": 6,
        "modality": "CT",
        "priority": "urgent",
        "priority_label": "Urgent",
        "priority_class": "priority-urgent",
        "locked": False,
    }
    assert [item["locked"] for item in data["items"]] == [False, True, False, False]
    assert data["locked"] == 1
    assert data["items"][2]["date"] == (fleet.start + dt.timedelta(days=1)).isoformat()
    assert data["unserved"] == [
        {
            "request_id": str(fleet.unservable.pk),
            "reason": "no MR unit",
            "hospital": "Zigui County People's Hospital",
            "modality": "MRI",
            "patients": 4,
            "priority_label": "Routine",
            "window": f"{fleet.start.isoformat()} to {(fleet.start + dt.timedelta(days=2)).isoformat()}",
        }
    ]
    # Depot, the stops in order, depot.
    assert data["routes"][0] == {
        "unit_id": str(unit1.pk),
        "date": day0,
        "points": [[30.69, 111.29], [30.83, 110.98], [31.35, 110.75], [30.69, 111.29]],
    }
    assert data["stats"]["served"] == 4 and data["stats"]["requests"] == 5 and data["stats"]["km"] == 412.37
    assert (
        data["plan"]["published"] is False
        and data["publish_summary"] == {}
        and data["publish_summary_rows"] == []
    )


def test_the_review_page_shows_stats_visits_unserved_and_publish(client, fleet):
    plan = _done_plan(fleet, locked=str(fleet.requests[1].pk))
    client.force_login(fleet.dispatcher)
    html = client.get(f"/fleet/plans/{plan.pk}/").content.decode()
    assert (
        'id="plan-timeline"' in html and "vis-timeline-graph2d.min.js" in html and "plan_timeline.js" in html
    )
    assert "<script>" not in html  # data through json_script, code from static files
    assert re.search(r'data-stat="served">4/5 requests<', html)
    assert re.search(r'data-stat="km">412.4 km<', html)
    assert re.search(r'data-stat="solver">ortools \(ok\)<', html)
    assert re.search(r'data-stat="wall">1.0 s<', html)
    assert re.findall(r'<tr data-visit="(\d+)" data-unit="\d+" data-locked="(\w+)">', html) == [
        (str(r.pk), "true" if i == 1 else "false") for i, r in enumerate(fleet.requests)
    ]
    assert "no MR unit" in html
    assert re.search(r"<button type=\"submit\" data-publish>Publish</button>", html)
    assert "Re-run keeping locks" in html


# --- lock, publish, re-run: the lead's services --------------------------------------------------


def test_a_dispatcher_locks_and_unlocks_a_visit_from_the_page(client, fleet):
    plan = _done_plan(fleet)
    target = str(fleet.requests[2].pk)
    client.force_login(fleet.dispatcher)

    response = client.post(f"/fleet/plans/{plan.pk}/locks/", {"request_id": target, "locked": "1"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="plan-body"')
    assert re.search(rf'<tr data-visit="{target}" data-unit="\d+" data-locked="true">', html)
    plan.refresh_from_db()
    assert [bool(v.get("locked")) for v in plan.visits] == [False, False, True, False]

    # Without htmx: the same action, then back to the page.
    response = client.post(f"/fleet/plans/{plan.pk}/locks/", {"request_id": target, "locked": "0"})
    assert response.status_code == 302 and response["Location"] == f"/fleet/plans/{plan.pk}/"
    plan.refresh_from_db()
    assert [bool(v.get("locked")) for v in plan.visits] == [False, False, False, False]


def test_publishing_from_the_page_shows_the_summary_and_disables_the_button(client, fleet):
    plan = _done_plan(fleet, locked=str(fleet.requests[0].pk))
    client.force_login(fleet.dispatcher)

    response = client.post(f"/fleet/plans/{plan.pk}/publish/", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    plan.refresh_from_db()
    assert plan.published_at is not None
    assert plan.publish_summary["created"] == Visit.objects.filter(unit__operator=fleet.operator).count() > 0
    assert set(
        ServiceRequest.objects.filter(pk__in=[r.pk for r in fleet.requests]).values_list("status", flat=True)
    ) == {"scheduled"}
    assert "data-publish-summary" in html
    assert plan.publish_summary["created"] == 4 and plan.publish_summary["hospitals_notified"] == 4
    for key, value in plan.publish_summary.items():
        assert f'data-summary="{key}"><strong>{value}</strong> {key.replace("_", " ")}<' in html
    assert re.search(r"<button type=\"submit\" data-publish disabled>Published</button>", html)
    assert "data-lock-toggle" in html and 'disabled title="Published plans are not changed"' in html

    # Publishing twice is refused by the service; the page says so and nothing changes.
    visits_before = Visit.objects.count()
    again = client.post(f"/fleet/plans/{plan.pk}/publish/", **HTMX)
    assert again.status_code == 200 and "data-plan-error" in again.content.decode()
    assert Visit.objects.count() == visits_before
    assert Plan.objects.get(pk=plan.pk).published_at == plan.published_at


def test_re_run_keeping_locks_starts_a_plan_on_the_same_horizon(
    client, fleet, django_capture_on_commit_callbacks
):
    plan = _done_plan(fleet, locked=str(fleet.requests[3].pk))
    client.force_login(fleet.dispatcher)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/fleet/plans/{plan.pk}/rerun/")
    new = Plan.objects.exclude(pk=plan.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/fleet/plans/{new.pk}/"
    assert (new.base_plan_id, new.start_date, new.days, new.created_by) == (
        plan.pk,
        plan.start_date,
        3,
        fleet.dispatcher,
    )
    assert new.status == "done"
    kept = next(v for v in new.visits if v["request_id"] == str(fleet.requests[3].pk))
    assert (kept["unit_id"], kept["day"]) == (str(fleet.units[1].pk), 1)


def test_the_review_page_loads_only_installed_local_assets(client, fleet):
    from django.contrib.staticfiles import finders

    plan = _done_plan(fleet)
    client.force_login(fleet.dispatcher)
    html = client.get(f"/fleet/plans/{plan.pk}/").content.decode()
    urls = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/vis-timeline/vis-timeline-graph2d.min.js" in urls
    assert "/static/vendor/vis-timeline/vis-timeline-graph2d.min.css" in urls
    for url in urls:
        if url.startswith("data:"):
            continue
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/")), f"{url} is missing: run `make assets`"
