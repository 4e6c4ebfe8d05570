"""The fleet map's data: who may see it, what the selector returns, the JSON endpoint and the page."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from core.choices import Role
from fleet.selectors_map import STATUS_COLOURS, map_operator_for_user, map_snapshot
from tests.core.factories import UserFactory
from tests.fleet.map_factories import (
    HubeiHospitalFactory,
    OperatorFactory,
    SiteFactory,
    UnitFactory,
    UnitPositionFactory,
    VisitFactory,
    dispatcher,
    hospital_user,
)

pytestmark = pytest.mark.django_db

DATA_URL = "/api/fleet/map/"
PAGE_URL = "/fleet/map/"


@pytest.fixture
def fleet():
    operator = OperatorFactory(name="Hubei Mobile Imaging")
    other = OperatorFactory(name="Other Operator")
    moving = UnitFactory(operator=operator, name="Hubei CT 1", status="en_route")
    parked = UnitFactory(operator=operator, name="Hubei MR 2", modality="MR", status="maintenance")
    foreign = UnitFactory(operator=other, name="Foreign Van")
    now = timezone.now()
    UnitPositionFactory(
        unit=moving, latitude=30.2, longitude=112.2, device_time=now - datetime.timedelta(seconds=75)
    )
    UnitPositionFactory(unit=foreign, latitude=31.0, longitude=113.0)
    hospital = HubeiHospitalFactory(name="Zigui County People's Hospital", latitude=30.83, longitude=110.98)
    HubeiHospitalFactory(name="Hospital without coordinates", latitude=None, longitude=None)
    SiteFactory(
        kind="hospital", name="Zigui hospital gate", organisation=hospital, latitude=30.831, longitude=110.981
    )
    SiteFactory(kind="depot", name="Yichang depot", organisation=operator, latitude=30.69, longitude=111.29)
    SiteFactory(kind="depot", name="Other depot", organisation=other, latitude=31.5, longitude=112.0)
    VisitFactory(unit=moving, hospital=hospital, sequence=1, status="en_route")
    VisitFactory(unit=moving, hospital=hospital, date=timezone.localdate() + datetime.timedelta(days=1))
    return {"operator": operator, "other": other, "moving": moving, "parked": parked, "foreign": foreign,
            "hospital": hospital, "now": now}  # fmt: skip


def test_only_operator_dispatchers_and_admins_may_watch(fleet):
    operator = fleet["operator"]
    assert map_operator_for_user(dispatcher(operator)) == operator
    assert map_operator_for_user(dispatcher(operator, role=Role.ADMIN)) == operator
    assert map_operator_for_user(dispatcher(operator, role=Role.TECHNOLOGIST)) is None
    assert map_operator_for_user(hospital_user(fleet["hospital"])) is None
    # A dispatcher role on a hospital's account (refused at assignment, but never trusted here).
    assert map_operator_for_user(UserFactory(organisation=fleet["hospital"], roles=[Role.DISPATCHER])) is None
    inactive = dispatcher(operator)
    inactive.is_active = False
    assert map_operator_for_user(inactive) is None


def test_snapshot_has_own_units_positions_depots_and_hospitals(fleet):
    snapshot = map_snapshot(operator=fleet["operator"], now=fleet["now"])
    units = {row["name"]: row for row in snapshot["units"]}
    assert list(units) == ["Hubei CT 1", "Hubei MR 2"]  # by name; the other operator's van is absent
    moving, parked = units["Hubei CT 1"], units["Hubei MR 2"]
    assert (moving["latitude"], moving["longitude"], moving["source"]) == (30.2, 112.2, "gps")
    assert moving["last_seen_age_s"] == 75
    assert moving["status"] == "en_route" and moving["colour"] == STATUS_COLOURS["en_route"]
    assert [v["hospital"] for v in moving["visits_today"]] == ["Zigui County People's Hospital"]
    assert moving["day_url"] == f"/fleet/units/{fleet['moving'].pk}/day/{timezone.localdate().isoformat()}/"
    # No fix yet: drawn at its depot, never seen.
    assert (parked["latitude"], parked["longitude"], parked["source"]) == (30.69, 111.29, "depot")
    assert parked["last_seen"] is None and parked["visits_today"] == []
    # The hospital's Site stands for the organisation; organisations without coordinates are skipped.
    assert [h["name"] for h in snapshot["hospitals"]] == ["Zigui hospital gate"]
    # The operator's depot site covers the units' depot (same name and place); not the other's depot.
    assert [d["name"] for d in snapshot["depots"]] == ["Yichang depot"]


def test_unit_depot_without_a_site_is_drawn_once(fleet):
    UnitFactory(
        operator=fleet["operator"], depot_name="Xiangyang depot", depot_latitude=32.0, depot_longitude=112.1
    )
    UnitFactory(
        operator=fleet["operator"], depot_name="Xiangyang depot", depot_latitude=32.0, depot_longitude=112.1
    )
    depots = map_snapshot(operator=fleet["operator"])["depots"]
    assert [(d["name"], d["source"]) for d in depots] == [
        ("Yichang depot", "site"),
        ("Xiangyang depot", "unit"),
    ]


def test_endpoint_serves_the_dispatchers_operator_only(fleet, django_assert_max_num_queries):
    client = Client()
    client.force_login(dispatcher(fleet["operator"]))
    with django_assert_max_num_queries(12):
        response = client.get(DATA_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["operator"] == {"id": fleet["operator"].pk, "name": "Hubei Mobile Imaging"}
    assert {row["id"] for row in body["units"]} == {fleet["moving"].pk, fleet["parked"].pk}

    other = Client()
    other.force_login(dispatcher(fleet["other"]))
    assert {row["id"] for row in other.get(DATA_URL).json()["units"]} == {fleet["foreign"].pk}


@pytest.mark.parametrize("who", ["hospital", "technologist", "anonymous"])
def test_endpoint_and_page_refuse_everyone_else(fleet, who):
    client = Client()
    if who == "hospital":
        client.force_login(hospital_user(fleet["hospital"]))
    elif who == "technologist":
        client.force_login(dispatcher(fleet["operator"], role=Role.TECHNOLOGIST))
    data = client.get(DATA_URL)
    assert data.status_code in (401, 403)
    assert "units" not in data.content.decode()
    page = client.get(PAGE_URL)
    if who == "anonymous":
        assert page.status_code == 302 and page["Location"].startswith("/login/")
    else:
        assert page.status_code == 403
        assert "Hubei CT 1" not in page.content.decode()


def test_page_embeds_snapshot_and_config_without_tiles_by_default(fleet, settings):
    client = Client()
    client.force_login(dispatcher(fleet["operator"], role=Role.ADMIN))
    html = client.get(PAGE_URL).content.decode()
    snapshot = json.loads(re.search(r'id="fleet-map-snapshot"[^>]*>(.*?)</script>', html, re.S).group(1))
    config = json.loads(re.search(r'id="fleet-map-config"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert [row["name"] for row in snapshot["units"]] == ["Hubei CT 1", "Hubei MR 2"]
    assert config["tile_url"] == ""
    assert config["outline_url"] == "/static/fleet/hubei.geojson"
    assert config["data_url"] == DATA_URL and config["ws_path"] == "/ws/fleet/map/"
    assert 'data-tiles="off"' in html
    assert "/static/vendor/leaflet/leaflet.js" in html
    # The table view of the same data.
    assert re.search(rf'<tr data-unit="{fleet["moving"].pk}" data-status="en_route">', html)
    assert "Foreign Van" not in html

    settings.MAP_TILE_URL = "https://tiles.example.invalid/{z}/{x}/{y}.png"
    html = client.get(PAGE_URL).content.decode()
    assert 'data-tiles="on"' in html and "tiles.example.invalid" in html


def test_dispatch_and_admin_workspaces_link_to_the_map(fleet):
    client = Client()
    client.force_login(dispatcher(fleet["operator"]))
    assert 'href="/fleet/map/"' in client.get("/").content.decode()
    client.force_login(hospital_user(fleet["hospital"]))
    assert 'href="/fleet/map/"' not in client.get("/").content.decode()
