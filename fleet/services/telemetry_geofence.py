"""Geofences with hysteresis: a unit enters a site within ``radius_m`` and leaves it only beyond
``max(radius_m x EXIT_FACTOR, radius_m + EXIT_MARGIN_M)``, so GPS jitter at the boundary gives
one arrival and one departure, not a burst of them.
"""

from __future__ import annotations

import math
from datetime import datetime

from fleet.choices import GeofenceEventKind
from fleet.models import GeofenceEvent, GpsFix, Site, Unit, UnitSiteState
from fleet.services.telemetry_config import telemetry_setting
from fleet.services.telemetry_effects import geofence_effect_apply
from fleet.services.telemetry_geo import farther_than, geodesic_m

METRES_PER_DEGREE = 111_320.0
# Per edge: the batch's extreme, then (radius_m x factor + margin) >= each site's exit radius,
# converted to degrees.
_NEARBY_SQL = (
    "SELECT * FROM fleet_site WHERE "
    "latitude >= %s - (radius_m * %s + %s) / %s AND latitude <= %s + (radius_m * %s + %s) / %s "
    "AND longitude >= %s - (radius_m * %s + %s) / %s AND longitude <= %s + (radius_m * %s + %s) / %s "
    "ORDER BY id"
)


def site_exit_radius_m(site: Site) -> float:
    factor = float(telemetry_setting("TELEMETRY_GEOFENCE_EXIT_FACTOR"))
    margin = float(telemetry_setting("TELEMETRY_GEOFENCE_EXIT_MARGIN_M"))
    return max(site.radius_m * factor, site.radius_m + margin)


def _beyond(fix: GpsFix, site: Site, metres: float) -> bool:
    return farther_than(fix.latitude, fix.longitude, site.latitude, site.longitude, metres)


def _nearby_sites(fixes: list[GpsFix]) -> list[Site]:
    """Sites whose exit circle may touch the batch's bounding box (a superset; one query).

    Plain SQL: the same filter built from ORM expressions cost more to compile than to run.
    """
    factor = float(telemetry_setting("TELEMETRY_GEOFENCE_EXIT_FACTOR"))
    margin = float(telemetry_setting("TELEMETRY_GEOFENCE_EXIT_MARGIN_M"))
    lats = [fix.latitude for fix in fixes]
    lons = [fix.longitude for fix in fixes]
    # A degree of longitude shrinks with latitude; the widest |lat| of the batch bounds it.
    lon_scale = METRES_PER_DEGREE * max(math.cos(math.radians(max(abs(x) for x in lats))), 0.01)
    params: list[float] = []
    for edge, scale in ((min(lats), METRES_PER_DEGREE), (max(lats), METRES_PER_DEGREE)):
        params += [edge, factor, margin, scale]
    for edge, scale in ((min(lons), lon_scale), (max(lons), lon_scale)):
        params += [edge, factor, margin, scale]
    return list(Site.objects.raw(_NEARBY_SQL, params))


def _entered(fix: GpsFix, sites: list[Site]) -> Site | None:
    """The nearest site whose radius holds the fix (by distance relative to the radius)."""
    inside = []
    for site in sites:
        if not _beyond(fix, site, site.radius_m):
            metres = geodesic_m(fix.latitude, fix.longitude, site.latitude, site.longitude)
            inside.append((metres / site.radius_m, site.pk, site))
    return min(inside, key=lambda item: item[:2])[2] if inside else None


def geofence_process(*, unit: Unit, fixes: list[GpsFix]) -> list[GeofenceEvent]:
    """Walk trusted, stored fixes (device-time order) through the unit's site state.

    Records one GeofenceEvent per arrival or departure, applies its effects (visit, unit
    status) in order, and saves the new state. Called inside the ingest's transaction.
    """
    if not fixes:
        return []
    state = UnitSiteState.objects.select_related("site").filter(unit=unit).first()
    current: Site | None = state.site if state else None
    since: datetime | None = state.since if state else None
    sites = _nearby_sites(fixes)
    events: list[GeofenceEvent] = []
    for fix in fixes:
        if current is not None and _beyond(fix, current, site_exit_radius_m(current)):
            events.append(
                GeofenceEvent(
                    unit=unit, site=current, kind=GeofenceEventKind.DEPARTURE, at=fix.device_time, fix=fix
                )
            )
            current, since = None, fix.device_time
        if current is None:
            site = _entered(fix, sites)
            if site is not None:
                events.append(
                    GeofenceEvent(
                        unit=unit, site=site, kind=GeofenceEventKind.ARRIVAL, at=fix.device_time, fix=fix
                    )
                )
                current, since = site, fix.device_time
    if not events:
        return []
    for event in events:
        geofence_effect_apply(unit=unit, event=event)
    GeofenceEvent.objects.bulk_create(events)
    UnitSiteState.objects.update_or_create(unit=unit, defaults={"site": current, "since": since})
    return events
