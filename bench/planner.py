"""Planner: 30 units, 300 requests, 10 days in Hubei (target: <= 10 s, within 5 % of a 6x longer
OR-Tools run, better than greedy, zero hard-constraint violations).

One fixed-seed instance: depots in Hubei's prefecture cities, hospitals scattered up to ~60 km
around them, CT/MR/DX units and requests, maintenance days off, windows of 2-5 days. Runs the
greedy baseline, OR-Tools at the default time limit, and OR-Tools at 6x that limit. The
objective is lexicographic (weighted requests served, then km), so "within 5 %" compares the
weighted served and the km separately.
"""

from __future__ import annotations

import random

from fleet.planning import GeodesicTravel, PlanInput, PlanRequest, PlanUnit, plan_greedy, plan_ortools
from fleet.planning.check import plan_violations

# (name, lat, lon): Hubei prefecture-level cities.
CITIES = [
    ("Wuhan", 30.593, 114.305), ("Yichang", 30.692, 111.287), ("Xiangyang", 32.009, 112.122),
    ("Jingzhou", 30.335, 112.240), ("Shiyan", 32.629, 110.798), ("Huanggang", 30.447, 114.872),
    ("Xiaogan", 30.925, 113.917), ("Jingmen", 31.035, 112.200), ("Huangshi", 30.200, 115.039),
    ("Xianning", 29.841, 114.322), ("Suizhou", 31.690, 113.382), ("Enshi", 30.272, 109.488),
    ("Tianmen", 30.663, 113.166), ("Qianjiang", 30.402, 112.900), ("Xiantao", 30.362, 113.454),
]  # fmt: skip
CAPACITY = {"CT": 40, "MR": 14, "DX": 60}
PATIENTS = {"CT": (5, 20), "MR": (2, 8), "DX": (8, 30)}
DEFAULT_LIMIT_S = 5.0


def instance(seed: int = 7, units: int = 30, requests: int = 300, days: int = 10) -> PlanInput:
    rng = random.Random(seed)
    modalities = ["CT"] * 12 + ["MR"] * 8 + ["DX"] * 10
    plan_units = []
    for k in range(units):
        _name, lat, lon = CITIES[k % len(CITIES)]
        off = {d for d in range(days) if rng.random() < 0.15}  # maintenance, licence, crew rest
        plan_units.append(
            PlanUnit(
                id=f"U{k:02d}",
                modality=modalities[k % len(modalities)],
                capacity_per_day=CAPACITY[modalities[k % len(modalities)]],
                depot=(lat, lon),
                available_days=frozenset(set(range(days)) - off),
                crew_minutes_per_day=600,
            )
        )
    hospitals = []
    for h in range(requests // 2):
        _name, lat, lon = rng.choice(CITIES)
        where = (round(lat + rng.gauss(0, 0.3), 4), round(lon + rng.gauss(0, 0.35), 4))
        hospitals.append((f"H{h:03d}", where))
    plan_requests = []
    for k in range(requests):
        hid, loc = rng.choice(hospitals)
        modality = rng.choices(["CT", "MR", "DX"], weights=[4, 3, 3])[0]
        earliest = rng.randrange(days)
        plan_requests.append(
            PlanRequest(
                id=f"R{k:03d}",
                hospital_id=hid,
                location=loc,
                modality=modality,
                patients=rng.randint(*PATIENTS[modality]),
                earliest_day=earliest,
                latest_day=min(days - 1, earliest + rng.randint(1, 4)),
                priority=rng.choice([1, 1, 1, 2, 2, 4]),
                overdue_days=rng.choice([0, 0, 0, 10, 30, 90]),
            )
        )
    return PlanInput(units=tuple(plan_units), requests=tuple(plan_requests), days=days)


def run(time_limit_s: float = DEFAULT_LIMIT_S, seed: int = 7) -> list[dict]:
    inp = instance(seed)
    rows = []
    for name, solve in [
        ("greedy", lambda travel: plan_greedy(inp, travel)),
        (f"ortools {time_limit_s:g} s", lambda travel: plan_ortools(inp, travel, time_limit_s=time_limit_s)),
        (
            f"ortools {6 * time_limit_s:g} s",
            lambda travel: plan_ortools(inp, travel, time_limit_s=6 * time_limit_s),
        ),
    ]:
        travel = GeodesicTravel()  # a fresh cache each: geodesic time counts in every run
        result = solve(travel)
        rows.append(
            {
                "name": name,
                "served": len(result.visits),
                "requests": len(inp.requests),
                "weighted": result.weighted_served,
                "km": result.km,
                "violations": len(plan_violations(inp, result, travel)),
                "seconds": result.wall_seconds,
                "status": result.status,
            }
        )
    return rows


def print_table(rows: list[dict], time_limit_s: float = DEFAULT_LIMIT_S, seed: int = 7) -> bool:
    greedy, default, long = rows
    header = (
        f"{'solver':16} {'served':>8} {'weighted':>9} {'km':>9} {'violations':>10} {'seconds':>8}  status"
    )
    print(f"\nPlanner: 30 units, 300 requests, 10 days (Hubei, seed {seed})\n")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:16} {r['served']:>4}/{r['requests']:<3} {r['weighted']:>9.1f} {r['km']:>9.0f} "
            f"{r['violations']:>10} {r['seconds']:>8.2f}  {r['status']}"
        )
    checks = {
        "no violations": all(r["violations"] == 0 for r in rows),
        "default run <= 10 s": default["seconds"] <= 10,
        "weighted within 5 % of long run": default["weighted"] >= 0.95 * long["weighted"],
        "km within 5 % of long run (or more served)": default["km"] <= 1.05 * long["km"]
        or default["weighted"] > long["weighted"],
        "better than greedy": (default["weighted"], -default["km"]) > (greedy["weighted"], -greedy["km"]),
    }
    print()
    for what, met in checks.items():
        print(f"  {what:44} {'yes' if met else 'NO'}")
    return all(checks.values())
