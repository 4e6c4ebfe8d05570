"""Database connections under a burst: persistent connections vs per-request vs a pool.

Each configuration runs ``manage.py serve`` with 2 daphne processes (as deployed, one port,
SO_REUSEPORT) on the benchmark database, and ``concurrency`` clients (one asyncio loop, httpx)
send ``requests`` authenticated ``GET /api/me/`` in all (session cookie: session row, user,
organisation and roles, four queries). A separate connection, to the ``postgres`` database so it
is not counted, polls ``pg_stat_activity`` every 20 ms for the sessions on the benchmark
database. Recorded: errors (status >= 500 or no answer), requests/s, p50/p95 latency, the peak
number of connections during the burst, and how many are still open 5 s after it.

  persistent  DB_CONN_MAX_AGE=60, no pool: the old default (the baseline of the ratios)
  per-request DB_CONN_MAX_AGE=0, no pool: one connection opened and closed per request
  pool        DB_CONN_MAX_AGE=0, DB_POOL_SIZE=N: psycopg's pool, at most N per process

The configurations take turns (``rounds`` of all three, the order rotated each round) so a
machine that gets busier during the run does not favour one of them. Needs REDIS_URL (two
processes need a shared channel layer) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench._serve import serve

NEEDS = (
    "bench dbconn needs PostgreSQL (DATABASE_URL=postgres://...) and REDIS_URL: it counts "
    "PostgreSQL sessions, and two daphne processes need a shared channel layer."
)


CONFIGURATIONS = ("persistent", "per-request", "pool")


def configurations(
    pool_sizes: list[int], which: tuple[str, ...] = CONFIGURATIONS
) -> list[tuple[str, dict[str, str]]]:
    configs = []
    if "persistent" in which:
        configs.append(("persistent (CONN_MAX_AGE=60)", {"DB_CONN_MAX_AGE": "60", "DB_POOL_SIZE": "0"}))
    if "per-request" in which:
        configs.append(("per-request (CONN_MAX_AGE=0)", {"DB_CONN_MAX_AGE": "0", "DB_POOL_SIZE": "0"}))
    if "pool" in which:
        for size in pool_sizes:
            configs.append(
                (f"pool (DB_POOL_SIZE={size})", {"DB_CONN_MAX_AGE": "0", "DB_POOL_SIZE": str(size)})
            )
    return configs


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session_cookie() -> str:
    """A signed-in reader's session key (created in the database, as a login would)."""
    from django.test import Client

    from core.choices import OrganisationKind
    from core.models import Organisation, User

    org = Organisation.objects.create(
        name="Bench dbconn group", kind=OrganisationKind.READING_GROUP, region_code="BENCH"
    )
    user = User.objects.create_user(username="bench-dbconn", password=None, organisation=org)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class ConnectionCounter:
    """Polls pg_stat_activity from the ``postgres`` database (so it does not count itself)."""

    def __init__(self, base_url: str, database: str, interval: float = 0.02):
        import psycopg

        self.conn = psycopg.connect(f"{base_url}/postgres", autocommit=True)
        self.database = database
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchone()
        return int(row[0]) if row else 0

    def wait_for(self, at_most: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (n := self.count()) > at_most and time.monotonic() < deadline:
            time.sleep(0.1)
        return n

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            self._stop.wait(self.interval)

    def __enter__(self) -> ConnectionCounter:
        self.peak = self.count()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, self.count())

    def close(self) -> None:
        self.conn.close()


async def _burst(url: str, cookie: str, *, requests: int, concurrency: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    todo = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        cookies={"sessionid": cookie}, limits=limits, timeout=120, trust_env=False
    ) as client:

        async def worker() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                try:
                    response = await client.get(url)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "rps": len(ordered) / wall,
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)],
    }


def _one(
    name: str,
    env: dict[str, str],
    *,
    cookie: str,
    counter: ConnectionCounter,
    processes: int,
    requests: int,
    concurrency: int,
    log_path: Path,
) -> dict:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api/me/"
    with serve(port, processes, log_path, env=env):
        # Warm-up: every process imports its views and opens its first connections untimed.
        asyncio.run(_burst(url, cookie, requests=4 * processes * 10, concurrency=processes * 10))
        with counter:
            result = asyncio.run(_burst(url, cookie, requests=requests, concurrency=concurrency))
        time.sleep(5)
        result["after_5s"] = counter.count()
        result["peak"] = counter.peak
    # The next configuration starts from zero sessions.
    counter.wait_for(0, timeout=30)
    result["name"] = name
    result["pool_size"] = int(env["DB_POOL_SIZE"])
    return result


