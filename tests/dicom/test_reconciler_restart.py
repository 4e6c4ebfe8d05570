"""Orthanc killed before a study is stable (issue 15, item 5), against a real Orthanc and dcmtk's
``storescu``: Orthanc never announces such a study after its restart, so the reconciler's
quiet-for-StableAge rule and its recovery scan must find it, ingest it exactly once, and never
route half a study before it has been quiet for StableAge.

Time is moved past StableAge by passing ``now`` to the reconciler, not by sleeping; Orthanc's own
StableAge in the fixture is 2 s, so a kill right after ``storescu`` returns is "before stable".
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from core.models import AuditEntry
from dicom.choices import IngestStatus, MatchMethod, OrderStatus
from dicom.models import IngestCursor, Order, ReceivingStudy, Series, Study
from dicom.services.ingest import study_ingest
from dicom.services.receiving import orthanc_time
from dicom.services.reconcile import CURSOR_NAME, reconcile_changes
from tests.dicom.dcmtk import storescu, write_part10
from tests.dicom.dicom_factory import ct_series
from tests.dicom.factories import OrderFactory
from tests.fleet.factories import UnitFactory

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]


@pytest.fixture
def order(orthanc) -> Order:
    unit = UnitFactory(ae_title=orthanc.scu_aet)
    return OrderFactory(unit=unit, patient_birth_date="1970-01-01", patient_sex="O")


@pytest.fixture(autouse=True)
def cursor_at_orthanc_end(orthanc):
    """The platform is up to date with everything earlier tests did to the session's Orthanc."""
    last = int(orthanc.client.get_json("changes", params={"last": ""}).get("Last", 0))
    IngestCursor.objects.update_or_create(name=CURSOR_NAME, defaults={"last_seq": last})


def _files(tmp_path: Path, order: Order, count: int) -> list[Path]:
    datasets = ct_series(
        count,
        patient_id=order.patient_id,
        patient_name=order.patient_name,
        accession_number=order.accession_number,
        study_uid=order.study_instance_uid,
    )
    return write_part10(datasets, tmp_path)


def _send_then_kill(orthanc, files: list[Path]) -> None:
    """C-STORE the files, SIGKILL Orthanc at once (well inside its StableAge), restart it."""
    started = time.monotonic()
    storescu(orthanc, files)
    orthanc.kill()
    assert time.monotonic() - started < orthanc.stable_age, "too slow to kill before StableAge"
    orthanc.restart()


def _orthanc_study(orthanc, order: Order) -> tuple[str, dict]:
    (match,) = [r for r in orthanc.client.lookup(order.study_instance_uid) if r["Type"] == "Study"]
    return match["ID"], orthanc.client.study(match["ID"])


def _stable_changes(orthanc, orthanc_id: str) -> list[dict]:
    page = orthanc.client.changes(since=0, limit=10_000)
    return [c for c in page["Changes"] if c["ChangeType"] == "StableStudy" and c["ID"] == orthanc_id]


def test_a_complete_study_orthanc_crashed_on_is_ingested_once_when_quiet(orthanc, order, tmp_path, caplog):
    _send_then_kill(orthanc, _files(tmp_path, order, 8))
    orthanc_id, study = _orthanc_study(orthanc, order)
    assert len(orthanc.client.study_instances(orthanc_id)) == 8

    # The bug: Orthanc holds all 8 instances and never says the study is stable.
    time.sleep(orthanc.stable_age + 1.5)
    assert orthanc.nudges.for_study(orthanc_id) == []
    assert _stable_changes(orthanc, orthanc_id) == []

    last_instance = orthanc_time(study["LastUpdate"])
    assert last_instance is not None
    # At the time of its last instance the study is receiving, watched, and not ingested.
    early = reconcile_changes(now=last_instance, scan=False)
    assert (early.stable_seen, early.ingested, early.recovered) == (0, 0, 0)
    assert list(ReceivingStudy.objects.values_list("orthanc_id", flat=True)) == [orthanc_id]
    assert not Study.objects.exists()

    caplog.set_level(logging.INFO, logger="dicom")
    later = last_instance + timedelta(seconds=orthanc.stable_age + 1)
    result = reconcile_changes(now=later, scan=False)

    assert (result.stable_seen, result.ingested, result.recovered) == (0, 0, 1)
    ingested = Study.objects.get()
    assert (ingested.orthanc_id, ingested.order_id, ingested.ingest_status, ingested.match_method) == (
        orthanc_id,
        order.pk,
        IngestStatus.MATCHED,
        MatchMethod.ACCESSION,
    )
    assert (ingested.number_of_series, ingested.number_of_instances) == (1, 8)
    assert [s.number_of_instances for s in Series.objects.filter(study=ingested)] == [8]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ACQUIRED
    entry = AuditEntry.objects.get(action="study.ingest")
    assert entry.details_data["source"] == "reconciler-quiet"
    assert not ReceivingStudy.objects.exists()
    # Logged with the Orthanc id only: no patient data.
    (record,) = [r for r in caplog.records if "without StableStudy" in r.getMessage()]
    assert orthanc_id in record.getMessage()
    for value in (order.patient_id, order.patient_name, order.accession_number):
        assert value not in caplog.text

    # Idempotent: another pass, the recovery scan, and a StableStudy arriving late change nothing.
    audit_before = AuditEntry.objects.count()
    again = reconcile_changes(now=later + timedelta(seconds=60), scan=True)
    assert (again.ingested, again.recovered, again.scan_found) == (0, 0, 0)
    assert study_ingest(orthanc_id=orthanc_id, source="nudge").changed is False
    assert Study.objects.count() == 1
    assert AuditEntry.objects.count() == audit_before


