"""The QC officer's dashboards in Debian's Chromium on the demo: six charts drawn from server data,
Chart.js from static/vendor (nothing off-site), a CSV link per table; screenshot saved."""

from __future__ import annotations

import datetime as dt
import os
import random

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from core.demo_data import DEMO_PASSWORD
from dicom.models import QCResult, Study
from fleet.models import CrewMember, Unit, Visit
from telerad.models import CriticalResult, PeerReview, Radiologist, ReadingPool, ReadingTask, Report
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, running_daphne, sign_in, watched_page
from tests.fleet.factories import OperatorFactory, UnitFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PRIORITIES = [("STAT", 0, 60), ("URGENT", 1, 240), ("ROUTINE", 2, 1440)]
RULES = ["slice_thickness", "series_complete", "dose", "patient_match"]


def _quality_history(days: int = 14, per_day: int = 6) -> None:
    """What the demo lacks: two weeks of worked visits, QC'd studies, signed reports, peer reviews
    and critical results on the demo's own units, hospitals, pools and readers."""
    rng = random.Random(3)
    today = timezone.localdate()
    units = list(Unit.objects.exclude(name="DR Van 2").order_by("name"))
    pools = list(ReadingPool.objects.order_by("name"))
    readers = list(Radiologist.objects.select_related("user").order_by("user__username"))
    hospitals = [v.hospital for v in Visit.objects.select_related("hospital").order_by("id")][:6]
    serial = 0
    for back in range(1, days + 1):
        day = today - dt.timedelta(days=back)
        for unit in units:
            if rng.random() < 0.3:
                continue  # a day at the depot
            hospital = rng.choice(hospitals)
            arrived = timezone.make_aware(dt.datetime.combine(day, dt.time(8)))
            visit = Visit.objects.create(
                unit=unit,
                hospital=hospital,
                date=day,
                status="done",
                exams_booked=per_day + 2,
                arrived_at=arrived,
            )
            visit.crew.set(CrewMember.objects.filter(unit=unit))
            for _ in range(rng.randint(per_day - 2, per_day + 2)):
                serial += 1
                outcome = rng.choices(["pass", "warn", "fail"], weights=[8, 2, 1])[0]
                study = Study.objects.create(
                    orthanc_id=f"dash-{serial:06d}",
                    study_instance_uid=f"1.2.826.0.1.3680043.8.498.99.{serial}",
                    accession_number=f"DASH{serial:06d}",
                    modalities=unit.modality,
                    unit=unit,
                    hospital=hospital,
                    study_date=day,
                    ingest_status="matched",
                    qc_outcome=outcome,
                )
                findings = [] if outcome == "pass" else [{"rule": rng.choice(RULES), "severity": outcome}]
                QCResult.objects.create(
                    study=study, outcome=outcome, findings=findings, number_of_instances=40
                )
                if outcome == "fail":
                    continue
                priority, rank, sla = rng.choices(PRIORITIES, weights=[1, 3, 6])[0]
                routed = arrived + dt.timedelta(minutes=rng.randint(10, 400))
                pool = rng.choice(pools)
                task = ReadingTask.objects.create(
                    study=study,
                    pool=pool,
                    hospital=hospital,
                    modality=unit.modality,
                    priority=priority,
                    priority_rank=rank,
                    routed_at=routed,
                    deadline=routed + dt.timedelta(minutes=sla),
                    status="reported",
                )
                reader = rng.choice(readers)
                report = Report.objects.create(
                    task=task,
                    study=study,
                    author=reader.user,
                    template="generic",
                    status="final",
                    signed_at=routed + dt.timedelta(minutes=sla * rng.uniform(0.2, 1.3)),
                )
                roll = rng.random()
                if roll < 0.15:
                    reviewer = rng.choice([r for r in readers if r.pk != reader.pk])
                    PeerReview.objects.create(
                        report=report,
                        pool=pool,
                        first_reader=reader.user,
                        reviewer=reviewer.user,
                        reason="sampled",
                        status="done",
                        score=rng.choices([1, 2, 3], weights=[8, 2, 1])[0],
                        completed_at=report.signed_at + dt.timedelta(hours=5),
                    )
                elif roll < 0.2:
                    flagged = report.signed_at
                    acked = (
                        flagged + dt.timedelta(minutes=rng.randint(5, 90)) if rng.random() < 0.85 else None
                    )
                    CriticalResult.objects.create(
                        report=report,
                        study=study,
                        hospital=hospital,
                        summary="Critical finding",
                        status="acknowledged" if acked else "open",
                        flagged_by=reader.user,
                        flagged_at=flagged,
                        acknowledged_at=acked,
                    )


def test_qc_dashboard_on_the_demo_draws_every_chart(transactional_db):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    call_command("demo", verbosity=0)
    _quality_history()
    # Another operator's van and study: not the demo QC officer's to see (tenancy, issue 14).
    rival = UnitFactory(operator=OperatorFactory(name="Rival Imaging"), name="CT Van Rival")
    Study.objects.create(
        orthanc_id="dash-rival",
        study_instance_uid="1.2.826.0.1.3680043.8.498.98.1",
        modalities="CT",
        unit=rival,
        hospital=Visit.objects.first().hospital,
        study_date=timezone.localdate() - dt.timedelta(days=1),
        ingest_status="matched",
        qc_outcome="fail",
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_daphne("qc-dashboard-daphne.log") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, watch = watched_page(browser)
        requested, failed, errors = watch.requested, watch.failed, watch.errors
        sign_in(page, base, "qc", DEMO_PASSWORD)
        page.goto(f"{base}/workspace/quality/dashboard/")
        expect(page.get_by_role("heading", name="Quality dashboards")).to_be_visible()
        expect(page.locator('.dashboard-chart[data-drawn="true"]')).to_have_count(6, timeout=10_000)
        for key in (
            "turnaround",
            "qc_units",
            "qc_technologists",
            "qc_rules",
            "peer",
            "utilisation",
            "critical",
        ):
            rows = page.locator(f'table[data-table="{key}"] tbody tr')
            expect(rows.first).not_to_contain_text("Nothing in this range")
        expect(page.locator("a[data-export]")).to_have_count(8)
        expect(page.locator("select[name=unit] option", has_text="Rival")).to_have_count(0)
        expect(page.locator("main")).not_to_contain_text("CT Van Rival")
        # The demo crews are named per technologist, not lumped under "No crew on record".
        expect(page.locator('table[data-table="qc_technologists"]')).to_contain_text("Chen")
        page.screenshot(path=str(SCREENSHOTS / "qc_dashboard.png"), full_page=True)

        # Narrow to one unit: the form keeps the choice and the page answers.
        page.get_by_label("Unit", exact=True).select_option(label="CT Van 1")
        page.get_by_role("button", name="Apply").click()
        expect(page.locator('table[data-table="qc_units"] tbody tr')).to_have_count(1)
        expect(page.locator('table[data-table="qc_units"]')).to_contain_text("CT Van 1")

        with page.expect_download() as download:
            page.locator('a[data-export="qc_units"]').click()
        assert download.value.suggested_filename.startswith("qc_units_")
        browser.close()
    assert errors == []
    assert failed == []
    assert all(url.startswith(base) for url in requested), [u for u in requested if not u.startswith(base)]
