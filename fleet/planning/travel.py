"""Travel time and distance between points, behind one protocol so that a real routing engine
(OSRM's table service, say) can replace the geodesic estimate without touching the solvers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from geopy.distance import geodesic

from fleet.planning.model import Point


class TravelProvider(Protocol):
    def km(self, a: Point, b: Point) -> float: ...

    def minutes(self, a: Point, b: Point) -> float: ...


class GeodesicTravel:
    """Road distance ~ geodesic x road_factor; time at a constant average speed.

    Geodesic distance costs ~70 us in geopy, and the solvers ask for the same pairs again and
    again, so pairs are cached (symmetrically)."""

    def __init__(self, road_factor: float = 1.3, speed_kmh: float = 50.0) -> None:
        if road_factor < 1 or speed_kmh <= 0:
            raise ValueError("road_factor must be >= 1 and speed_kmh > 0")
        self.road_factor = road_factor
        self.speed_kmh = speed_kmh
        self._cache: dict[tuple[Point, Point], float] = {}

    def km(self, a: Point, b: Point) -> float:
        if a == b:
            return 0.0
        key = (a, b) if a <= b else (b, a)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = geodesic(a, b).km * self.road_factor
        return cached

    def minutes(self, a: Point, b: Point) -> float:
        return self.km(a, b) / self.speed_kmh * 60


class MatrixTravel:
    """A supplied matrix (from a routing engine or a dispatcher's table) over known points."""

    def __init__(
        self, points: Sequence[Point], km: Sequence[Sequence[float]], minutes: Sequence[Sequence[float]]
    ) -> None:
        n = len(points)
        if len(km) != n or len(minutes) != n or any(len(r) != n for r in (*km, *minutes)):
            raise ValueError("km and minutes must be square matrices over the points")
        self._index = {p: i for i, p in enumerate(points)}
        if len(self._index) != n:
            raise ValueError("points must be distinct")
        self._km = [list(r) for r in km]
        self._minutes = [list(r) for r in minutes]

    def _ij(self, a: Point, b: Point) -> tuple[int, int]:
        try:
            return self._index[a], self._index[b]
        except KeyError as exc:
            raise KeyError(f"point {exc.args[0]} is not in the travel matrix") from None

    def km(self, a: Point, b: Point) -> float:
        i, j = self._ij(a, b)
        return self._km[i][j]

    def minutes(self, a: Point, b: Point) -> float:
        i, j = self._ij(a, b)
        return self._minutes[i][j]