def test_killed_mid_send_the_half_waits_for_quiet_then_the_rest_is_a_late_update(orthanc, order, tmp_path):
    """What happens: the half that reached Orthanc is a study of its own right; it is not
    ingested (so cannot be routed) until it has been quiet for StableAge; then it is ingested
    with the instances it has, matched to its order, and QC judges it like any study. The rest,
    sent after the restart, makes Orthanc announce the study stable again, and the same row is
    updated (today's late-series path): one Study row, never two."""
    files = _files(tmp_path, order, 8)
    _send_then_kill(orthanc, files[:4])
    orthanc_id, study = _orthanc_study(orthanc, order)
    assert len(orthanc.client.study_instances(orthanc_id)) == 4
    last_instance = orthanc_time(study["LastUpdate"])
    assert last_instance is not None

    for seconds in (0, orthanc.stable_age - 1):  # not quiet for StableAge yet: nothing routable
        result = reconcile_changes(now=last_instance + timedelta(seconds=seconds), scan=True)
        assert (result.ingested, result.recovered) == (0, 0)
        assert not Study.objects.exists()

    result = reconcile_changes(now=last_instance + timedelta(seconds=orthanc.stable_age + 1), scan=False)
    assert result.recovered == 1
    half = Study.objects.get()
    assert (half.orthanc_id, half.order_id, half.number_of_instances) == (orthanc_id, order.pk, 4)

    orthanc.nudges.clear()
    storescu(orthanc, files[4:])
    orthanc.nudges.wait_for_study(orthanc_id, timeout=orthanc.stable_age + 20)  # Orthanc is up now
    result = reconcile_changes(scan=True)
    assert (result.stable_seen, result.ingested, result.recovered) == (1, 1, 0)

    whole = Study.objects.get()
    assert (whole.pk, whole.orthanc_id, whole.order_id) == (half.pk, orthanc_id, order.pk)
    assert (whole.number_of_series, whole.number_of_instances) == (1, 8)
    assert [s.number_of_instances for s in Series.objects.filter(study=whole)] == [8]
    assert AuditEntry.objects.filter(action="study.ingest").count() == 1
    assert AuditEntry.objects.filter(action="study.update").count() == 1
    assert reconcile_changes(now=timezone.now() + timedelta(minutes=5), scan=True).recovered == 0
    assert Study.objects.count() == 1


def test_a_normal_stable_study_is_ingested_once_whichever_path_comes_first(orthanc, order, tmp_path):
    files = _files(tmp_path, order, 3)
    storescu(orthanc, files)
    orthanc_id, study = _orthanc_study(orthanc, order)
    last_instance = orthanc_time(study["LastUpdate"])
    assert last_instance is not None

    # Orthanc says StableStudy first: ingested by that path, the quiet rule then does nothing.
    orthanc.nudges.wait_for_study(orthanc_id, timeout=orthanc.stable_age + 20)
    result = reconcile_changes(scan=True)
    assert (result.stable_seen, result.ingested, result.recovered, result.scan_found) == (1, 1, 0, 0)
    assert not ReceivingStudy.objects.exists()
    later = reconcile_changes(now=timezone.now() + timedelta(minutes=5), scan=True)
    assert (later.ingested, later.recovered, later.scan_found) == (0, 0, 0)
    assert Study.objects.get().order_id == order.pk
    assert AuditEntry.objects.filter(action="study.ingest").count() == 1


