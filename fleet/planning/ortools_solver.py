"""OR-Tools routing formulation.

Each (unit, day) the unit can work is a vehicle that leaves its depot and comes back within the
crew's minutes; each servable request is an optional node (dropping it costs its weight scaled
so that serving always beats travel); a `patients` dimension carries daily capacity, a `time`
dimension travel + setup + scanning. Allowed vehicles per node encode modality, date window
and availability; locked visits are pinned to their vehicle and may not be dropped; moving a
previously published visit costs `change_km` worth of travel through a `moved` dimension.
The search starts from the greedy plan (so it never does worse), then guided local search runs
until the time limit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from fleet.planning.greedy import locked_vehicles, plan_greedy
from fleet.planning.model import PlanInput, PlanResult
from fleet.planning.routes import Vehicle, build_result, unservable_reason
from fleet.planning.travel import TravelProvider

DIST_PER_KM = 10  # arc costs in units of 100 m
TIME_PER_MIN = 10  # time dimension in tenths of a minute, rounded up: never optimistic
WEIGHT_SCALE = 100  # request weight -> integer units


def _status_name(code: int) -> str:
    try:
        return routing_enums_pb2.RoutingSearchStatus.Value.Name(code).removeprefix("ROUTING_").lower()
    except ValueError:
        return str(code)


def plan_ortools(
    inp: PlanInput,
    travel: TravelProvider,
    *,
    time_limit_s: float = 5.0,
    change_km: float = 500.0,
    warm_start: bool = True,
    on_progress: Callable[[float], None] | None = None,
) -> PlanResult:
    """``on_progress(seconds_elapsed)`` is called (at most twice a second) as better solutions come."""
    started = time.perf_counter()
    locks = locked_vehicles(inp)
    reasons = {r.id: why for r in inp.requests if (why := unservable_reason(inp, r)) and r.id not in locks}
    requests = [r for r in inp.requests if r.id not in reasons]
    units = list(inp.units)
    allowed: list[list[int]] = []
    vehicles: list[Vehicle] = []
    vehicle_index: dict[Vehicle, int] = {}
    for r in requests:
        mine = []
        for u in units:
            for day in range(max(r.earliest_day, 0), min(r.latest_day, inp.days - 1) + 1):
                if inp.can_serve(u, r, day):
                    if (u.id, day) not in vehicle_index:
                        vehicle_index[(u.id, day)] = len(vehicles)
                        vehicles.append((u.id, day))
                    mine.append(vehicle_index[(u.id, day)])
        allowed.append(mine)
    if not vehicles:
        return build_result(inp, travel, {}, wall_seconds=time.perf_counter() - started,
                            status="no vehicles", solver="ortools", reasons=reasons)  # fmt: skip

    # A depot no vehicle starts from would be an ordinary node that must be visited: leave out
    # the units that cannot work any useful day.
    working = {u for u, _d in vehicles}
    units = [u for u in units if u.id in working]
    unit_index = {u.id: k for k, u in enumerate(units)}
    n_units = len(units)
    points = [u.depot for u in units] + [r.location for r in requests]
    n = len(points)
    # Only pairs some vehicle could chain get a real distance: geodesics cost ~70 us each.
    modality = [u.modality for u in units] + [r.modality for r in requests]
    window = [(0, inp.days)] * n_units + [(r.earliest_day, r.latest_day) for r in requests]
    horizon = max(u.crew_minutes_per_day for u in units) * TIME_PER_MIN + 1
    far_dist = 10**9
    dist = [[0] * n for _ in range(n)]
    tmin = [[0] * n for _ in range(n)]
    service = [0] * n_units + [math.ceil(inp.service_minutes(r) * TIME_PER_MIN) for r in requests]
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if i < n_units and j < n_units:
                compatible = False
            else:
                overlap = window[i][0] <= window[j][1] and window[j][0] <= window[i][1]
                compatible = modality[i] == modality[j] and (i < n_units or j < n_units or overlap)
            if compatible:
                dist[i][j] = round(travel.km(points[i], points[j]) * DIST_PER_KM)
                minutes = travel.minutes(points[i], points[j])
                tmin[i][j] = service[i] + math.ceil(minutes * TIME_PER_MIN - 1e-9)
            else:
                dist[i][j], tmin[i][j] = far_dist, horizon

    starts = [unit_index[u] for u, _d in vehicles]
    manager = pywrapcp.RoutingIndexManager(n, len(vehicles), starts, starts)
    routing = pywrapcp.RoutingModel(manager)
    dist_cb = routing.RegisterTransitMatrix(dist)
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)
    unit_of = [units[unit_index[u]] for u, _d in vehicles]
    demand_cb = routing.RegisterUnaryTransitVector([0] * n_units + [r.patients for r in requests])
    routing.AddDimensionWithVehicleCapacity(
        demand_cb, 0, [u.capacity_per_day for u in unit_of], True, "patients"
    )
    time_cb = routing.RegisterTransitMatrix(tmin)
    routing.AddDimensionWithVehicleCapacity(
        time_cb, 0, [u.crew_minutes_per_day * TIME_PER_MIN for u in unit_of], True, "time"
    )

    # Serving the lightest request must beat the largest possible travel saving from dropping it.
    max_arc = max((d for row in dist for d in row if d < far_dist), default=0)
    change_cost = round(change_km * DIST_PER_KM)
    serve_unit = 2 * max_arc * (len(requests) + 1) + change_cost * (len(inp.previous) + 1) + 1
    previous = {p.request_id: (p.unit_id, p.day) for p in inp.previous}
    for k, r in enumerate(requests):
        index = manager.NodeToIndex(n_units + k)
        if r.id in locks:
            routing.VehicleVar(index).SetValue(vehicle_index[locks[r.id]])
            continue
        # SetAllowedVehiclesForIndex's absl::Span binding rejects Python lists in 9.15; -1 = dropped.
        routing.VehicleVar(index).SetValues([-1, *allowed[k]])
        penalty = max(1, round(r.weight * WEIGHT_SCALE)) * serve_unit
        routing.AddDisjunction([index], penalty + (change_cost if r.id in previous else 0))
    if previous:
        moved_cbs = []
        for v in vehicles:
            vec = [0] * n_units + [int(r.id in previous and previous[r.id] != v) for r in requests]
            moved_cbs.append(routing.RegisterUnaryTransitVector(vec))
        routing.AddDimensionWithVehicleTransits(moved_cbs, 0, len(requests) + 1, True, "moved")
        routing.GetDimensionOrDie("moved").SetSpanCostCoefficientForAllVehicles(change_cost)

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    routing.CloseModelWithParameters(params)
    if on_progress is not None:
        last = [0.0]

        def at_solution() -> None:
            elapsed = time.perf_counter() - started
            if elapsed - last[0] >= 0.5:
                last[0] = elapsed
                on_progress(elapsed)

        routing.AddAtSolutionCallback(at_solution)

    initial = None
    greedy = None
    if warm_start:
        greedy = plan_greedy(inp, travel)
        node_of = {r.id: n_units + k for k, r in enumerate(requests)}
        hint = [[] for _ in vehicles]  # type: list[list[int]]
        for visit in sorted(greedy.visits, key=lambda v: (v.unit_id, v.day, v.sequence)):
            hint[vehicle_index[(visit.unit_id, visit.day)]].append(node_of[visit.request_id])
        for k, route in enumerate(hint):
            _trim_to_integer_time(route, starts[k], tmin, unit_of[k].crew_minutes_per_day * TIME_PER_MIN)
        initial = routing.ReadAssignmentFromRoutes(hint, True)
    if initial is not None:
        solution = routing.SolveFromAssignmentWithParameters(initial, params)
    else:
        solution = routing.SolveWithParameters(params)
    status = _status_name(routing.status())
    if solution is None:
        fallback = plan_greedy(inp, travel)
        return build_result(
            inp, travel, _routes_of(fallback),
            wall_seconds=time.perf_counter() - started, status=f"{status}; greedy fallback",
            solver="ortools", reasons=reasons,
        )  # fmt: skip

    routes: dict[Vehicle, list[str]] = {}
    for k, vehicle in enumerate(vehicles):
        index = solution.Value(routing.NextVar(routing.Start(k)))
        stops = []
        while not routing.IsEnd(index):
            stops.append(requests[manager.IndexToNode(index) - n_units].id)
            index = solution.Value(routing.NextVar(index))
        if stops:
            routes[vehicle] = stops
    result = build_result(
        inp, travel, routes, wall_seconds=time.perf_counter() - started,
        status=status, solver="ortools", reasons=reasons,
    )  # fmt: skip
    if greedy is not None and greedy.weighted_served > result.weighted_served + 1e-9:
        # The warm start trims greedy routes that only fit crew hours in exact minutes; if the
        # search ran out of time before serving those requests again, the greedy plan is better.
        return dataclasses.replace(
            greedy,
            wall_seconds=time.perf_counter() - started,
            status=f"{status}; greedy plan kept (served more)",
            solver="ortools",
        )
    return result


def _trim_to_integer_time(route: list[int], depot: int, tmin: list[list[int]], limit: int) -> None:
    """The greedy plan is checked in exact minutes; our integer times round up, so a route at the
    very edge of crew hours may not fit the model: drop its last stops until it does."""
    while route:
        stops = [depot, *route, depot]
        if sum(tmin[a][b] for a, b in zip(stops, stops[1:], strict=False)) <= limit:
            return
        route.pop()


def _routes_of(result: PlanResult) -> dict[Vehicle, list[str]]:
    routes: dict[Vehicle, list[str]] = {}
    for visit in sorted(result.visits, key=lambda v: (v.unit_id, v.day, v.sequence)):
        routes.setdefault((visit.unit_id, visit.day), []).append(visit.request_id)
    return routes
