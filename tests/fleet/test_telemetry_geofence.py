"""Teleport flags, geofence hysteresis, and what arrivals/departures do to visits and units."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEntry
from fleet.choices import GeofenceEventKind, UnitStatus, VisitStatus
from fleet.models import GeofenceEvent, GpsFix, Unit, UnitPosition, UnitSiteState
from tests.fleet.factories import UnitFactory
from tests.fleet.request_factories import ServiceRequestFactory
from tests.fleet.telemetry_factories import (
    DEPOT_LAT,
    DEPOT_LON,
    HOSPITAL_LAT,
    HOSPITAL_LON,
    DepotSiteFactory,
    SiteFactory,
    VisitFactory,
    device_key,
    fix,
    offset,
    post_fixes,
)

pytestmark = pytest.mark.django_db
ARRIVAL, DEPARTURE = GeofenceEventKind.ARRIVAL, GeofenceEventKind.DEPARTURE


def _path(start, distances_m: list[float], *, prefix: str, lat=HOSPITAL_LAT, lon=HOSPITAL_LON, step_s=10):
    """Fixes every ``step_s`` seconds at the given distances south of (lat, lon)."""
    return [
        fix(start + timedelta(seconds=i * step_s), *offset(lat, lon, d, bearing=180), f"{prefix}{i}")
        for i, d in enumerate(distances_m)
    ]


# Approach from 1.5 km at <= 15 m/s, jitter across the 300 m radius, park, jitter across the
# 450 m exit radius (300 x 1.5), drive away.
APPROACH = [1500, 1350, 1200, 1050, 900, 750, 600, 450, 320, 295, 310, 290, 305, 298, 330]
PARKED = [120, 100, 110, 90, 95]
LEAVE = [300, 420, 440, 460, 445, 470, 440, 480, 600, 750, 900]


def test_teleport_is_flagged_and_not_used_for_position():
    unit = UnitFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=20)
    lat, lon = 30.0, 111.0
    far = offset(lat, lon, 20_000, bearing=90)
    batch = [
        fix(start, lat, lon, "a"),
        fix(start + timedelta(seconds=5), *offset(lat, lon, 50), "b"),
        fix(start + timedelta(seconds=10), *far, "jump"),  # 20 km in 5 s
        fix(start + timedelta(seconds=15), *offset(lat, lon, 100), "c"),
    ]
    body = post_fixes(unit.pk, key, batch).json()
    assert (body["accepted"], body["flagged"]) == (4, 1)
    jump = GpsFix.objects.get(unit=unit, fix_id="jump")
    assert jump.flagged and "exceeds 50 m/s" in jump.flag_reason
    assert not GpsFix.objects.filter(unit=unit, flagged=True).exclude(pk=jump.pk).exists()
    position = UnitPosition.objects.get(unit=unit)
    assert position.device_time == start + timedelta(seconds=15)
    # A later batch whose only fix is the jump again (from the stored trusted fix "c").
    body = post_fixes(unit.pk, key, [fix(start + timedelta(seconds=20), *far, "jump2")]).json()
    assert (body["flagged"], body["moved"]) == (1, False)
    assert UnitPosition.objects.get(unit=unit).device_time == start + timedelta(seconds=15)
    # A late fix older than everything stored has no trusted predecessor: it is trusted.
    body = post_fixes(unit.pk, key, [fix(start - timedelta(seconds=5), lat, lon, "early")]).json()
    assert body["flagged"] == 0


def test_teleport_into_a_site_makes_no_arrival():
    unit = UnitFactory()
    SiteFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=20)
    batch = _path(start, [30_000, 29_900], prefix="road", step_s=10)
    batch.append(fix(start + timedelta(seconds=20), HOSPITAL_LAT, HOSPITAL_LON, "jump"))
    body = post_fixes(unit.pk, key, batch).json()
    assert body["flagged"] == 1 and body["events"] == []
    assert GeofenceEvent.objects.count() == 0


def test_jitter_at_the_boundary_gives_one_arrival_and_one_departure():
    unit = UnitFactory(status=UnitStatus.EN_ROUTE)
    site = SiteFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=30)
    distances = APPROACH + PARKED + LEAVE
    batch = _path(start, distances, prefix="p")
    body = post_fixes(unit.pk, key, batch).json()
    assert body["accepted"] == len(distances) and body["flagged"] == 0
    events = list(GeofenceEvent.objects.filter(unit=unit).order_by("at"))
    assert [(e.kind, e.site_id) for e in events] == [(ARRIVAL, site.pk), (DEPARTURE, site.pk)]
    first_inside = APPROACH.index(295)
    first_beyond_exit = len(APPROACH) + len(PARKED) + LEAVE.index(460)
    assert events[0].at == start + timedelta(seconds=10 * first_inside)
    assert events[0].fix == GpsFix.objects.get(unit=unit, fix_id=f"p{first_inside}")
    assert events[1].at == start + timedelta(seconds=10 * first_beyond_exit)
    assert UnitSiteState.objects.get(unit=unit).site is None


def test_hysteresis_holds_across_batches():
    unit = UnitFactory()
    site = SiteFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=30)
    distances = APPROACH + PARKED + LEAVE
    batch = _path(start, distances, prefix="p")
    for k in range(0, len(batch), 4):  # batches of 4, the state carried between them
        post_fixes(unit.pk, key, batch[k : k + 4])
    kinds = list(GeofenceEvent.objects.filter(unit=unit).order_by("at").values_list("kind", "site"))
    assert kinds == [(ARRIVAL, site.pk), (DEPARTURE, site.pk)]


def test_arrival_and_departure_set_the_visit_and_move_the_unit():
    unit = UnitFactory(status=UnitStatus.EN_ROUTE)
    site = SiteFactory()
    start = timezone.now() - timedelta(minutes=30)
    visit = VisitFactory(unit=unit, hospital=site.organisation, date=timezone.localdate(start))
    other_day = VisitFactory(unit=unit, hospital=site.organisation, date=visit.date + timedelta(days=1))
    served, later = (
        ServiceRequestFactory(
            hospital=site.organisation, operator=unit.operator, status="scheduled", visit=booked,
            earliest_date=booked.date, latest_date=booked.date,
        )
        for booked in (visit, other_day)
    )  # fmt: skip
    _, key = device_key(unit)
    arrive = _path(start, APPROACH + PARKED, prefix="in")
    body = post_fixes(unit.pk, key, arrive).json()
    visit.refresh_from_db()
    arrival_at = start + timedelta(seconds=10 * APPROACH.index(295))
    assert (visit.status, visit.arrived_at, visit.departed_at) == (VisitStatus.ON_SITE, arrival_at, None)
    assert body["events"] == [
        {"kind": "arrival", "site": site.pk, "at": arrival_at.isoformat(), "visit": visit.pk}
    ]
    assert Unit.objects.get(pk=unit.pk).status == UnitStatus.ON_SITE
    leave_start = start + timedelta(seconds=10 * len(arrive))
    post_fixes(unit.pk, key, _path(leave_start, LEAVE, prefix="out"))
    visit.refresh_from_db()
    departed_at = leave_start + timedelta(seconds=10 * LEAVE.index(460))
    assert (visit.status, visit.arrived_at, visit.departed_at) == (VisitStatus.DONE, arrival_at, departed_at)
    assert GeofenceEvent.objects.get(kind=DEPARTURE).visit == visit
    assert Unit.objects.get(pk=unit.pk).status == UnitStatus.RETURNING
    other_day.refresh_from_db()
    assert (other_day.status, other_day.arrived_at) == (VisitStatus.PLANNED, None)
    actions = list(AuditEntry.objects.filter(object_id=str(visit.pk)).values_list("action", flat=True))
    assert actions.count("visit.arrive") == 1 and actions.count("visit.depart") == 1
    # The request served by the visit is fulfilled when the van leaves; the next day's is not.
    served.refresh_from_db()
    later.refresh_from_db()
    assert (served.status, later.status) == ("fulfilled", "scheduled")
    assert (
        AuditEntry.objects.filter(action="service_request.fulfilled", object_id=str(served.pk)).count() == 1
    )


def test_arrival_keeps_an_arrived_at_already_set():
    unit = UnitFactory()
    site = SiteFactory()
    start = timezone.now() - timedelta(minutes=30)
    earlier = start - timedelta(hours=1)
    visit = VisitFactory(
        unit=unit, hospital=site.organisation, date=timezone.localdate(start), status=VisitStatus.EN_ROUTE,
        arrived_at=earlier,
    )  # fmt: skip
    _, key = device_key(unit)
    post_fixes(unit.pk, key, _path(start, APPROACH, prefix="in"))
    visit.refresh_from_db()
    assert (visit.status, visit.arrived_at) == (VisitStatus.ON_SITE, earlier)


def test_refused_status_change_does_not_fail_the_batch():
    # available -> on_site is not a legal transition: logged, events and visit still recorded.
    unit = UnitFactory(status=UnitStatus.AVAILABLE)
    site = SiteFactory()
    start = timezone.now() - timedelta(minutes=30)
    visit = VisitFactory(unit=unit, hospital=site.organisation, date=timezone.localdate(start))
    _, key = device_key(unit)
    response = post_fixes(unit.pk, key, _path(start, APPROACH, prefix="in"))
    assert response.status_code == 200
    assert GeofenceEvent.objects.filter(unit=unit, kind=ARRIVAL).count() == 1
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ON_SITE
    assert Unit.objects.get(pk=unit.pk).status == UnitStatus.AVAILABLE


def test_depot_arrival_makes_a_returning_unit_available(caplog):
    unit = UnitFactory(status=UnitStatus.RETURNING)
    depot = DepotSiteFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=30)
    post_fixes(unit.pk, key, _path(start, APPROACH, prefix="in", lat=DEPOT_LAT, lon=DEPOT_LON))
    assert list(GeofenceEvent.objects.values_list("kind", "site", "visit")) == [(ARRIVAL, depot.pk, None)]
    assert Unit.objects.get(pk=unit.pk).status == UnitStatus.AVAILABLE
    # Leaving the depot asks for en_route; a unit that may not be dispatched (here: no
    # licences) stays available, and the departure is still recorded.
    leave = _path(
        start + timedelta(seconds=10 * len(APPROACH)), LEAVE, prefix="out", lat=DEPOT_LAT, lon=DEPOT_LON
    )
    assert post_fixes(unit.pk, key, leave).status_code == 200
    assert GeofenceEvent.objects.filter(kind=DEPARTURE, site=depot).count() == 1
    assert Unit.objects.get(pk=unit.pk).status == UnitStatus.AVAILABLE
    assert any("not moved to en_route" in r.getMessage() for r in caplog.records)


def test_late_fixes_do_not_drive_geofences():
    unit = UnitFactory()
    SiteFactory()
    _, key = device_key(unit)
    now = timezone.now()
    # The unit is far away now; a backlog from an hour ago passes through the site.
    post_fixes(unit.pk, key, _path(now - timedelta(minutes=1), [5000], prefix="now"))
    body = post_fixes(unit.pk, key, _path(now - timedelta(hours=1), APPROACH + PARKED, prefix="old")).json()
    assert body["accepted"] == len(APPROACH + PARKED) and body["events"] == []
    assert GeofenceEvent.objects.count() == 0


def test_ingest_result_names_the_moved_unit():
    from fleet.services.telemetry import telemetry_ingest

    unit = UnitFactory()
    batch = _path(timezone.now() - timedelta(minutes=30), [5000, 4900], prefix="m")
    first = telemetry_ingest(unit=unit, fixes=batch)
    assert first.moved_unit_ids == [unit.pk] and first.accepted == 2
    again = telemetry_ingest(unit=unit, fixes=batch)
    assert again.moved_unit_ids == [] and again.duplicates == 2


def test_a_large_site_is_found_from_its_edge():
    unit = UnitFactory()
    near = SiteFactory(radius_m=5000)
    SiteFactory(latitude=HOSPITAL_LAT + 1, radius_m=300)  # 111 km north: never a candidate
    _, key = device_key(unit)
    fixes = _path(timezone.now() - timedelta(minutes=5), [5200, 5100, 4950], prefix="e")
    body = post_fixes(unit.pk, key, fixes).json()
    assert [(e["kind"], e["site"]) for e in body["events"]] == [("arrival", near.pk)]
