"""The reading loop in Debian's Chromium, end to end on the real ASGI server.

A reader claims a study on the worklist; a second reader's worklist shows it claimed, live
(websocket → htmx refresh, no reload); the first reader writes and signs the report; the
hospital's portal shows the study reported and opens the signed report.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect, sync_playwright

from core.choices import OrganisationKind, Role
from telerad.models import ReadingTask, Report
from telerad.report_templates import template_for
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, running_daphne
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory
from tests.telerad.factories import (
    RadiologistFactory,
    ReadingPoolFactory,
    ReadingTaskFactory,
    RoutableStudyFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-Caravan-123"


def _login(context, base: str, username: str):
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/")
    return page


def test_claim_is_seen_live_then_signed_report_reaches_the_hospital(transactional_db):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    hospital = HospitalFactory(name="Zigui County People's Hospital", region_code="HB-01")
    hospital_user = UserFactory(username="hana", organisation=hospital, roles=[Role.HOSPITAL_USER])
    pool = ReadingPoolFactory(hospitals=[hospital])
    first = RadiologistFactory(
        user__username="li.na", user__first_name="Li", user__last_name="Na", pools=[pool]
    )
    second = RadiologistFactory(user__username="zhang.wei", pools=[pool])
    for reader in (first, second, hospital_user):
        user = getattr(reader, "user", reader)
        user.set_password(PASSWORD)
        user.save()
    order = OrderFactory(hospital=hospital, modality="CT", body_part="HEAD", requested_procedure="CT HEAD")
    study = RoutableStudyFactory(order=order)
    task = ReadingTaskFactory(pool=pool, study=study, eligible=[first, second])
    OrganisationFactory(kind=OrganisationKind.OPERATOR)  # the operator exists, as in production
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with running_daphne("reading-flow-daphne.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        reader_a = _login(browser.new_context(viewport={"width": 1280, "height": 900}), base, "li.na")
        reader_b = _login(browser.new_context(viewport={"width": 1280, "height": 900}), base, "zhang.wei")
        for page in (reader_a, reader_b):
            page.goto(f"{base}/workspace/reading/worklist/")
            expect(page.locator(f'tr[data-task="{task.pk}"]')).to_have_attribute("data-status", "unclaimed")
        # Reader B's page is connected for live events before A acts.
        expect(reader_b.locator("[data-live-status]")).to_contain_text("Live", timeout=10_000)

        reader_a.locator(f'tr[data-task="{task.pk}"] [data-claim]').click()
        expect(reader_a.locator(f'tr[data-task="{task.pk}"]')).to_have_class(
            re.compile(r"\bheld-by-me\b"), timeout=10_000
        )

        # No reload on B: the websocket event makes htmx refresh the list.
        row_b = reader_b.locator(f'tr[data-task="{task.pk}"]')
        expect(row_b).to_have_attribute("data-status", "claimed", timeout=5_000)
        expect(row_b.locator("[data-holder]")).to_have_text("Li Na")
        expect(row_b.locator("[data-claim]")).to_have_count(0)
        reader_b.screenshot(path=str(SCREENSHOTS / "worklist-claimed-live.png"), full_page=True)

        reader_a.locator(f'tr[data-task="{task.pk}"] [data-write-report]').click()
        template = template_for("CT", "HEAD")
        for spec in template.fields:
            control = reader_a.locator(f'[name="f_{spec.name}"]')
            if control.evaluate("el => el.tagName") == "SELECT":
                options = control.locator("option").evaluate_all("os => os.map(o => o.value).filter(v => v)")
                control.select_option("no" if "no" in options else options[0])
            else:
                control.fill("No acute intracranial abnormality.")
        reader_a.screenshot(path=str(SCREENSHOTS / "report-editor.png"), full_page=True)
        reader_a.locator("[data-sign]").click()
        expect(reader_a.locator("[data-report-status]")).to_have_attribute("data-report-status", "final")

        portal = _login(browser.new_context(viewport={"width": 1280, "height": 900}), base, "hana")
        portal.goto(f"{base}/workspace/hospital/studies/")
        expect(portal.get_by_text(order.accession_number)).to_be_visible()
        portal.screenshot(path=str(SCREENSHOTS / "portal-reported.png"), full_page=True)
        portal.goto(f"{base}/workspace/hospital/studies/{study.pk}/report/")
        expect(portal.get_by_text("No acute intracranial abnormality.").first).to_be_visible()
        portal.screenshot(path=str(SCREENSHOTS / "portal-report.png"), full_page=True)
        browser.close()

    task.refresh_from_db()
    assert task.status == "reported"
    assert task.claimed_by_id == first.user_id
    assert Report.objects.get(task=task).status == "final"
    assert ReadingTask.objects.get(pk=task.pk).reported_at is not None
