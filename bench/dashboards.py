"""Quality dashboards: each selector's latency over 100,000 studies (target < 200 ms).

One run:
  data        N studies over a year from V vans visiting H hospitals (bulk-created): each study
              on a worked visit with its crew, a QC verdict (85 % pass, 10 % warn, 5 % fail) and
              its QC result(s) (10 % with an older run too); the pass/warn ones routed to one of
              3 pools (STAT/urgent/routine) and 95 % signed; 5 % of the reports peer-reviewed,
              2 % critical (85 % acknowledged); maintenance windows; one contract per hospital
  baseline    a bare ``SELECT COUNT(*)`` of the dashboard's main table (cursor.execute): what
              the database costs to touch that table at all
  selectors   each dashboard selector (core/quality/) called as the page calls it, over the
              default 30-day range and over the maximum 366-day range (the whole year), each with
              filters cycling through none, a random hospital, unit, pool; p50/p95 over R runs
  page        GET /workspace/quality/dashboard/ (all six) as a QC officer, default filters
Target: every selector's p95 < 200 ms on both ranges.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time

TARGET_MS = 200.0
PRIORITIES = [("STAT", 0, 60), ("URGENT", 1, 240), ("ROUTINE", 2, 1440)]
RULES = ["slice_thickness", "series_complete", "dose", "patient_match", "required_tags"]
MODALITIES = ["CT", "CT", "MR", "DX"]
BASELINE_TABLE = {
    "turnaround": "telerad_readingtask",
    "qc": "dicom_study",
    "peer": "telerad_peerreview",
    "utilisation": "fleet_visit",
    "coverage": "fleet_servicecontract",
    "critical": "telerad_criticalresult",
}


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _make_world(*, studies: int, units: int, hospitals: int, seed: int) -> dict:
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.utils import timezone

    from core.choices import OrganisationKind
    from core.models import Organisation, User
    from dicom.models import QCResult, Study
    from fleet.models import CrewMember, MaintenanceWindow, ServiceContract, Unit, Visit
    from telerad.models import CriticalResult, PeerReview, ReadingPool, ReadingTask, Report

    rng = random.Random(seed)
    today = timezone.localdate()
    first = today - dt.timedelta(days=365)
    batch = 5000
    with transaction.atomic():
        operator = Organisation.objects.create(name="Bench operator", kind=OrganisationKind.OPERATOR)
        orgs = Organisation.objects.bulk_create(
            Organisation(name=f"Bench hospital {h}", kind=OrganisationKind.HOSPITAL, region_code="BD")
            for h in range(hospitals)
        )
        group_org = Organisation.objects.create(name="Bench readers", kind=OrganisationKind.READING_GROUP)
        pools = [
            ReadingPool.objects.create(
                reading_group=group_org, name=f"Bench pool {p}", modalities=["CT", "MR", "DX"]
            )
            for p in range(3)
        ]
        readers = User.objects.bulk_create(
            User(
                username=f"bench-dash-reader{r}",
                first_name=f"R{r}",
                last_name="Bench",
                organisation=group_org,
            )
            for r in range(30)
        )
        qc_user = User.objects.create(username="bench-dash-qc", organisation=operator)
        qc_user.groups.add(Group.objects.get_or_create(name="qc_officer")[0])
        vans = Unit.objects.bulk_create(
            Unit(
                operator=operator,
                name=f"Bench van {u:02d}",
                modality=MODALITIES[u % len(MODALITIES)],
                ae_title=f"BENCHD{u:02d}",
                capacity_per_day=rng.choice([20, 30, 40]),
                depot_name="Bench depot",
                depot_latitude=30.7,
                depot_longitude=111.3,
            )
            for u in range(units)
        )
        crew = CrewMember.objects.bulk_create(
            CrewMember(operator=operator, full_name=f"Bench crew {u}-{k}", role=role, unit=van)
            for u, van in enumerate(vans)
            for k, role in enumerate(["driver", "radiographer", "technologist"])
        )
        crew_by_unit = {
            van.pk: [m for m in crew if m.unit_id == van.pk and m.role != "driver"] for van in vans
        }
        MaintenanceWindow.objects.bulk_create(
            MaintenanceWindow(
                unit=van,
                starts_at=timezone.make_aware(dt.datetime.combine(first + dt.timedelta(days=d), dt.time(9))),
                ends_at=timezone.make_aware(
                    dt.datetime.combine(first + dt.timedelta(days=d + 2), dt.time(17))
                ),
                reason="bench service",
            )
            for van in vans
            for d in rng.sample(range(360), 4)
        )
        visits = Visit.objects.bulk_create(
            (
                Visit(
                    unit=van,
                    hospital=rng.choice(orgs),
                    date=first + dt.timedelta(days=d),
                    status="done",
                    exams_booked=rng.randint(10, 30),
                    arrived_at=timezone.make_aware(
                        dt.datetime.combine(first + dt.timedelta(days=d), dt.time(8))
                    ),
                )
                for van in vans
                for d in range(366)
                if rng.random() < 0.7
            ),
            batch_size=batch,
        )
        Visit.crew.through.objects.bulk_create(
            (
                Visit.crew.through(visit_id=v.pk, crewmember_id=m.pk)
                for v in visits
                for m in crew_by_unit[v.unit_id]
            ),
            batch_size=batch,
        )
        ServiceContract.objects.bulk_create(
            ServiceContract(
                operator=operator,
                hospital=h,
                modality="CT",
                interval_days=rng.choice([7, 14, 30]),
                starts_on=first,
            )
            for h in orgs
        )
        plan = [rng.choice(visits) for _ in range(studies)]
        study_rows = Study.objects.bulk_create(
            (
                Study(
                    orthanc_id=f"bench-dash-{i:010d}",
                    study_instance_uid=f"1.2.826.0.1.3680043.8.498.88.{i}",
                    accession_number=f"BD{i:09d}",
                    modalities="CT",
                    unit_id=visit.unit_id,
                    hospital_id=visit.hospital_id,
                    study_date=visit.date,
                    ingest_status="matched",
                    qc_outcome=rng.choices(["pass", "warn", "fail"], weights=[85, 10, 5])[0],
                )
                for i, visit in enumerate(plan)
            ),
            batch_size=batch,
        )
        qc_rows = []
        for study in study_rows:
            if rng.random() < 0.1:
                qc_rows.append(
                    QCResult(
                        study=study, outcome="fail", findings=[_finding(rng, "fail")], number_of_instances=5
                    )
                )
            findings = (
                []
                if study.qc_outcome == "pass"
                else [_finding(rng, study.qc_outcome) for _ in range(rng.randint(1, 3))]
            )
            qc_rows.append(
                QCResult(study=study, outcome=study.qc_outcome, findings=findings, number_of_instances=40)
            )
        QCResult.objects.bulk_create(qc_rows, batch_size=batch)
        task_rows, signed = [], []
        for study in study_rows:
            if study.qc_outcome == "fail":
                continue
            priority, rank, sla = rng.choices(PRIORITIES, weights=[1, 3, 12])[0]
            routed = timezone.make_aware(
                dt.datetime.combine(study.study_date, dt.time(rng.randint(8, 17), rng.randint(0, 59)))
            )
            is_signed = rng.random() < 0.95
            task_rows.append(
                ReadingTask(
                    study=study,
                    pool=pools[study.hospital_id % 3],
                    hospital_id=study.hospital_id,
                    modality="CT",
                    priority=priority,
                    priority_rank=rank,
                    routed_at=routed,
                    deadline=routed + dt.timedelta(minutes=sla),
                    status="reported" if is_signed else "unclaimed",
                )
            )
            signed.append(routed + dt.timedelta(minutes=sla * rng.uniform(0.1, 1.5)) if is_signed else None)
        task_rows = ReadingTask.objects.bulk_create(task_rows, batch_size=batch)
        reports = Report.objects.bulk_create(
            (
                Report(
                    task=task,
                    study_id=task.study_id,
                    author=rng.choice(readers),
                    template="bench",
                    status="final",
                    signed_at=at,
                )
                for task, at in zip(task_rows, signed, strict=True)
                if at is not None
            ),
            batch_size=batch,
        )
        peer, critical = [], []
        for report, task in zip(
            reports, (t for t, at in zip(task_rows, signed, strict=True) if at), strict=True
        ):
            roll = rng.random()
            if roll < 0.05:
                reviewer = rng.choice([r for r in readers if r.pk != report.author_id])
                peer.append(
                    PeerReview(
                        report=report,
                        pool=task.pool,
                        first_reader_id=report.author_id,
                        reviewer=reviewer,
                        reason="sampled",
                        status="done",
                        score=rng.choices([1, 2, 3], weights=[85, 10, 5])[0],
                        completed_at=report.signed_at + dt.timedelta(hours=6),
                    )
                )
            elif roll < 0.07:
                acked = (
                    report.signed_at + dt.timedelta(minutes=rng.randint(3, 120))
                    if rng.random() < 0.85
                    else None
                )
                critical.append(
                    CriticalResult(
                        report=report,
                        study_id=report.study_id,
                        hospital_id=task.hospital_id,
                        summary="bench",
                        status="acknowledged" if acked else "open",
                        flagged_by_id=report.author_id,
                        flagged_at=report.signed_at,
                        acknowledged_at=acked,
                    )
                )
        PeerReview.objects.bulk_create(peer, batch_size=batch)
        CriticalResult.objects.bulk_create(critical, batch_size=batch)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return {
        "qc_user": qc_user,
        "hospitals": [h.pk for h in orgs],
        "units": [v.pk for v in vans],
        "pools": [p.pk for p in pools],
        "today": today,
        "counts": {
            "visits": len(visits),
            "qc_results": len(qc_rows),
            "tasks": len(task_rows),
            "reports": len(reports),
            "peer_reviews": len(peer),
            "critical": len(critical),
        },
    }


def _finding(rng: random.Random, severity: str) -> dict:
    return {"rule": rng.choice(RULES), "severity": severity, "message": "bench", "series": None}


def run(
    *, studies: int = 100_000, units: int = 20, hospitals: int = 40, runs: int = 20, seed: int = 5
) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from core.quality.filters import DashboardFilters
    from core.quality.page import BUILDERS

    settings.DEBUG = False
    started = time.perf_counter()
    world = _make_world(studies=studies, units=units, hospitals=hospitals, seed=seed)
    generation_s = time.perf_counter() - started
    rng = random.Random(seed + 1)
    today = world["today"]
    ranges = {"30 days": 30, "366 days": 366}

    def random_filters(days: int, i: int) -> DashboardFilters:
        start, end = today - dt.timedelta(days=days - 1), today
        which = ["none", "hospital", "unit", "pool"][i % 4]
        pick = {
            "hospital": {"hospital_id": rng.choice(world["hospitals"])},
            "unit": {"unit_id": rng.choice(world["units"])},
            "pool": {"pool_id": rng.choice(world["pools"])},
        }.get(which, {})
        # As the operator's QC officer sees them (its tenancy; the page below does the same).
        return DashboardFilters(start=start, end=end, **pick).for_operator(world["qc_user"].organisation_id)

    timings: dict[tuple[str, str], dict[str, list[float]]] = {}
    with connection.cursor() as cursor:
        for key, build in BUILDERS.items():
            for label, days in ranges.items():
                plan = [random_filters(days, i) for i in range(runs)]
                build(plan[0])  # warm
                base_ms, dash_ms = [], []
                for filters in plan:
                    t0 = time.perf_counter()
                    cursor.execute(f"SELECT COUNT(*) FROM {BASELINE_TABLE[key]}")  # noqa: S608 (constant names)
                    cursor.fetchall()
                    base_ms.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    build(filters)
                    dash_ms.append((time.perf_counter() - t0) * 1000)
                timings[(key, label)] = {"baseline": base_ms, "dashboard": dash_ms}

    client = Client()
    client.force_login(world["qc_user"])
    url = "/workspace/quality/dashboard/"
    client.get(url)
    page_ms = []
    for _ in range(max(5, runs // 2)):
        t0 = time.perf_counter()
        response = client.get(url)
        page_ms.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"dashboard page answered {response.status_code}")
    return {
        "database": connection.vendor,
        "studies": studies,
        "units": units,
        "hospitals": hospitals,
        "runs": runs,
        "generation_s": generation_s,
        "counts": world["counts"],
        "timings": timings,
        "page_ms": page_ms,
    }


def print_table(result: dict) -> bool:
    counts = result["counts"]
    print(
        f"\nQuality dashboards: {result['studies']:,} studies over a year "
        f"({counts['qc_results']:,} QC results, {counts['tasks']:,} tasks, "
        f"{counts['reports']:,} signed reports, {counts['peer_reviews']:,} peer reviews, "
        f"{counts['critical']:,} critical results, {counts['visits']:,} visits of {result['units']} vans "
        f"to {result['hospitals']} hospitals; database {result['database']}; generated in "
        f"{result['generation_s']:.1f} s); {result['runs']} runs per row, filters cycling through "
        f"none / a hospital / a unit / a pool\n"
    )
    header = (
        f"{'dashboard':12} {'range':9} {'COUNT(*) p50':>12} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p50 ratio':>10} {'target':>10} {'met':>4}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for (key, label), t in result["timings"].items():
        base50 = _pct(t["baseline"], 50)
        p50, p95 = _pct(t["dashboard"], 50), _pct(t["dashboard"], 95)
        met = p95 < TARGET_MS
        ok &= met
        print(
            f"{key:12} {label:9} {base50:>12.2f} {p50:>8.1f} {p95:>8.1f} {p50 / base50:>10.0f} "
            f"{'< 200 ms':>10} {'yes' if met else 'NO':>4}"
        )
    page = result["page_ms"]
    print(
        f"\nWhole page GET /workspace/quality/dashboard/ (six dashboards, 30 days, no filter): "
        f"p50 {_pct(page, 50):.1f} ms, p95 {_pct(page, 95):.1f} ms (no target)"
    )
    return ok
