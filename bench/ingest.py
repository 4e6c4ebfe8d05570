"""Ingest: what the platform costs Orthanc, and how fast a stable study becomes readable.

One run, two Orthancs started from the same launcher on free loopback ports, the same studies:
  bare      Orthanc with the DICOMweb plugin only: no Caravan plugin, no platform
  platform  Orthanc with Caravan's plugin nudging a running platform (daphne + Celery worker
            when REDIS_URL is set, else tasks run in the web process), which ingests, matches,
            runs QC and marks each study routable while the van keeps sending
Each study is sent by C-STORE over one association (TCP_NODELAY), one study after another,
as a van does. Printed: instances/s of each run, their ratio (target >= 0.95), and the
latency from Orthanc's STABLE_STUDY (timestamped by the plugin) to the study being routable,
p50/p95 (target p95 <= 0.5 s).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCU_AET = "BENCHVAN"
TARGET_RATIO = 0.95
TARGET_P95_S = 0.5


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _bench_site():
    """The hospital, user and CT unit every round's orders are booked for."""
    from core.choices import OrganisationKind
    from core.models import Organisation, User
    from fleet.models import Unit

    operator = Organisation.objects.create(
        name="Bench operator", kind=OrganisationKind.OPERATOR, region_code="B"
    )
    hospital = Organisation.objects.create(
        name="Bench hospital", kind=OrganisationKind.HOSPITAL, region_code="B"
    )
    user = User.objects.create(username="bench", organisation=hospital)
    unit = Unit.objects.create(
        operator=operator, name="Bench CT", modality="CT", ae_title=SCU_AET, capacity_per_day=500,
        depot_name="Bench", depot_latitude=30.0, depot_longitude=114.0,
    )  # fmt: skip
    return hospital, user, unit


def _make_orders(site, n: int, round_number: int):
    from dicom.models import Order
    from dicom.uids import new_uid

    hospital, user, unit = site
    return [
        Order.objects.create(
            hospital=hospital,
            unit=unit,
            scheduled_date=date.today(),
            accession_number=f"BENCH{round_number}{i:05d}",
            study_instance_uid=new_uid(),
            requested_procedure="CT ABDOMEN",
            modality="CT",
            body_part="ABDOMEN",
            patient_id=f"BP{round_number}{i:05d}",
            patient_name=f"BENCH^PATIENT{round_number}^{i}",
            patient_sex="F",
            patient_birth_date=date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
            created_by=user,
        )  # fmt: skip
        for i in range(n)
    ]


def _studies(orders, slices: int, size: int):
    from dicom.synth import make_study, spec_from_order

    return [
        make_study(
            spec_from_order(order, slices_per_series=slices, rows=size, columns=size, station_aet=SCU_AET)
        )
        for order in orders
    ]


@contextmanager
def _orthanc(run_dir: Path, *, nudge_url: str, bare: bool, stable_age: int):
    from dicom.orthanc import launcher

    http_port, dicom_port = _free_ports(2)
    extra = {"Plugins": [os.path.join(launcher.PLUGINS_DIR, launcher.DICOMWEB_PLUGIN_NAME)]} if bare else {}
    config = launcher.OrthancConfig(
        run_dir=run_dir,
        username="bench",
        password=secrets.token_urlsafe(12),
        plugin_secret=secrets.token_urlsafe(24),
        nudge_url=nudge_url,
        http_port=http_port,
        dicom_port=dicom_port,
        aet="BENCHORTHANC",
        modalities=(launcher.Modality(SCU_AET, "127.0.0.1", 11112),),
        stable_age=stable_age,
        name="bench",
        extra=extra,
    )
    pid = launcher.start(config, timeout=30)
    try:
        yield config, pid
    finally:
        launcher.stop(config.run_dir, timeout=20)
        # A run writes ~2 GB: drop it now (the next run's _settle flushes what is left), or the
        # kernel's writeback of it would land in the next run's time.
        shutil.rmtree(run_dir, ignore_errors=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    from dicom.orthanc.launcher import proc_stat_fields

    fields = proc_stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle() -> None:
    """Start a timed run with no dirty pages left by what came before (generation, the other run)."""
    os.sync()
    time.sleep(1)


def _timed_send(config, pid: int, datasets) -> tuple[int, float, float]:
    """Settle, then send every study: instances stored, seconds, the Orthanc's CPU seconds."""
    _settle()
    cpu = _cpu_seconds(pid)
    sent, seconds = _send_all(config, datasets)
    return sent, seconds, _cpu_seconds(pid) - cpu


def _send_all(config, studies) -> tuple[int, float]:
    from dicom.synth import send_study

    sent, started = 0, time.perf_counter()
    for datasets in studies:
        result = send_study(
            datasets, host="127.0.0.1", port=config.dicom_port, calling_aet=SCU_AET, called_aet=config.aet
        )
        sent += result.stored
    return sent, time.perf_counter() - started


def _platform_env(config, db_url: str, platform_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db_url,
            "ORTHANC_URL": config.url,
            "ORTHANC_USERNAME": config.username,
            "ORTHANC_PASSWORD": config.password,
            "ORTHANC_PLUGIN_SECRET": config.plugin_secret,
            "ORTHANC_AET": config.aet,
            "ORTHANC_DICOM_PORT": str(config.dicom_port),
            "PLATFORM_URL": platform_url,
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
        }
    )
    return env


