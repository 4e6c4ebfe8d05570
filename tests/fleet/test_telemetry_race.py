"""Concurrent posts of the same batch store it once (unit row lock on PostgreSQL, IMMEDIATE on SQLite)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from fleet.models import GeofenceEvent, GpsFix, UnitPosition
from tests.fleet.factories import UnitFactory
from tests.fleet.telemetry_factories import (
    HOSPITAL_LAT,
    HOSPITAL_LON,
    SiteFactory,
    device_key,
    fix,
    offset,
    post_fixes,
)


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_posted_concurrently_is_stored_once():
    unit = UnitFactory()
    SiteFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=10)
    distances = [600, 500, 400, 290, 250]
    batch = [
        fix(start + timedelta(seconds=10 * i), *offset(HOSPITAL_LAT, HOSPITAL_LON, d, 180), f"r{i}")
        for i, d in enumerate(distances)
    ]
    senders = 6
    barrier = threading.Barrier(senders)
    bodies: list[dict] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            barrier.wait(timeout=30)
            response = post_fixes(unit.pk, key, batch)
            with lock:
                bodies.append({"status": response.status_code, **response.json()})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [b["status"] for b in bodies] == [200] * senders
    assert sorted(b["accepted"] for b in bodies) == [0] * (senders - 1) + [len(batch)]
    assert sum(b["duplicates"] for b in bodies) == len(batch) * (senders - 1)
    assert GpsFix.objects.filter(unit=unit).count() == len(batch)
    assert UnitPosition.objects.filter(unit=unit).count() == 1
    assert GeofenceEvent.objects.filter(unit=unit).count() == 1