def test_quiet_rule_first_then_orthancs_stable_study_changes_nothing(orthanc, order, tmp_path):
    storescu(orthanc, _files(tmp_path, order, 3))
    orthanc_id, study = _orthanc_study(orthanc, order)
    last_instance = orthanc_time(study["LastUpdate"])
    assert last_instance is not None

    # The reconciler's clock says StableAge has passed before Orthanc's StableStudy is logged.
    result = reconcile_changes(now=last_instance + timedelta(seconds=orthanc.stable_age + 1), scan=False)
    assert (result.stable_seen, result.recovered) == (0, 1)
    orthanc.nudges.wait_for_study(orthanc_id, timeout=orthanc.stable_age + 20)
    result = reconcile_changes(scan=False)
    assert (result.stable_seen, result.ingested, result.recovered) == (1, 0, 0)
    assert Study.objects.get().number_of_instances == 3
    assert AuditEntry.objects.filter(action="study.ingest").count() == 1


def test_recovery_scan_finds_a_study_whose_changes_the_reconciler_never_sees(orthanc, order, tmp_path):
    """Orthanc's change log lost the pre-crash changes (simulated by a cursor already past them):
    only the periodic comparison of Orthanc's recent studies with the mirror can find the study."""
    _send_then_kill(orthanc, _files(tmp_path, order, 8))
    orthanc_id, study = _orthanc_study(orthanc, order)
    last = int(orthanc.client.get_json("changes", params={"last": ""}).get("Last", 0))
    IngestCursor.objects.filter(name=CURSOR_NAME).update(last_seq=last)
    later = orthanc_time(study["LastUpdate"]) + timedelta(seconds=orthanc.stable_age + 1)

    blind = reconcile_changes(now=later, scan=False)
    assert (blind.ingested, blind.recovered) == (0, 0)
    assert not Study.objects.exists()

    result = reconcile_changes(now=later, scan=True)
    assert (result.scan_found, result.recovered) == (1, 1)
    ingested = Study.objects.get()
    assert (ingested.orthanc_id, ingested.order_id, ingested.number_of_instances) == (orthanc_id, order.pk, 8)

    again = reconcile_changes(now=later + timedelta(seconds=60), scan=True)
    assert (again.scan_found, again.recovered) == (0, 0)
    assert Study.objects.count() == 1


def test_recovery_scan_does_not_bring_back_what_was_settled(orthanc, order, tmp_path):
    """A de-identified copy is no clinical study: the quiet rule settles it once and the scan
    leaves it (and the mirrored original) alone afterwards, instead of re-reading it every time."""
    storescu(orthanc, _files(tmp_path, order, 2))
    orthanc_id, _study = _orthanc_study(orthanc, order)
    orthanc.nudges.wait_for_study(orthanc_id, timeout=orthanc.stable_age + 20)
    copy = orthanc.client.post_json(
        f"studies/{orthanc_id}/anonymize", {"Synchronous": True, "Keep": ["StudyDate"]}
    )
    assert orthanc.client.study(copy["ID"])["MainDicomTags"]["StudyDate"]  # recent: the scan sees it
    later = timezone.now() + timedelta(minutes=5)

    first = reconcile_changes(now=later, scan=True)
    assert (first.ingested, first.recovered) == (1, 0)
    assert list(Study.objects.values_list("orthanc_id", flat=True)) == [orthanc_id]
    assert not ReceivingStudy.objects.exists()

    # The cursor lost (as after a restore): only the scan can look, and it finds nothing to do.
    IngestCursor.objects.filter(name=CURSOR_NAME).update(
        last_seq=int(orthanc.client.get_json("changes", params={"last": ""})["Last"])
    )
    again = reconcile_changes(now=later, scan=True)
    assert (again.scan_found, again.recovered) == (0, 0)
    assert copy["ID"] not in set(ReceivingStudy.objects.values_list("orthanc_id", flat=True))
    assert Study.objects.count() == 1
