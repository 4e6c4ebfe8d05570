"""Distance tests for telemetry: geodesic (geopy, WGS-84) where it matters, a cheap sphere elsewhere.

Most fixes are nowhere near a threshold (a geofence radius, the teleport speed); the
haversine distance settles those in about a microsecond, and geopy's geodesic (~60 us) decides
only the ones within the sphere's error of the threshold.
"""

from __future__ import annotations

import math

from geopy.distance import geodesic

EARTH_RADIUS_M = 6_371_008.8
# The sphere of mean radius is within 0.6 % of the WGS-84 geodesic; 1 % keeps a margin.
SPHERE_SLACK = 0.01


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def geodesic_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(geodesic((lat1, lon1), (lat2, lon2)).meters)


def farther_than(lat1: float, lon1: float, lat2: float, lon2: float, metres: float) -> bool:
    """Whether the geodesic distance between the points exceeds ``metres``."""
    approx = haversine_m(lat1, lon1, lat2, lon2)
    if approx > metres * (1 + SPHERE_SLACK):
        return True
    if approx < metres * (1 - SPHERE_SLACK):
        return False
    return geodesic_m(lat1, lon1, lat2, lon2) > metres
