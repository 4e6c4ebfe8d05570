"""The fleet map in Debian's Chromium on the real ASGI server, offline: no tiles, nothing off-site."""

from __future__ import annotations

import datetime
import json
import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from fleet.live import fleet_map_publish
from fleet.models import Unit, UnitPosition
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, running_daphne
from tests.dicom.factories import OrderFactory
from tests.fleet.map_factories import (
    HubeiHospitalFactory,
    OperatorFactory,
    SiteFactory,
    UnitFactory,
    UnitPositionFactory,
    VisitFactory,
    dispatcher,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-Caravan-123"


def _fleet():
    operator = OperatorFactory(name="Hubei Mobile Imaging")
    now = timezone.now()
    wuhan = HubeiHospitalFactory(name="Wuhan Central Hospital", latitude=30.58, longitude=114.28)
    yichang = HubeiHospitalFactory(name="Yichang Central Hospital", latitude=30.70, longitude=111.28)
    SiteFactory(kind="hospital", name="Xiangyang No.1 Hospital", latitude=32.04, longitude=112.14)
    SiteFactory(kind="depot", name="Wuhan depot", organisation=operator, latitude=30.60, longitude=114.40)
    units = [
        UnitFactory(operator=operator, name="Map CT 1", status="en_route"),
        UnitFactory(operator=operator, name="Map MR 2", modality="MR", status="scanning"),
        UnitFactory(operator=operator, name="Map DR 3", modality="DX", status="maintenance"),
        # Never reported a fix: drawn at its depot (Enshi).
        UnitFactory(
            operator=operator,
            name="Map CT 4",
            status="available",
            depot_name="Enshi depot",
            depot_latitude=30.27,
            depot_longitude=109.49,
        ),  # fmt: skip
    ]
    for unit, (lat, lon, age) in zip(
        units[:3], [(30.45, 113.9, 20), (30.70, 111.30, 300), (31.75, 113.4, 7200)], strict=True
    ):
        UnitPositionFactory(
            unit=unit, latitude=lat, longitude=lon, device_time=now - datetime.timedelta(seconds=age)
        )
    VisitFactory(unit=units[0], hospital=wuhan, sequence=1, status="en_route", exams_booked=3)
    OrderFactory(unit=units[0], hospital=wuhan, status="acquired", requested_procedure="CT HEAD W/O CONTRAST")
    OrderFactory(unit=units[0], hospital=wuhan, requested_procedure="CT CHEST W/O CONTRAST")
    VisitFactory(unit=units[1], hospital=yichang, sequence=1, status="on_site")
    user = dispatcher(operator, username="dana")
    user.set_password(PASSWORD)
    user.save()
    return units


def test_map_draws_outline_places_and_units_offline_then_shows_details(transactional_db, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    units = _fleet()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_daphne("fleet-map-daphne.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        requested: list[str] = []
        failed: list[str] = []
        context.on("request", lambda request: requested.append(request.url))
        context.on("response", lambda r: r.status < 400 or failed.append(f"{r.status} {r.url}"))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/login/")
        page.get_by_label("Username").fill("dana")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{base}/")
        # The page's socket goes through Playwright to the real server, so the test can also
        # hand it a message (the in-memory channel layer lives inside the daphne process).
        sockets = []

        def through(ws):
            ws.connect_to_server()
            sockets.append(ws)

        page.route_web_socket(lambda url: url.endswith("/ws/fleet/map/"), through)
        page.get_by_role("link", name="Live fleet map").click()
        expect(page).to_have_url(f"{base}/fleet/map/")

        fleet_map = page.locator("#fleet-map")
        expect(fleet_map).to_have_attribute("data-outline", "drawn", timeout=10_000)
        expect(fleet_map).to_have_attribute("data-tiles", "off")
        expect(page.locator("path.region-outline")).to_have_count(1)
        expect(page.locator("path.unit-marker")).to_have_count(4)
        expect(page.locator("path.hospital-marker")).to_have_count(3)
        # The Wuhan depot site, and the units' own depots: Yichang (three units) and Enshi.
        expect(page.locator("path.depot-marker")).to_have_count(3)
        expect(page.locator(".leaflet-tile")).to_have_count(0)
        for unit, status in zip(units, ["en_route", "scanning", "maintenance", "available"], strict=True):
            expect(page.locator(f'path.unit-marker[data-unit="{unit.pk}"]')).to_have_attribute(
                "data-status", status
            )
        # Markers are really inside the visible map (the outline's bounds), not stacked at 0,0.
        box = fleet_map.bounding_box()
        for marker in page.locator("path.unit-marker").all():
            mbox = marker.bounding_box()
            assert box["x"] < mbox["x"] < box["x"] + box["width"]
            assert box["y"] < mbox["y"] < box["y"] + box["height"]
        expect(page.locator("[data-live-status]")).to_have_text("Live", timeout=10_000)

        # The table view of the same units.
        expect(page.locator("#fleet-table tr[data-unit]")).to_have_count(4)
        expect(
            page.locator(f'#fleet-table tr[data-unit="{units[3].pk}"] [data-cell="position"]')
        ).to_contain_text("(depot)")
        page.locator(f'path.unit-marker[data-unit="{units[0].pk}"]').click(force=True)
        details = page.locator("#unit-details")
        expect(details).to_have_attribute("data-unit", str(units[0].pk))
        expect(details).to_contain_text("Map CT 1")
        expect(details).to_contain_text("En route")
        expect(details).to_contain_text("s ago")
        expect(details).to_contain_text("Wuhan Central Hospital")
        page.screenshot(path=str(SCREENSHOTS / "fleet-map.png"), full_page=True)

        _live_update_moves_the_marker_and_reconnects(page, units[0], sockets, monkeypatch, base)

        details.locator("[data-day-link]").click()
        expect(page).to_have_url(f"{base}/fleet/units/{units[0].pk}/day/{timezone.localdate().isoformat()}/")
        expect(page.locator("[data-visit]")).to_have_count(1)
        expect(page.locator("[data-visit] tr[data-order]")).to_have_count(2)
        expect(page.locator("[data-day-done]")).to_have_text("1")
        expect(page.locator("[data-day-booked]")).to_have_text("3")
        page.screenshot(path=str(SCREENSHOTS / "fleet-unit-day.png"), full_page=True)
        browser.close()

    assert errors == []
    assert failed == []
    off_site = [url for url in requested if not url.startswith(base)]
    assert off_site == []


def _live_update_moves_the_marker_and_reconnects(page, unit, sockets, monkeypatch, base):
    """What fleet_map_publish sends, delivered to the page, moves the marker and the table row."""
    sent: list[dict] = []
    monkeypatch.setattr("core.on_commit.layer_group_send", lambda layer, group, message: sent.append(message))
    UnitPosition.objects.filter(unit=unit).update(latitude=31.2, longitude=112.5, device_time=timezone.now())
    Unit.objects.filter(pk=unit.pk).update(status="on_site")
    assert fleet_map_publish(unit_ids=[unit.pk]) == [unit.pk]
    (message,) = sent
    sockets[-1].send(json.dumps(message["payload"]))

    marker = page.locator(f'path.unit-marker[data-unit="{unit.pk}"]')
    expect(marker).to_have_attribute("data-status", "on_site")
    expect(marker).to_have_attribute("data-lat", "31.2")
    row = page.locator(f'#fleet-table tr[data-unit="{unit.pk}"]')
    expect(row).to_have_attribute("data-status", "on_site")
    expect(row.locator('[data-cell="position"]')).to_have_text("31.2000, 112.5000")
    expect(page.locator("#unit-details")).to_contain_text("On site")  # the open details follow

    # A dropped link: the page reconnects by itself, then catches up from the JSON endpoint.
    with page.expect_response(lambda r: r.url == f"{base}/api/fleet/map/", timeout=15_000) as caught:
        sockets[-1].close(code=4000, reason="test drop")
    assert caught.value.status == 200
    expect(page.locator("[data-live-status]")).to_have_text("Live")
    assert len(sockets) == 2
    expect(marker).to_have_attribute("data-lat", "31.2")  # the refetched snapshot agrees
