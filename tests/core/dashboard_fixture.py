"""A small hand-made world for the quality dashboards; every expected number is worked out in
tests/core/test_dashboards.py from the values written here.

March 2026, day D = 2026-03-10. Operator "Fixture Imaging": two hospitals (Alpha, Beta), two vans
(CT Van A: capacity 20, MR Van B: capacity 10), two pools (P1: SLA 60/240/1440 min, P2: STAT 30
min), two readers.

A second operator, "Other Imaging" (``build_other``), works at the same Alpha hospital and in the
same pool P1, and alone at Gamma Hospital and in pool P3 (STAT SLA 15 min), with its own van (CT
Van Z), crew (Zed Tech) and reader (Cy Reader): every number of Fixture Imaging's dashboards stays
what it was without it, and its own numbers are worked out in tests/core/test_dashboards.py too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from dicom.models import QCResult
from fleet.models import MaintenanceWindow, ServiceContract, Visit
from telerad.models import CriticalResult, PeerReview, ReadingTask, Report
from tests.dicom.factories import HospitalFactory, StudyFactory
from tests.fleet.factories import CrewMemberFactory, OperatorFactory, UnitFactory
from tests.telerad.factories import RadiologistUserFactory, ReadingPoolFactory

D = dt.date(2026, 3, 10)
RANK = {"STAT": 0, "URGENT": 1, "ROUTINE": 2}


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


@dataclass
class World:
    operator: Any
    alpha: Any
    beta: Any
    van_a: Any
    van_b: Any
    p1: Any
    p2: Any
    ann: Any
    bob: Any
    tasks: dict[int, ReadingTask] = field(default_factory=dict)
    studies: dict[int, Any] = field(default_factory=dict)
    # The other operator (build_other).
    other: Any = None
    van_z: Any = None
    gamma: Any = None
    p3: Any = None
    cy: Any = None


def _study(w: World, n: int, unit, hospital, day: dt.date, outcome: str):
    study = StudyFactory(
        unit=unit,
        hospital=hospital,
        study_date=day,
        qc_outcome=outcome,
        ingest_status="matched",
        modalities="CT",
    )
    w.studies[n] = study
    return study


def _task(
    w: World, n: int, *, priority: str, unit, hospital, pool, routed_at, signed_after=None, author=None
):
    study = _study(w, n, unit, hospital, timezone.localdate(routed_at), "pass")
    sla = {
        "STAT": pool.sla_stat_minutes,
        "URGENT": pool.sla_urgent_minutes,
        "ROUTINE": pool.sla_routine_minutes,
    }
    task = ReadingTask.objects.create(
        study=study,
        pool=pool,
        hospital=hospital,
        modality="CT",
        priority=priority,
        priority_rank=RANK[priority],
        routed_at=routed_at,
        deadline=routed_at + dt.timedelta(minutes=sla[priority]),
        status="reported" if signed_after is not None else "unclaimed",
    )
    if signed_after is not None:
        Report.objects.create(
            task=task,
            study=study,
            author=author or w.ann,
            template="ct-head",
            status="final",
            signed_at=routed_at + dt.timedelta(minutes=signed_after),
        )
    w.tasks[n] = task
    return task


def build_world() -> World:
    operator = OperatorFactory(name="Fixture Imaging")
    w = World(
        operator=operator,
        alpha=HospitalFactory(name="Alpha Hospital"),
        beta=HospitalFactory(name="Beta Hospital"),
        van_a=UnitFactory(operator=operator, name="CT Van A", capacity_per_day=20),
        van_b=UnitFactory(operator=operator, name="MR Van B", modality="MR", capacity_per_day=10),
        p1=ReadingPoolFactory(name="Pool 1"),
        p2=ReadingPoolFactory(name="Pool 2", sla_stat_minutes=30),
        ann=RadiologistUserFactory(first_name="Ann", last_name="Reader"),
        bob=RadiologistUserFactory(first_name="Bob", last_name="Reader"),
    )
    a, b = w.van_a, w.van_b
    # Reading tasks 1-6 in March (7 in February: outside the range); minutes to signature.
    _task(w, 1, priority="STAT", unit=a, hospital=w.alpha, pool=w.p1, routed_at=at(D, 8), signed_after=30)
    _task(w, 2, priority="STAT", unit=a, hospital=w.alpha, pool=w.p1, routed_at=at(D, 9), signed_after=90)
    _task(w, 3, priority="STAT", unit=b, hospital=w.beta, pool=w.p2, routed_at=at(D, 9), signed_after=50)
    _task(
        w,
        4,
        priority="URGENT",
        unit=a,
        hospital=w.alpha,
        pool=w.p1,
        routed_at=at(D, 10),
        signed_after=100,
        author=w.bob,
    )
    _task(w, 5, priority="URGENT", unit=b, hospital=w.beta, pool=w.p1, routed_at=at(D, 10))  # never signed
    _task(
        w,
        6,
        priority="ROUTINE",
        unit=a,
        hospital=w.alpha,
        pool=w.p1,
        routed_at=at(D, 11),
        signed_after=600,
        author=w.bob,
    )
    _task(
        w,
        7,
        priority="ROUTINE",
        unit=a,
        hospital=w.alpha,
        pool=w.p1,
        routed_at=at(dt.date(2026, 2, 20), 8),
        signed_after=10,
    )
    # QC verdicts: 1, 3, 4, 6, 7 pass (from _task); 2 and 5 warn; 8 and 9 fail; 10 pending.
    for n, rule in ((2, "slice_thickness"), (5, "dose")):
        w.studies[n].qc_outcome = "warn"
        w.studies[n].save(update_fields=["qc_outcome"])
        QCResult.objects.create(
            study=w.studies[n], outcome="warn", findings=[_f(rule, "warn")], number_of_instances=10
        )
    s8 = _study(w, 8, a, w.alpha, D, "fail")
    QCResult.objects.create(study=s8, outcome="fail", findings=[_f("dose", "fail")], number_of_instances=5)
    QCResult.objects.create(
        study=s8,
        outcome="fail",
        findings=[_f("patient_match", "fail"), _f("slice_thickness", "warn")],
        number_of_instances=10,
    )
    s9 = _study(w, 9, b, w.beta, D + dt.timedelta(days=1), "fail")
    QCResult.objects.create(
        study=s9,
        outcome="fail",
        findings=[_f("series_complete", "fail"), _f("series_complete", "warn")],
        number_of_instances=10,
    )
    _study(w, 10, a, w.alpha, D, "pending")
    # Visits and crews.
    chen = CrewMemberFactory(operator=operator, full_name="Chen Tech", role="technologist", unit=a)
    dan = CrewMemberFactory(operator=operator, full_name="Dan Driver", role="driver", unit=a)
    li = CrewMemberFactory(operator=operator, full_name="Li Rad", role="radiographer", unit=b)
    v1 = Visit.objects.create(
        unit=a,
        hospital=w.alpha,
        date=D,
        status="done",
        exams_booked=5,
        arrived_at=at(D, 7),
        departed_at=at(D, 17),
    )
    v1.crew.add(chen, dan)
    v2 = Visit.objects.create(
        unit=b, hospital=w.beta, date=D, status="done", exams_booked=3, arrived_at=at(D, 7)
    )
    v2.crew.add(li)
    v3 = Visit.objects.create(
        unit=a, hospital=w.beta, date=D + dt.timedelta(days=1), status="cancelled", exams_booked=4
    )
    v3.crew.add(chen)
    Visit.objects.create(
        unit=a, hospital=w.alpha, date=D + dt.timedelta(days=2), status="planned", exams_booked=2
    )
    MaintenanceWindow.objects.create(
        unit=a, starts_at=at(dt.date(2026, 3, 20), 10), ends_at=at(dt.date(2026, 3, 21), 9), reason="gantry"
    )
    # Contracts: Alpha CT served on D (due 04-09); Beta CT never served; Beta MR served on D, every 7 days.
    start = dt.date(2026, 1, 1)
    ServiceContract.objects.create(
        operator=operator, hospital=w.alpha, modality="CT", interval_days=30, starts_on=start
    )
    ServiceContract.objects.create(
        operator=operator, hospital=w.beta, modality="CT", interval_days=14, starts_on=start
    )
    ServiceContract.objects.create(
        operator=operator, hospital=w.beta, modality="MR", interval_days=7, starts_on=start
    )
    # Peer reviews: Ann's reports 1 (score 1) and 2 (score 3), Bob's 4 (score 2); Bob's 6 still assigned.
    for n, score, reviewer in ((1, 1, w.bob), (2, 3, w.bob), (4, 2, w.ann), (6, None, w.ann)):
        report = w.tasks[n].report
        PeerReview.objects.create(
            report=report,
            pool=w.tasks[n].pool,
            first_reader=report.author,
            reviewer=reviewer,
            reason="sampled",
            status="done" if score else "assigned",
            score=score,
            completed_at=at(D, 20) if score else None,
        )
    # Critical results: Alpha acknowledged after 20 and 50 minutes; Beta's still open.
    for n, flagged, acked in (
        (1, at(D, 10), at(D, 10, 20)),
        (4, at(D, 11), at(D, 11, 50)),
        (3, at(D, 12), None),
    ):
        task = w.tasks[n]
        CriticalResult.objects.create(
            report=task.report,
            study=task.study,
            hospital=task.hospital,
            summary="finding",
            status="acknowledged" if acked else "open",
            flagged_by=task.report.author,
            flagged_at=flagged,
            acknowledged_at=acked,
            acknowledged_by=task.report.author if acked else None,
        )
    build_other(w)
    return w


def build_other(w: World) -> None:
    """Other Imaging's month (studies numbered from 50): STAT at Alpha in P1 signed after 5 min
    (critical, acknowledged after 5 min; peer-reviewed by Ann, score 3), routine at Gamma in P3
    signed after 20 min, a QC fail at Alpha (rule contrast_timing); one worked visit to Alpha on D
    (9 booked, crew Zed Tech), maintenance on 5 March; CT contracts at Alpha (every 7 days) and
    Gamma (never served)."""
    other = OperatorFactory(name="Other Imaging")
    w.other = other
    w.gamma = HospitalFactory(name="Gamma Hospital")
    w.van_z = z = UnitFactory(operator=other, name="CT Van Z", capacity_per_day=8)
    w.p3 = ReadingPoolFactory(name="Pool 3", sla_stat_minutes=15)
    w.cy = RadiologistUserFactory(first_name="Cy", last_name="Reader")
    _task(
        w,
        50,
        priority="STAT",
        unit=z,
        hospital=w.alpha,
        pool=w.p1,
        routed_at=at(D, 8),
        signed_after=5,
        author=w.cy,
    )
    _task(
        w,
        51,
        priority="ROUTINE",
        unit=z,
        hospital=w.gamma,
        pool=w.p3,
        routed_at=at(D, 9),
        signed_after=20,
        author=w.cy,
    )
    s52 = _study(w, 52, z, w.alpha, D, "fail")
    QCResult.objects.create(
        study=s52, outcome="fail", findings=[_f("contrast_timing", "fail")], number_of_instances=4
    )
    zed = CrewMemberFactory(operator=other, full_name="Zed Tech", role="technologist", unit=z)
    visit = Visit.objects.create(
        unit=z, hospital=w.alpha, date=D, status="done", exams_booked=9, arrived_at=at(D, 7)
    )
    visit.crew.add(zed)
    MaintenanceWindow.objects.create(
        unit=z, starts_at=at(dt.date(2026, 3, 5), 8), ends_at=at(dt.date(2026, 3, 5), 12), reason="coil"
    )
    start = dt.date(2026, 1, 1)
    ServiceContract.objects.create(
        operator=other, hospital=w.alpha, modality="CT", interval_days=7, starts_on=start
    )
    ServiceContract.objects.create(
        operator=other, hospital=w.gamma, modality="CT", interval_days=30, starts_on=start
    )
    report = w.tasks[50].report
    PeerReview.objects.create(
        report=report,
        pool=w.p1,
        first_reader=w.cy,
        reviewer=w.ann,
        reason="sampled",
        status="done",
        score=3,
        completed_at=at(D, 20),
    )
    CriticalResult.objects.create(
        report=report,
        study=report.study,
        hospital=w.alpha,
        summary="finding",
        status="acknowledged",
        flagged_by=w.cy,
        flagged_at=at(D, 9),
        acknowledged_at=at(D, 9, 5),
        acknowledged_by=w.cy,
    )


def _f(rule: str, severity: str) -> dict:
    return {"rule": rule, "severity": severity, "message": f"{rule} {severity}", "series": None}
