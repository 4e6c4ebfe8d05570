"""Telemetry ingest: fixes/s and batch latency through the real API, against a bare bulk insert.

One run, the same fixes for both sides:
  fleet       U units (default 200), each with a device token, a depot and a hospital site
              (20 depots, 50 hospitals) and a planned visit there today. Each unit reports a
              fix every 5 s for a simulated hour (default): it leaves its depot, drives about
              18 km to its hospital, stays 20 minutes (GPS jitter of a few metres), drives back.
              The device posts a batch every 60 s (12 fixes); batches go in time order, all
              units interleaved, as a fleet's devices would.
  bare        GpsFix.objects.bulk_create of each batch's rows (one INSERT, autocommit): what
              the database alone costs for the same batches. Then deleted.
  API         POST /api/units/<id>/telemetry/ with the device token, through the in-process
              Django test Client (authentication, parsing, validation, duplicate check, teleport
              check, insert, position, geofences with visits and unit status, JSON response).
              Bodies are encoded before the clock starts.
Printed: fixes/s of each side, their ratio, p50/p95 batch latency, and how many times the
fleet's real-time rate (U / 5 fixes/s) the API sustains (target: >= 1, i.e. it keeps up).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import timedelta

DEPOTS = 20
HOSPITALS = 50
SPEED_MPS = 12.0
STAY_S = 20 * 60
TRIP_M = 18_000.0


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _make_fleet(*, units: int, day) -> list[dict]:
    from geopy.distance import geodesic

    from core.choices import OrganisationKind
    from core.models import Organisation
    from fleet.choices import SiteKind, UnitStatus, VisitStatus
    from fleet.models import Site, Unit, Visit
    from fleet.services.telemetry import device_token_issue

    operator = Organisation.objects.create(
        name="Bench fleet operator", kind=OrganisationKind.OPERATOR, region_code="B"
    )
    depots = []
    for d in range(DEPOTS):
        lat, lon = 29.0 + (d // 5) * 0.6, 110.0 + (d % 5) * 0.6
        depots.append(
            Site.objects.create(kind=SiteKind.DEPOT, name=f"Depot {d}", latitude=lat, longitude=lon)
        )
    hospitals = []
    for h in range(HOSPITALS):
        depot = depots[h % DEPOTS]
        point = geodesic(meters=TRIP_M).destination((depot.latitude, depot.longitude), (h * 37) % 360)
        org = Organisation.objects.create(
            name=f"Bench telemetry hospital {h}", kind=OrganisationKind.HOSPITAL, region_code="B",
            latitude=point.latitude, longitude=point.longitude,
        )  # fmt: skip
        site = Site.objects.create(
            kind=SiteKind.HOSPITAL, name=org.name, organisation=org,
            latitude=point.latitude, longitude=point.longitude, radius_m=300,
        )  # fmt: skip
        hospitals.append((site, depot))
    fleet = []
    for i in range(units):
        site, depot = hospitals[i % HOSPITALS]
        unit = Unit.objects.create(
            operator=operator, name=f"Bench van {i}", modality="CT", ae_title=f"BENCHT{i:04d}",
            capacity_per_day=30, depot_name=depot.name, depot_latitude=depot.latitude,
            depot_longitude=depot.longitude, status=UnitStatus.AVAILABLE,
        )  # fmt: skip
        _, key = device_token_issue(unit=unit, actor=None, label="bench")
        Visit.objects.create(unit=unit, hospital=site.organisation, date=day, status=VisitStatus.EN_ROUTE)
        fleet.append({"unit": unit, "key": key, "depot": depot, "site": site})
    return fleet


def _position(van: dict, t: float, rng: random.Random) -> tuple[float, float]:
    """Where the van is ``t`` seconds into the hour: out, stay, back (linear in degrees)."""
    depot, site = van["depot"], van["site"]
    drive = TRIP_M / SPEED_MPS
    if t < drive:
        share = t / drive
    elif t < drive + STAY_S:
        share = 1.0
    else:
        share = max(0.0, 1.0 - (t - drive - STAY_S) / drive)
    jitter = 0.00005  # ~5 m
    lat = depot.latitude + (site.latitude - depot.latitude) * share + rng.uniform(-jitter, jitter)
    lon = depot.longitude + (site.longitude - depot.longitude) * share + rng.uniform(-jitter, jitter)
    return lat, lon


def _plan(fleet: list[dict], *, start, minutes: int, interval_s: int, batch_s: int, seed: int) -> list[dict]:
    """Every batch of every unit, in posting order (by batch time, units interleaved)."""
    rng = random.Random(seed)
    per_batch = batch_s // interval_s
    batches = []
    for b in range(minutes * 60 // batch_s):
        for van in fleet:
            fixes = []
            for k in range(per_batch):
                t = b * batch_s + k * interval_s
                lat, lon = _position(van, t, rng)
                fixes.append(
                    {
                        "fix_id": f"{van['unit'].pk}-{b}-{k}",
                        "lat": round(lat, 6),
                        "lon": round(lon, 6),
                        "speed": SPEED_MPS,
                        "heading": 90.0,
                        "device_time": (start + timedelta(seconds=t)).isoformat(),
                    }
                )
            batches.append({"van": van, "fixes": fixes, "body": json.dumps({"fixes": fixes}).encode()})
    return batches


def _bare(batches: list[dict]) -> list[float]:
    from datetime import datetime

    from django.utils import timezone

    from fleet.models import GpsFix

    latencies = []
    for batch in batches:
        unit = batch["van"]["unit"]
        t0 = time.perf_counter()
        now = timezone.now()
        GpsFix.objects.bulk_create(
            [
                GpsFix(
                    unit=unit, fix_id=f["fix_id"], device_time=datetime.fromisoformat(f["device_time"]),
                    received_at=now, latitude=f["lat"], longitude=f["lon"], speed_mps=f["speed"],
                    heading_deg=f["heading"],
                )
                for f in batch["fixes"]
            ]
        )  # fmt: skip
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


def _api(batches: list[dict]) -> list[float]:
    from django.test import Client

    client = Client()
    latencies = []
    for batch in batches:
        van = batch["van"]
        url = f"/api/units/{van['unit'].pk}/telemetry/"
        t0 = time.perf_counter()
        response = client.post(
            url,
            data=batch["body"],
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Device {van['key']}",
        )
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200 or response.json()["accepted"] != len(batch["fixes"]):
            raise RuntimeError(f"telemetry POST refused: {response.status_code} {response.content[:300]!r}")
    return latencies


def run(
    *, units: int = 200, minutes: int = 60, interval_s: int = 5, batch_s: int = 60, seed: int = 7
) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from fleet.models import GeofenceEvent, GpsFix, UnitPosition, Visit

    settings.DEBUG = False  # as in production: no per-query logging on either side
    # The hour ends five minutes ago, so every device time is valid on arrival.
    start = (timezone.now() - timedelta(minutes=minutes + 5)).replace(microsecond=0)
    t0 = time.perf_counter()
    fleet = _make_fleet(units=units + 1, day=timezone.localdate(start))
    spare = fleet.pop()  # warms both paths (imports, URL resolver, statement caches), then cleared
    batches = _plan(fleet, start=start, minutes=minutes, interval_s=interval_s, batch_s=batch_s, seed=seed)
    generation_s = time.perf_counter() - t0
    fixes = sum(len(b["fixes"]) for b in batches)

    warm = _plan([spare], start=start, minutes=minutes, interval_s=interval_s, batch_s=batch_s, seed=seed)
    _bare(warm)
    GpsFix.objects.all().delete()
    _api(warm)
    for model in (GeofenceEvent, GpsFix, UnitPosition):
        model.objects.filter(unit=spare["unit"]).delete()
    bare_ms = _bare(batches)
    GpsFix.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE fleet_gpsfix")
    api_ms = _api(batches)

    return {
        "database": connection.vendor,
        "units": units,
        "minutes": minutes,
        "interval_s": interval_s,
        "batch_size": batch_s // interval_s,
        "batches": len(batches),
        "fixes": fixes,
        "generation_s": generation_s,
        "bare_ms": bare_ms,
        "api_ms": api_ms,
        "stored": GpsFix.objects.count(),
        "positions": UnitPosition.objects.count(),
        "events": GeofenceEvent.objects.count(),
        "visits_done": Visit.objects.filter(departed_at__isnull=False).exclude(unit=spare["unit"]).count(),
        "fleet_rate": units / interval_s,
    }


def print_table(result: dict) -> bool:
    bare, api = result["bare_ms"], result["api_ms"]
    bare_rate = result["fixes"] / (sum(bare) / 1000)
    api_rate = result["fixes"] / (sum(api) / 1000)
    print(
        f"\nTelemetry ingest: {result['units']} units x 1 fix / {result['interval_s']} s for "
        f"{result['minutes']} min = {result['fixes']:,} fixes in {result['batches']:,} batches of "
        f"{result['batch_size']} (database {result['database']}; "
        f"generated in {result['generation_s']:.1f} s)\n"
    )
    header = f"{'run':36} {'fixes/s':>9} {'ratio':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}"
    print(header)
    print("-" * len(header))
    for name, rate, ms in (
        ("bare GpsFix bulk_create per batch", bare_rate, bare),
        ("POST /api/units/<id>/telemetry/", api_rate, api),
    ):
        print(
            f"{name:36} {rate:>9,.0f} {rate / bare_rate:>6.2f} {_pct(ms, 50):>7.2f} "
            f"{_pct(ms, 95):>7.2f} {max(ms):>7.2f}"
        )
    headroom = api_rate / result["fleet_rate"]
    ok = headroom >= 1 and result["stored"] == result["fixes"]
    print(
        f"\nStored {result['stored']:,} fixes, {result['positions']} positions, {result['events']} geofence "
        f"events, {result['visits_done']} visits done. The fleet reports {result['fleet_rate']:,.0f} "
        f"fixes/s; the API ingests {headroom:,.0f}x that (target >= 1: {'yes' if ok else 'NO'})"
    )
    return ok
