"""The plan review page in Debian's Chromium on the real ASGI server: start a plan, watch its
progress, review the timeline, lock a visit, publish.

Without REDIS_URL the daphne subprocess runs Celery eagerly (the form's POST returns once the
plan is computed: the page opens on the finished state). With REDIS_URL (CI) the broker is
Redis, so the test starts a Celery worker on the same test database and the page shows the
real progress: queued or running first, then the result without a reload. The worker and
daphne use their own broker database so that no other suite's tasks reach them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from fleet.models import Plan, ServiceRequest, Visit
from tests.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    running_daphne,
    sign_in,
    watched_page,
)
from tests.celery_support import broker_url, running_celery_worker
from tests.fleet.plan_factories import plan_fleet

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-Caravan-123"
BROKER_DB = 13  # a Redis database of its own: the worker consumes only this test's tasks


@contextmanager
def plan_server() -> Iterator[tuple[str, bool]]:
    """daphne (and, with Redis, a worker); yields (base URL, whether tasks run in the background)."""
    broker = broker_url(BROKER_DB)
    if not broker:
        with running_daphne("plan-daphne.log") as base:
            yield base, False
        return
    with (
        running_celery_worker("plan-celery.log", broker),
        running_daphne("plan-daphne.log", CELERY_BROKER_URL=broker) as base,
    ):
        yield base, True


def test_a_dispatcher_plans_reviews_locks_and_publishes_in_the_browser(transactional_db):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    fleet = plan_fleet(username="dana")
    fleet.dispatcher.set_password(PASSWORD)
    fleet.dispatcher.save()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with plan_server() as (base, background), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, watch = watched_page(browser, width=1400, timezone_id=settings.TIME_ZONE)
        requested, failed, errors = watch.requested, watch.failed, watch.errors
        sign_in(page, base, "dana", PASSWORD)
        page.get_by_role("link", name="Visit plans").first.click()
        expect(page).to_have_url(f"{base}/fleet/plans/")
        expect(page.locator("#plan-list")).to_contain_text("No plans yet")

        # The form's defaults: tomorrow, 7 days, 5 s. Plan three days; with a worker, give the
        # solver 3 s so that the page has a running plan to show.
        expect(page.get_by_label("Start date")).to_have_value(fleet.start.isoformat())
        expect(page.get_by_label("Days")).to_have_value("7")
        expect(page.get_by_label("Time limit (s)")).to_have_value("5")
        page.get_by_label("Days").fill("3")
        page.get_by_label("Time limit (s)").fill("3" if background else "1")
        page.get_by_role("button", name="Start the planner").click()
        expect(page).to_have_url(re.compile(rf"{re.escape(base)}/fleet/plans/\d+/$"))
        plan_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

        progress = page.locator("[data-plan-progress]")
        expect(progress).to_be_visible()
        first_state = progress.get_attribute("data-state")
        first_percent = page.locator("[data-plan-percent]").inner_text()
        assert re.fullmatch(r"\d{1,3}%", first_percent)
        if background:
            # The worker has it: queued or running, and the page keeps polling until done.
            assert first_state in ("queued", "running"), first_state
            expect(page.locator('[data-plan-progress][data-state="running"]')).to_be_visible(timeout=20_000)
            expect(page.locator("[data-plan-message]")).to_contain_text("solving")
            page.screenshot(path=str(SCREENSHOTS / "plan_progress.png"))
        else:
            # Eager: the POST returned once the plan was computed.
            assert (first_state, first_percent) == ("done", "100%")
        expect(page.locator('[data-plan-progress][data-state="done"]')).to_be_visible(timeout=30_000)
        expect(page.locator("[data-plan-percent]")).to_have_text("100%")
        assert page.url == f"{base}/fleet/plans/{plan_id}/"  # no reload: the same page, swapped

        plan = Plan.objects.get(pk=plan_id)
        assert plan.status == "done" and plan.created_by_id == fleet.dispatcher.pk
        served = len(plan.visits)
        assert served == plan.stats["served"] == len(fleet.requests)  # the MR request: no MRI van

        timeline = page.locator("#plan-timeline")
        expect(timeline).to_have_attribute("data-drawn", "yes", timeout=10_000)
        expect(timeline).to_have_attribute("data-items", str(served))
        expect(timeline.locator(".vis-item.vis-range")).to_have_count(served)
        expect(timeline.locator(".vis-label .plan-group")).to_have_count(len(fleet.units))
        expect(timeline).to_contain_text("Zigui County People's Hospital")
        expect(page.locator("#plan-visits tr[data-visit]")).to_have_count(served)
        expect(page.locator("#plan-unserved tr[data-unserved]")).to_have_count(1)
        expect(page.locator(f'#plan-unserved tr[data-unserved="{fleet.unservable.pk}"]')).to_be_visible()
        expect(page.locator('[data-stat="served"]')).to_have_text(
            f"{served}/{len(fleet.requests) + 1} requests"
        )
        expect(page.locator("#plan-map")).to_have_attribute("data-drawn", "yes")
        expect(page.locator("#plan-map")).to_have_attribute("data-outline", "drawn")  # offline outline
        expect(page.locator("#plan-map path.route-line").first).to_be_attached()

        # Lock the first visit: the table row and the timeline item say so, and so does the plan.
        target = plan.visits[0]["request_id"]
        page.locator(f'[data-lock-toggle="{target}"]').click()
        row = page.locator(f'#plan-visits tr[data-visit="{target}"]')
        expect(row).to_have_attribute("data-locked", "true")
        expect(page.locator('[data-stat="locked"]')).to_have_text("1")
        expect(page.locator("#plan-timeline")).to_have_attribute("data-drawn", "yes")
        expect(page.locator("#plan-timeline .vis-item.locked")).to_have_count(1)
        expect(page.locator("#plan-timeline .vis-item.vis-range")).to_have_count(served)
        locked = [v["request_id"] for v in Plan.objects.get(pk=plan_id).visits if v.get("locked")]
        assert locked == [target]
        page.locator("#plan-timeline").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "plan_timeline.png"), full_page=True)

        # Publish: the visits become real and the page shows what happened.
        publish = page.locator("[data-publish]")
        expect(publish).to_be_enabled()
        publish.click()
        summary = page.locator("[data-publish-summary]")
        expect(summary).to_be_visible(timeout=15_000)
        expect(page.locator("[data-publish]")).to_be_disabled()
        expect(page.locator("[data-publish]")).to_have_text("Published")
        plan = Plan.objects.get(pk=plan_id)
        created = Visit.objects.filter(unit__operator=fleet.operator).count()
        assert plan.published_at is not None and plan.publish_summary["created"] == served
        assert created >= 1 and Visit.objects.filter(unit__operator=fleet.operator, locked=True).count() == 1
        expect(summary.locator('[data-summary="created"] strong')).to_have_text(str(served))
        scheduled = ServiceRequest.objects.filter(pk__in=[r.pk for r in fleet.requests], status="scheduled")
        assert scheduled.count() == served
        expect(page.locator("[data-lock-toggle]").first).to_be_disabled()
        page.screenshot(path=str(SCREENSHOTS / "plan_published.png"), full_page=True)

        # The list shows it as published.
        page.get_by_role("link", name="Visit plans").first.click()
        expect(page.locator(f'#plan-list tr[data-plan="{plan_id}"]')).to_contain_text("Done")
        browser.close()

    assert errors == []
    assert failed == []
    off_site = [url for url in requested if not url.startswith(base)]
    assert off_site == []
