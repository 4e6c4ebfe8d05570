"""The incident live view in Debian's Chromium on the real ASGI server: declare, confirm, units move."""

from __future__ import annotations

import json
import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from fleet.live import fleet_map_publish
from fleet.models import Incident, UnitPosition
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, running_daphne, sign_in, watched_page
from tests.fleet.surge_factories import INCIDENT, build_surge

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-Caravan-123"


def test_declare_confirm_and_follow_units_live(transactional_db, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    surge = build_surge()
    surge.dispatcher.username = "dana"
    surge.dispatcher.set_password(PASSWORD)
    surge.dispatcher.save()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_daphne("incident-daphne.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, watch = watched_page(browser)
        failed, errors = watch.failed, watch.errors
        sign_in(page, base, "dana", PASSWORD)
        sockets = []

        def through(ws):
            ws.connect_to_server()
            sockets.append(ws)

        page.route_web_socket(lambda url: url.endswith("/ws/fleet/map/"), through)

        page.goto(f"{base}/fleet/incidents/")
        page.locator("#id_name").fill("Bus crash on the G50")
        page.locator("#id_latitude").fill(str(INCIDENT[0]))
        page.locator("#id_longitude").fill(str(INCIDENT[1]))
        page.locator("#id_days").fill("2")
        page.locator("#id_need_CT").fill("2")
        page.get_by_role("button", name="Declare and rank units").click()
        incident = Incident.objects.get()
        expect(page).to_have_url(f"{base}/fleet/incidents/{incident.pk}/")
        ranking = page.locator('table[data-ranking="CT"] tbody tr')
        expect(ranking).to_have_count(5)
        expect(ranking.first).to_contain_text("CT F")
        expect(page.locator("[data-excluded]")).to_have_count(2)
        expect(page.locator("#incident-map")).to_have_attribute("data-outline", "drawn")  # offline outline
        expect(page.locator("#incident-visits tr[data-visit]")).to_have_count(3)
        page.screenshot(path=str(SCREENSHOTS / "incident-declared.png"), full_page=True)

        page.get_by_role("button", name="Confirm: dispatch").click()
        expect(page.locator("[data-incident-status]")).to_have_attribute("data-incident-status", "dispatched")
        expect(page.locator("#incident-units tr[data-unit]")).to_have_count(2)
        expect(page.locator("path.unit-marker")).to_have_count(2)
        expect(page.locator("path.incident-marker")).to_have_count(1)
        expect(page.locator("[data-live-status]")).to_have_text("Live", timeout=10_000)

        # A fleet-map update for a unit sent moves its marker and the distance left.
        unit = surge.units["F"]
        sent: list[dict] = []
        monkeypatch.setattr(
            "core.on_commit.layer_group_send", lambda layer, group, message: sent.append(message)
        )
        UnitPosition.objects.filter(unit=unit).update(latitude=30.45, device_time=timezone.now())
        assert fleet_map_publish(unit_ids=[unit.pk]) == [unit.pk]
        sockets[-1].send(json.dumps(sent[0]["payload"]))
        expect(page.locator(f"path.unit-{unit.pk}")).to_have_attribute("data-lat", "30.45")
        expect(page.locator(f'#incident-units tr[data-unit="{unit.pk}"] [data-cell="km"]')).to_have_text(
            "7.2"
        )
        page.screenshot(path=str(SCREENSHOTS / "incident-dispatched.png"), full_page=True)
        browser.close()

    assert errors == []
    assert failed == []
