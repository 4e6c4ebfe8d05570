"""Run the benchmarks and print their tables.

    python -m bench                      # every benchmark
    python -m bench audit [--entries N]  # audit chain verification
    python -m bench ingest [--studies N --slices N --size PX --stable-age S --rounds N]
    python -m bench worklist [--tasks N --readers N --pools N --requests N --reported F]
    python -m bench fanout [--clients N --events N --servers N]  # needs REDIS_URL
    python -m bench telemetry [--units N --minutes N --interval S --batch S]
    python -m bench planner [--time-limit S --seed N]  # 30 units, 300 requests, 10 days
    python -m bench dashboards [--studies N --runs N]    # quality dashboards over 100,000 studies
    python -m bench dbconn [--requests N --concurrency N --processes N --pool-size N [N..] --rounds N
                            --configs persistent,per-request,pool]
                                         # PostgreSQL connections under a burst; needs REDIS_URL

Ratios are against baselines measured in the same run, on the same machine. Exit code 1 when
a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys


def _audit(args) -> bool:
    from bench import audit

    rows = audit.run(args.entries)
    header = (
        f"{'benchmark':32} {'entries':>9} {'seconds':>8} {'entries/s':>12} "
        f"{'vs scan':>8} {'target/s':>10} {'met':>4}"
    )
    print("\nAudit chain verification\n")
    print(header)
    print("-" * len(header))
    scan_rate = rows[0]["n"] / rows[0]["seconds"]
    ok = True
    for row in rows:
        rate = row["n"] / row["seconds"]
        target = row.get("target")
        met = "" if target is None else ("yes" if rate >= target else "NO")
        ok &= met != "NO"
        print(
            f"{row['name']:32} {row['n']:>9,} {row['seconds']:>8.3f} {rate:>12,.0f} "
            f"{rate / scan_rate:>8.2f} {'' if target is None else f'{target:,}':>10} {met:>4}"
        )
    return ok


def _ingest(args) -> bool:
    from bench import ingest

    result = ingest.run(
        studies=args.studies,
        slices=args.slices,
        size=args.size,
        stable_age=args.stable_age,
        rounds=args.rounds,
    )
    return ingest.print_table(result)


def _fanout_possible(*, skipping: bool = False) -> bool:
    import os

    from bench.fanout import NEEDS_REDIS

    if os.environ.get("REDIS_URL"):
        return True
    print(f"\n{NEEDS_REDIS}" + (" Skipped." if skipping else ""), file=sys.stdout if skipping else sys.stderr)
    return False


def _fanout(args, *, required: bool = True) -> bool:
    from bench import fanout

    if not _fanout_possible(skipping=not required):
        return not required
    result = fanout.run(clients=args.clients, events=args.events, servers=args.servers)
    return fanout.print_table(result)


def _worklist(args) -> bool:
    from bench import worklist

    result = worklist.run(
        tasks=args.tasks,
        readers=args.readers,
        pools=args.pools,
        requests=args.requests,
        reported_fraction=args.reported,
    )
    return worklist.print_table(result)


def _telemetry(args) -> bool:
    from bench import telemetry

    result = telemetry.run(
        units=args.units, minutes=args.minutes, interval_s=args.interval, batch_s=args.batch
    )
    return telemetry.print_table(result)


def _planner(args) -> bool:
    from bench import planner

    rows = planner.run(time_limit_s=args.time_limit, seed=args.seed)
    return planner.print_table(rows, time_limit_s=args.time_limit, seed=args.seed)


def _dashboards(args) -> bool:
    from bench import dashboards

    result = dashboards.run(studies=args.studies, runs=args.runs)
    return dashboards.print_table(result)


def _dbconn_possible(*, skipping: bool = False) -> bool:
    from bench.dbconn import NEEDS

    url = os.environ.get("DATABASE_URL", "")
    if os.environ.get("REDIS_URL") and url.startswith(("postgres://", "postgresql://")):
        return True
    print(f"\n{NEEDS}" + (" Skipped." if skipping else ""), file=sys.stdout if skipping else sys.stderr)
    return False


def _dbconn(args, *, required: bool = True) -> bool:
    from bench import dbconn

    if not _dbconn_possible(skipping=not required):
        return not required
    result = dbconn.run(
        requests=args.requests,
        concurrency=args.concurrency,
        processes=args.processes,
        pool_sizes=args.pool_size,
        rounds=args.rounds,
        which=tuple(args.configs.split(",")),
    )
    return dbconn.print_table(result)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="which")
    audit_p = sub.add_parser("audit", help="audit chain verification (target >= 100,000 entries/s)")
    audit_p.add_argument("--entries", type=int, default=200_000)
    ingest_p = sub.add_parser("ingest", help="ingest throughput vs bare Orthanc, STABLE->routable latency")
    ingest_p.add_argument("--studies", type=int, default=20)
    ingest_p.add_argument("--slices", type=int, default=200)
    ingest_p.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    ingest_p.add_argument("--stable-age", type=int, default=2, help="Orthanc StableAge (seconds)")
    ingest_p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of fresh studies; even rounds send to the platform first",
    )
    fanout_p = sub.add_parser("fanout", help="websocket fan-out to 1,000 readers vs bare channels-redis")
    fanout_p.add_argument("--clients", type=int, default=1000)
    fanout_p.add_argument("--events", type=int, default=50)
    fanout_p.add_argument(
        "--servers",
        type=int,
        default=os.cpu_count() or 1,
        help="daphne processes behind one port (manage.py serve; default: one per core, as deployed)",
    )
    worklist_p = sub.add_parser(
        "worklist", help="worklist API p95 with 100,000 studies; constant query count"
    )
    worklist_p.add_argument("--tasks", type=int, default=100_000)
    worklist_p.add_argument("--readers", type=int, default=30)
    worklist_p.add_argument("--pools", type=int, default=3)
    worklist_p.add_argument("--requests", type=int, default=300)
    worklist_p.add_argument(
        "--reported", type=float, default=0.9, help="fraction of the studies already reported (history)"
    )
    telemetry_p = sub.add_parser("telemetry", help="GPS batch ingest through the API vs a bare bulk insert")
    telemetry_p.add_argument("--units", type=int, default=200)
    telemetry_p.add_argument("--minutes", type=int, default=60, help="simulated time")
    telemetry_p.add_argument("--interval", type=int, default=5, help="seconds between fixes")
    telemetry_p.add_argument("--batch", type=int, default=60, help="seconds between a unit's batches")
    planner_p = sub.add_parser(
        "planner", help="visit planner: OR-Tools vs greedy and vs a 6x longer run (30 units, 300 requests)"
    )
    planner_p.add_argument("--time-limit", type=float, default=5.0, help="OR-Tools default time limit (s)")
    planner_p.add_argument("--seed", type=int, default=7)
    dashboards_p = sub.add_parser(
        "dashboards", help="quality dashboard selectors over 100,000 studies (< 200 ms)"
    )
    dashboards_p.add_argument("--studies", type=int, default=100_000)
    dashboards_p.add_argument("--runs", type=int, default=20, help="timed runs per dashboard and range")
    dbconn_p = sub.add_parser(
        "dbconn", help="PostgreSQL connections and latency under a burst: CONN_MAX_AGE=60 vs 0 vs pool"
    )
    dbconn_p.add_argument("--requests", type=int, default=1000, help="requests per configuration and round")
    dbconn_p.add_argument("--concurrency", type=int, default=200)
    dbconn_p.add_argument("--processes", type=int, default=2, help="daphne processes (manage.py serve)")
    dbconn_p.add_argument(
        "--pool-size", type=int, nargs="+", default=[10], help="DB_POOL_SIZE of the pool configuration(s)"
    )
    dbconn_p.add_argument(
        "--configs",
        default="persistent,per-request,pool",
        help="comma list of persistent, per-request, pool (the first is the baseline of the ratios)",
    )
    dbconn_p.add_argument("--rounds", type=int, default=2, help="rounds of all configurations, order rotated")
    args = parser.parse_args()
    if args.which == "fanout" and not _fanout_possible():
        return 2
    if args.which == "dbconn" and not _dbconn_possible():
        return 2

    from bench._django import drop_bench_postgres_db, setup_bench_django

    # The dashboards bench loads its own database, dropped afterwards (it is large); dbconn counts
    # the sessions on its own database, so nobody else's benchmark is counted.
    own = {"dashboards": "caravan_bench_dash", "dbconn": "caravan_bench_dbconn"}
    backend = setup_bench_django(own.get(args.which, "caravan_bench"))
    print(f"Caravan benchmarks (database: {backend})")
    if args.which is None:
        args = parser.parse_args(["audit"])
        ok = _audit(args)
        ok &= _ingest(parser.parse_args(["ingest"]))
        ok &= _fanout(parser.parse_args(["fanout"]), required=False)
        ok &= _worklist(parser.parse_args(["worklist"]))
        ok &= _telemetry(parser.parse_args(["telemetry"]))
        ok &= _planner(parser.parse_args(["planner"]))
        ok &= _dashboards(parser.parse_args(["dashboards"]))
        ok &= _dbconn(parser.parse_args(["dbconn"]), required=False)
    elif args.which == "audit":
        ok = _audit(args)
    elif args.which == "fanout":
        ok = _fanout(args)
    elif args.which == "worklist":
        ok = _worklist(args)
    elif args.which == "telemetry":
        ok = _telemetry(args)
    elif args.which == "planner":
        ok = _planner(args)
    elif args.which == "dashboards":
        try:
            ok = _dashboards(args)
        finally:
            drop_bench_postgres_db()
    elif args.which == "dbconn":
        try:
            ok = _dbconn(args)
        finally:
            drop_bench_postgres_db()
    else:
        ok = _ingest(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
