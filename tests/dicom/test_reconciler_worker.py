"""The reconciler as deployed: a real Celery worker (Redis broker) on the test database and a
real Orthanc whose nudges nobody handles (the platform is "down" for them). Studies that became
stable before the worker started are ingested when it starts (``worker_ready``); one that
becomes stable while it runs is ingested by the beat schedule within a few seconds, without a
nudge."""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings
from pydicom.uid import generate_uid

from dicom.models import IngestCursor, Study
from tests.celery_support import broker_url, running_celery_worker
from tests.dicom.dicom_factory import associate, ct_series

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db(transaction=True)]

BROKER_DB = 12  # a Redis database of its own: the worker consumes only this test's tasks


def _store(orthanc, patient_id: str) -> str:
    datasets = ct_series(2, patient_id=patient_id, accession_number="", study_uid=generate_uid())
    assoc = associate(orthanc.dicom_port, calling_aet=orthanc.scu_aet, called_aet=orthanc.aet)
    try:
        assert all(assoc.send_c_store(ds).Status == 0 for ds in datasets)
    finally:
        assoc.release()
    (match,) = [r for r in orthanc.client.lookup(datasets[0].StudyInstanceUID) if r["Type"] == "Study"]
    orthanc.nudges.wait_for_study(match["ID"], timeout=orthanc.stable_age + 20)  # stable, not handled
    return match["ID"]


def _wait_ingested(orthanc_ids: set[str], timeout: float, log) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (
            set(Study.objects.filter(orthanc_id__in=orthanc_ids).values_list("orthanc_id", flat=True))
            == orthanc_ids
        ):
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"not ingested within {timeout} s: {orthanc_ids}; worker log:\n{log.read_text()[-3000:]}")


def test_a_starting_worker_and_the_beat_ingest_what_no_nudge_reported(orthanc):
    broker = broker_url(BROKER_DB)
    if not broker:
        pytest.skip("needs REDIS_URL (a real broker for the worker); CI sets it")
    missed = {_store(orthanc, "DOWN-1"), _store(orthanc, "DOWN-2")}
    assert not Study.objects.exists()

    # No beat: only the worker_ready hook can have run the reconciler.
    with running_celery_worker("reconcile-start.log", broker) as worker:
        _wait_ingested(missed, timeout=30, log=worker.log)
        # Background work gives way to Orthanc receiving images (WORKER_NICE, default 10).
        assert worker.nice() == min(19, os.nice(0) + settings.WORKER_NICE) > os.nice(0)
    assert Study.objects.count() == 2
    assert IngestCursor.objects.get().last_seq > 0

    # With the beat every second: a study nobody nudges about is picked up within a few seconds.
    with running_celery_worker(
        "reconcile-beat.log", broker, beat=True, RECONCILE_INTERVAL="1", WORKER_NICE="0"
    ) as worker:
        later = _store(orthanc, "DOWN-3")
        waited = _wait_ingested({later}, timeout=15, log=worker.log)
        assert worker.nice() == os.nice(0)  # WORKER_NICE=0 leaves it
    assert Study.objects.count() == 3  # nothing ingested twice
    assert waited < 10
