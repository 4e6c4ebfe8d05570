"""The coverage page in Debian's Chromium on the real ASGI server: markers by state, a refused withdrawal."""

from __future__ import annotations

import datetime
import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, running_daphne
from tests.fleet.map_factories import (
    HubeiHospitalFactory,
    OperatorFactory,
    UnitFactory,
    VisitFactory,
    dispatcher,
)
from tests.fleet.request_factories import ServiceContractFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-Caravan-123"


def test_coverage_map_table_and_refused_withdrawal(transactional_db):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    today = timezone.localdate()
    operator = OperatorFactory(name="Hubei Coverage Imaging")
    unit = UnitFactory(operator=operator, name="Coverage CT 1")
    places = [("Wuhan Central Hospital", 30.58, 114.28, 20), ("Yichang Central Hospital", 30.70, 111.28, 12)]
    places.append(("Xiangyang No.1 Hospital", 32.04, 112.14, 2))
    for name, lat, lon, ago in places:
        hospital = HubeiHospitalFactory(name=name, latitude=lat, longitude=lon)
        ServiceContractFactory(operator=operator, hospital=hospital, interval_days=14)
        VisitFactory(unit=unit, hospital=hospital, date=today - datetime.timedelta(days=ago), status="done")
    VisitFactory(unit=unit, hospital=hospital, date=today + datetime.timedelta(days=3))
    user = dispatcher(operator, username="cora")
    user.set_password(PASSWORD)
    user.save()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_daphne("coverage-daphne.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/login/")
        page.get_by_label("Username").fill("cora")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{base}/fleet/coverage/")
        coverage_map = page.locator("#coverage-map")
        expect(coverage_map).to_have_attribute("data-outline", "drawn", timeout=10_000)
        expect(coverage_map).to_have_attribute("data-markers", "3")
        expect(page.locator("path.coverage-marker.state-overdue")).to_have_count(1)
        expect(page.locator("path.coverage-marker.state-due_soon")).to_have_count(1)
        expect(page.locator("path.coverage-marker.state-ok")).to_have_count(1)
        expect(page.locator("#coverage-table tr.state-overdue")).to_contain_text("Wuhan Central Hospital")
        page.screenshot(path=str(SCREENSHOTS / "coverage.png"), full_page=True)

        page.get_by_role("button", name="Withdraw Coverage CT 1").click()
        refusal = page.locator(".withdraw-result.refused")
        expect(refusal).to_contain_text("Withdrawal of Coverage CT 1 refused")
        # Xiangyang: its booked visit has no other van; Yichang: due in 2 days, last served by it.
        expect(refusal.locator("[data-uncovered]")).to_have_count(2)
        expect(refusal).to_contain_text("Xiangyang No.1 Hospital")
        expect(refusal).to_contain_text("Yichang Central Hospital")
        page.screenshot(path=str(SCREENSHOTS / "coverage-withdraw-refused.png"), full_page=True)
        assert errors == []
        browser.close()