@contextmanager
def _platform(env: dict[str, str], port: int, log_dir: Path):
    venv_bin = Path(sys.executable).parent
    procs = []
    with open(log_dir / "daphne.log", "w") as daphne_log, open(log_dir / "worker.log", "w") as worker_log:
        yield from _run_platform(env, port, log_dir, venv_bin, procs, daphne_log, worker_log)


def _run_platform(env, port, log_dir, venv_bin, procs, daphne_log, worker_log):
    try:
        procs.append(
            subprocess.Popen(
                [str(venv_bin / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
                cwd=ROOT, env=env, stdout=daphne_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        if env.get("REDIS_URL"):
            procs.append(
                subprocess.Popen(
                    [str(venv_bin / "celery"), "-A", "config", "worker", "-c", "2", "--loglevel=WARNING"],
                    cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=2)  # noqa: S310
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the platform did not start; see {log_dir}/daphne.log") from None
                time.sleep(0.3)
        time.sleep(2 if env.get("REDIS_URL") else 0)  # let the worker join the queue
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_routable(orders, timeout: float) -> tuple[list[float], list[float]]:
    """STABLE -> routable of each study, and of that STABLE -> mirrored (nudge, ingest task)."""
    from dicom.models import Study

    n = len(orders)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = list(
            Study.objects.filter(
                order__in=orders, routable_at__isnull=False, stable_at__isnull=False
            ).values_list("stable_at", "ingested_at", "routable_at")
        )
        if len(done) >= n:
            total = sorted((routable - stable).total_seconds() for stable, _ingested, routable in done)
            ingest = sorted((ingested - stable).total_seconds() for stable, ingested, _routable in done)
            return total, ingest
        time.sleep(0.5)
    routable = Study.objects.filter(order__in=orders, routable_at__isnull=False).count()
    raise RuntimeError(f"only {routable}/{n} studies routable")


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _bare_run(work: Path, datasets, stable_age: int) -> dict:
    with _orthanc(work / "bare", nudge_url="http://127.0.0.1:9/", bare=True, stable_age=stable_age) as (
        cfg,
        pid,
    ):
        sent, seconds, used = _timed_send(cfg, pid, datasets)
    return {"kind": "bare", "instances": sent, "seconds": seconds, "orthanc_cpu": used}


def _platform_run(work: Path, datasets, orders, stable_age: int) -> dict:
    (platform_port,) = _free_ports(1)
    platform_url = f"http://127.0.0.1:{platform_port}"
    with _orthanc(
        work / "platform", nudge_url=platform_url + "/api/dicom/orthanc/nudge/", bare=False,
        stable_age=stable_age,
    ) as (cfg, pid):  # fmt: skip
        env = _platform_env(cfg, os.environ["DATABASE_URL"], platform_url)
        with _platform(env, platform_port, work):
            sent, seconds, used = _timed_send(cfg, pid, datasets)
            latencies, to_ingest = _wait_routable(orders, timeout=120 + stable_age)
    return {
        "kind": "platform",
        "instances": sent,
        "seconds": seconds,
        "orthanc_cpu": used,
        "latencies": latencies,
        "to_ingest": to_ingest,
    }


def run(
    *, studies: int = 20, slices: int = 200, size: int = 512, stable_age: int = 2, rounds: int = 2
) -> dict:
    """``rounds`` rounds of fresh studies, each sent to a bare Orthanc and to Orthanc + platform;
    odd rounds send to the bare Orthanc first, even rounds to the platform, so neither side is
    always sent second (the slower position on a busy machine)."""
    from django.conf import settings

    if rounds < 1 or studies < 1:
        raise ValueError("the ingest benchmark needs at least one round and one study")
    site = _bench_site()
    runs: list[dict] = []
    generation = 0.0
    for round_number in range(1, rounds + 1):
        orders = _make_orders(site, studies, round_number)
        t0 = time.perf_counter()
        datasets = _studies(orders, slices, size)
        generation += time.perf_counter() - t0
        work = Path(tempfile.mkdtemp(prefix="caravan-bench-ingest-"))
        try:
            order = ("bare", "platform") if round_number % 2 else ("platform", "bare")
            for kind in order:
                if kind == "bare":
                    result = _bare_run(work, datasets, stable_age)
                else:
                    result = _platform_run(work, datasets, orders, stable_age)
                runs.append({**result, "round": round_number})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        del datasets
    return {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": "redis + celery worker" if os.environ.get("REDIS_URL") else "eager (in the web process)",
        "studies": studies,
        "slices": slices,
        "size": size,
        "rounds": rounds,
        "generation_s": generation,
        "runs": runs,
    }


def _rate(runs: list[dict]) -> tuple[int, float, float]:
    instances = sum(r["instances"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return instances, seconds, instances / seconds


def print_table(result: dict) -> bool:
    runs = result["runs"]
    print(
        f"\nIngest: {result['rounds']} round(s) of {result['studies']} studies x {result['slices']} "
        "CT slices "
        f"{result['size']}x{result['size']} (database {result['database']}, tasks {result['broker']}; "
        f"generated in {result['generation_s']:.1f} s)\n"
    )
    header = (
        f"{'run':34} {'instances':>10} {'seconds':>8} {'inst/s':>9} {'ratio':>7} {'target':>8} {'met':>4}"
        f" {'Orthanc CPU s':>14}"
    )
    print(header)
    print("-" * len(header))
    for round_number in range(1, result["rounds"] + 1):
        in_round = [r for r in runs if r["round"] == round_number]
        (bare,) = [r for r in in_round if r["kind"] == "bare"]
        for r in in_round:
            rate = r["instances"] / r["seconds"]
            ratio = rate / (bare["instances"] / bare["seconds"])
            label = f"round {round_number}: " + (
                "bare Orthanc" if r["kind"] == "bare" else "Orthanc + platform"
            )
            print(
                f"{label:34} {r['instances']:>10,} {r['seconds']:>8.2f} {rate:>9.1f} {ratio:>7.3f}"
                f" {'':>8} {'':>4} {r['orthanc_cpu']:>14.1f}"
            )
    bare_n, bare_s, bare_rate = _rate([r for r in runs if r["kind"] == "bare"])
    plat_n, plat_s, plat_rate = _rate([r for r in runs if r["kind"] == "platform"])
    ratio = plat_rate / bare_rate
    ratio_ok = ratio >= TARGET_RATIO
    bare_cpu = sum(r["orthanc_cpu"] for r in runs if r["kind"] == "bare")
    plat_cpu = sum(r["orthanc_cpu"] for r in runs if r["kind"] == "platform")
    print("-" * len(header))
    print(
        f"{'all rounds: bare Orthanc (baseline)':34} {bare_n:>10,} {bare_s:>8.2f} {bare_rate:>9.1f}"
        f" {1.0:>7.3f}"
        f" {'':>8} {'':>4} {bare_cpu:>14.1f}"
    )
    print(
        f"{'all rounds: Orthanc + platform':34} {plat_n:>10,} {plat_s:>8.2f} {plat_rate:>9.1f} {ratio:>7.3f}"
        f" {'>= 0.95':>8} {'yes' if ratio_ok else 'NO':>4} {plat_cpu:>14.1f}"
    )
    print("(Orthanc CPU: what that Orthanc used while the van sent: storing, plus the platform's reads)")
    bare_rates = [r["instances"] / r["seconds"] for r in runs if r["kind"] == "bare"]
    if len(bare_rates) > 1:
        spread = (max(bare_rates) - min(bare_rates)) / min(bare_rates)
        print(f"The machine's own noise: the bare runs differ by {spread:.1%} in inst/s.")
    lat = [value for r in runs if r["kind"] == "platform" for value in r["latencies"]]
    ingest = [value for r in runs if r["kind"] == "platform" for value in r["to_ingest"]]
    p50, p95 = _pct(lat, 50), _pct(lat, 95)
    p95_ok = p95 <= TARGET_P95_S
    print(
        f"\nSTABLE -> routable latency over {len(lat)} studies: p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
        f"(target p95 <= 500 ms: {'yes' if p95_ok else 'NO'})"
    )
    print(
        f"  of which STABLE -> mirrored (nudge, ingest task): p50 {_pct(ingest, 50) * 1000:.0f} ms, "
        f"p95 {_pct(ingest, 95) * 1000:.0f} ms; the rest is QC (headers from Orthanc, one image "
        "decoded per series)"
    )
    return ratio_ok and p95_ok