def run(
    *,
    requests: int = 1000,
    concurrency: int = 200,
    processes: int = 2,
    pool_sizes: list[int] | None = None,
    rounds: int = 2,
    which: tuple[str, ...] = CONFIGURATIONS,
) -> dict:
    from django.db import connection

    from bench._django import close_bench_connections

    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        raise SystemExit(NEEDS)
    cookie = _session_cookie()
    database = connection.settings_dict["NAME"]
    base = os.environ["DATABASE_URL"].rpartition("/")[0]
    close_bench_connections()  # this process holds none during the runs (nor idle in a pool)
    log_path = Path(tempfile.mkdtemp(prefix="caravan-dbconn-")) / "serve.log"
    counter = ConnectionCounter(base, database)
    configs = configurations(pool_sizes or [10], which)
    runs: dict[str, list[dict]] = {name: [] for name, _ in configs}
    try:
        for r in range(rounds):
            for name, env in configs[r % len(configs) :] + configs[: r % len(configs)]:
                runs[name].append(
                    _one(
                        name,
                        env,
                        cookie=cookie,
                        counter=counter,
                        processes=processes,
                        requests=requests,
                        concurrency=concurrency,
                        log_path=log_path,
                    )
                )
    finally:
        counter.close()
    return {
        "requests": requests,
        "concurrency": concurrency,
        "processes": processes,
        "rounds": rounds,
        "runs": runs,
        "log": str(log_path),
    }


def _merged(runs: list[dict]) -> dict:
    """Per configuration over its rounds: errors summed, peaks the maximum, rates and latencies
    the median of the rounds."""
    return {
        "errors": sum(r["errors"] for r in runs),
        "error_kinds": sorted({k for r in runs for k in r["error_kinds"]}),
        "rps": statistics.median(r["rps"] for r in runs),
        "p50": statistics.median(r["p50"] for r in runs),
        "p95": statistics.median(r["p95"] for r in runs),
        "peak": max(r["peak"] for r in runs),
        "after_5s": max(r["after_5s"] for r in runs),
        "pool_size": runs[0]["pool_size"],
    }


def print_table(result: dict) -> bool:
    print(
        f"\nDatabase connections: {result['processes']} daphne processes, {result['concurrency']} "
        f"concurrent clients, {result['requests']} x GET /api/me/ per run, {result['rounds']} "
        f"round(s) (median of the rounds; errors summed, peaks the maximum)\n"
    )
    header = (
        f"{'configuration':30} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'peak conns':>10} {'after 5 s':>9} {'req/s x':>8} {'p95 x':>6} {'peak x':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = {name: _merged(runs) for name, runs in result["runs"].items()}
    base = next(iter(rows.values()))
    for name, row in rows.items():
        print(
            f"{name:30} {row['errors']:>6} {row['rps']:>7.0f} {row['p50']:>7.1f} {row['p95']:>7.1f} "
            f"{row['peak']:>10} {row['after_5s']:>9} {row['rps'] / base['rps']:>8.2f} "
            f"{row['p95'] / base['p95']:>6.2f} {row['peak'] / max(1, base['peak']):>7.2f}"
        )
    for name, row in rows.items():
        if row["errors"]:
            print(f"  {name}: errors {', '.join(row['error_kinds'])}")
    print("\nratios (x) against the first row, measured in the same run; server log:", result["log"])
    # The target: a pool holds no more than processes x DB_POOL_SIZE and nothing fails.
    ok = True
    for name, row in rows.items():
        if row["pool_size"]:
            bound = result["processes"] * row["pool_size"]
            met = row["errors"] == 0 and row["peak"] <= bound
            ok &= met
            print(f"{name}: 0 errors and peak <= {bound}: {'yes' if met else 'NO'}")
    print("per round:")
    for name, runs in result["runs"].items():
        cells = ", ".join(
            f"{r['rps']:.0f} req/s p95 {r['p95']:.0f} ms peak {r['peak']} err {r['errors']}" for r in runs
        )
        print(f"  {name}: {cells}")
    return ok
