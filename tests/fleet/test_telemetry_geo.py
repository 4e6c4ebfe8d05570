"""The cheap-then-geodesic distance test agrees with geopy's geodesic around every threshold."""

from __future__ import annotations

import random

from fleet.services.telemetry_geo import farther_than, geodesic_m


def test_farther_than_agrees_with_the_geodesic():
    rng = random.Random(3)
    for _ in range(3000):
        lat1, lon1 = rng.uniform(-80, 80), rng.uniform(-179, 179)
        lat2, lon2 = lat1 + rng.uniform(-0.5, 0.5), lon1 + rng.uniform(-0.5, 0.5)
        exact = geodesic_m(lat1, lon1, lat2, lon2)
        # Thresholds right around the distance, where the sphere alone would be wrong.
        for threshold in (
            exact * 0.995,
            exact * 0.9999,
            exact * 1.0001,
            exact * 1.005,
            exact * 0.5,
            exact * 2,
        ):
            assert farther_than(lat1, lon1, lat2, lon2, threshold) == (exact > threshold)
