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


def _make_orders(n: int):
    from core.choices import OrganisationKind
    from core.models import Organisation, User
    from dicom.models import Order
    from dicom.uids import new_uid
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
    return [
        Order.objects.create(
            hospital=hospital,
            unit=unit,
            scheduled_date=date.today(),
            accession_number=f"BENCH{i:06d}",
            study_instance_uid=new_uid(),
            requested_procedure="CT ABDOMEN",
            modality="CT",
            body_part="ABDOMEN",
            patient_id=f"BP{i:06d}",
            patient_name=f"BENCH^PATIENT{i}",
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
    launcher.start(config, timeout=30)
    try:
        yield config
    finally:
        launcher.stop(config.run_dir, timeout=20)


def _settle() -> None:
    """Start a timed run with no dirty pages left by what came before (generation, the other run)."""
    os.sync()
    time.sleep(1)


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


def _wait_routable(n: int, timeout: float) -> tuple[list[float], list[float]]:
    """STABLE -> routable of each study, and of that STABLE -> mirrored (nudge, ingest task)."""
    from dicom.models import Study

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = list(
            Study.objects.filter(routable_at__isnull=False, stable_at__isnull=False).values_list(
                "stable_at", "ingested_at", "routable_at"
            )
        )
        if len(done) >= n:
            total = sorted((routable - stable).total_seconds() for stable, _ingested, routable in done)
            ingest = sorted((ingested - stable).total_seconds() for stable, ingested, _routable in done)
            return total, ingest
        time.sleep(0.5)
    raise RuntimeError(f"only {Study.objects.filter(routable_at__isnull=False).count()}/{n} studies routable")


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(*, studies: int = 20, slices: int = 200, size: int = 512, stable_age: int = 2) -> dict:
    from django.conf import settings

    orders = _make_orders(studies)
    t0 = time.perf_counter()
    datasets = _studies(orders, slices, size)
    generation = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="caravan-bench-ingest-"))
    try:
        with _orthanc(
            work / "bare", nudge_url="http://127.0.0.1:9/", bare=True, stable_age=stable_age
        ) as cfg:
            _settle()
            bare_n, bare_s = _send_all(cfg, datasets)
        # The bare run wrote ~2 GB: drop it and flush it to disk now, or the kernel's writeback of
        # it would land in the platform run's time.
        shutil.rmtree(work / "bare", ignore_errors=True)
        (platform_port,) = _free_ports(1)
        platform_url = f"http://127.0.0.1:{platform_port}"
        db_url = os.environ["DATABASE_URL"]
        with _orthanc(
            work / "platform", nudge_url=platform_url + "/api/dicom/orthanc/nudge/", bare=False,
            stable_age=stable_age,
        ) as cfg:  # fmt: skip
            env = _platform_env(cfg, db_url, platform_url)
            with _platform(env, platform_port, work):
                _settle()
                plat_n, plat_s = _send_all(cfg, datasets)
                latencies, to_ingest = _wait_routable(studies, timeout=120 + stable_age)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": "redis + celery worker" if os.environ.get("REDIS_URL") else "eager (in the web process)",
        "studies": studies,
        "slices": slices,
        "size": size,
        "generation_s": generation,
        "bare": (bare_n, bare_s),
        "platform": (plat_n, plat_s),
        "latencies": latencies,
        "to_ingest": to_ingest,
    }


def print_table(result: dict) -> bool:
    bare_n, bare_s = result["bare"]
    plat_n, plat_s = result["platform"]
    bare_rate, plat_rate = bare_n / bare_s, plat_n / plat_s
    ratio = plat_rate / bare_rate
    lat = result["latencies"]
    p50, p95 = _pct(lat, 50), _pct(lat, 95)
    print(
        f"\nIngest: {result['studies']} studies x {result['slices']} CT slices "
        f"{result['size']}x{result['size']} (database {result['database']}, tasks {result['broker']}; "
        f"generated in {result['generation_s']:.1f} s)\n"
    )
    header = (
        f"{'run':28} {'instances':>10} {'seconds':>8} {'inst/s':>9} {'ratio':>7} {'target':>8} {'met':>4}"
    )
    print(header)
    print("-" * len(header))
    print(f"{'bare Orthanc (baseline)':28} {bare_n:>10,} {bare_s:>8.2f} {bare_rate:>9.1f} {1.0:>7.3f}")
    ratio_ok = ratio >= TARGET_RATIO
    print(
        f"{'Orthanc + platform':28} {plat_n:>10,} {plat_s:>8.2f} {plat_rate:>9.1f} {ratio:>7.3f}"
        f" {'>= 0.95':>8} {'yes' if ratio_ok else 'NO':>4}"
    )
    p95_ok = p95 <= TARGET_P95_S
    print(
        f"\nSTABLE -> routable latency over {len(lat)} studies: p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
        f"(target p95 <= 500 ms: {'yes' if p95_ok else 'NO'})"
    )
    ingest = result["to_ingest"]
    print(
        f"  of which STABLE -> mirrored (nudge, ingest task): p50 {_pct(ingest, 50) * 1000:.0f} ms, "
        f"p95 {_pct(ingest, 95) * 1000:.0f} ms; the rest is QC (headers from Orthanc, one image "
        "decoded per series)"
    )
    return ratio_ok and p95_ok
