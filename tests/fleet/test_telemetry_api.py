"""POST /api/units/<id>/telemetry/: auth, validation, idempotency, ordering."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEntry
from fleet.models import DeviceToken, GeofenceEvent, GpsFix, UnitPosition, UnitSiteState
from fleet.services.telemetry import device_key_hash, device_token_revoke
from tests.fleet.factories import UnitFactory
from tests.fleet.telemetry_factories import device_key, fix, post_fixes

pytestmark = pytest.mark.django_db
LAT, LON = 30.0, 111.0


def _track(start, n: int, *, prefix: str = "f", step_s: int = 5, lat: float = LAT) -> list[dict]:
    # ~10 m/s northwards, a plausible van.
    return [
        fix(start + timedelta(seconds=i * step_s), lat + i * 0.00045, LON, f"{prefix}{i}") for i in range(n)
    ]


def _counts() -> tuple[int, int, int, int]:
    return (
        GpsFix.objects.count(),
        UnitPosition.objects.count(),
        GeofenceEvent.objects.count(),
        UnitSiteState.objects.count(),
    )


def test_token_is_stored_as_sha256_only():
    unit = UnitFactory()
    token, raw = device_key(unit)
    assert token.key_hash == device_key_hash(raw) and len(token.key_hash) == 64
    assert raw not in token.key_hash
    assert AuditEntry.objects.filter(action="device_token.issue", object_id=str(token.pk)).count() == 1


def test_batch_is_stored_and_position_set():
    unit = UnitFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=10)
    response = post_fixes(unit.pk, key, _track(start, 12))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"], body["flagged"]) == (12, 0, 0, 0)
    assert body["errors"] == [] and body["moved"] is True
    assert GpsFix.objects.filter(unit=unit).count() == 12
    position = UnitPosition.objects.get(unit=unit)
    assert position.device_time == start + timedelta(seconds=55)
    assert position.latitude == pytest.approx(LAT + 11 * 0.00045)
    assert body["position"]["device_time"] == position.device_time.isoformat()


def test_replaying_the_same_batch_changes_nothing():
    unit = UnitFactory()
    _, key = device_key(unit)
    batch = _track(timezone.now() - timedelta(minutes=10), 12)
    batch.append(fix(timezone.now() - timedelta(minutes=1), LAT + 0.01, LON))  # no fix_id
    assert post_fixes(unit.pk, key, batch).json()["accepted"] == 13
    before = _counts(), UnitPosition.objects.values().get(unit=unit)
    body = post_fixes(unit.pk, key, batch).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 13, 0)
    assert body["moved"] is False
    assert (_counts(), UnitPosition.objects.values().get(unit=unit)) == before


def test_repeated_fix_id_inside_a_batch_is_a_duplicate():
    unit = UnitFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(minutes=5)
    batch = [fix(start, LAT, LON, "a"), fix(start + timedelta(seconds=5), LAT, LON, "a")]
    body = post_fixes(unit.pk, key, batch).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert GpsFix.objects.get(unit=unit).device_time == start


def test_out_of_order_batches_keep_the_newest_position():
    unit = UnitFactory()
    _, key = device_key(unit)
    now = timezone.now()
    newer = _track(now - timedelta(minutes=2), 6, prefix="new", lat=LAT + 0.01)
    older = _track(now - timedelta(minutes=30), 6, prefix="old")
    assert post_fixes(unit.pk, key, newer).json()["moved"] is True
    body = post_fixes(unit.pk, key, older).json()
    assert body["accepted"] == 6 and body["moved"] is False
    position = UnitPosition.objects.get(unit=unit)
    assert position.device_time == now - timedelta(minutes=2) + timedelta(seconds=25)
    assert position.latitude == pytest.approx(LAT + 0.01 + 5 * 0.00045)
    assert GpsFix.objects.filter(unit=unit).count() == 12
    # A batch in reverse order inside itself: the newest by device time wins, not the last sent.
    reversed_batch = list(reversed(_track(now - timedelta(seconds=50), 6, prefix="rev", lat=LAT + 0.0135)))
    post_fixes(unit.pk, key, reversed_batch)
    assert UnitPosition.objects.get(unit=unit).device_time == now - timedelta(seconds=25)


def test_bad_fixes_are_refused_with_reasons_and_good_ones_kept():
    unit = UnitFactory()
    _, key = device_key(unit)
    now = timezone.now()
    t = (now - timedelta(minutes=1)).isoformat()
    batch = [
        fix(now - timedelta(minutes=3), LAT, LON, "ok1"),
        {"lat": 91, "lon": LON, "device_time": t, "fix_id": "bad-lat"},
        {"lat": LAT, "lon": -180.5, "device_time": t, "fix_id": "bad-lon"},
        {"lat": LAT, "lon": LON, "speed": 71, "heading": 361, "device_time": t, "fix_id": "bad-speed"},
        {"lat": LAT, "lon": LON, "device_time": (now + timedelta(minutes=5)).isoformat(), "fix_id": "future"},
        {"lat": LAT, "lon": LON, "device_time": (now - timedelta(days=8)).isoformat(), "fix_id": "old"},
        {"lat": LAT, "lon": LON, "device_time": "2026-11-25T10:00:00", "fix_id": "naive"},
        {"lat": "30", "lon": LON, "device_time": t},
        "not a fix",
        fix(now - timedelta(minutes=2), LAT + 0.0001, LON, "ok2"),
    ]
    response = post_fixes(unit.pk, key, batch)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 8, 0)
    errors = {(e["index"], e["fix_id"], e["field"]) for e in body["errors"]}
    assert errors == {
        (1, "bad-lat", "lat"),
        (2, "bad-lon", "lon"),
        (3, "bad-speed", "speed"),
        (3, "bad-speed", "heading"),
        (4, "future", "device_time"),
        (5, "old", "device_time"),
        (6, "naive", "device_time"),
        (7, None, "lat"),
        (8, None, "non_field_errors"),
    }
    assert all(e["message"] for e in body["errors"])
    assert set(GpsFix.objects.filter(unit=unit).values_list("fix_id", flat=True)) == {"ok1", "ok2"}


def test_clock_skew_within_limit_is_accepted():
    unit = UnitFactory()
    _, key = device_key(unit)
    body = post_fixes(unit.pk, key, [fix(timezone.now() + timedelta(seconds=60), LAT, LON, "ahead")]).json()
    assert body["accepted"] == 1


@pytest.mark.parametrize(
    "body",
    [{"fixes": []}, {"fixes": "nope"}, {}, {"fixes": {"lat": 1}}],
    ids=["empty", "string", "missing", "object"],
)
def test_malformed_body_is_400_and_stores_nothing(body):
    unit = UnitFactory()
    _, key = device_key(unit)
    from rest_framework.test import APIClient

    response = APIClient().post(
        f"/api/units/{unit.pk}/telemetry/", body, format="json", HTTP_AUTHORIZATION=f"Device {key}"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "fixes" in response.json()["errors"]
    assert _counts() == (0, 0, 0, 0)


def test_batch_over_the_limit_is_400_and_stores_nothing(settings):
    settings.TELEMETRY_MAX_BATCH = 5
    unit = UnitFactory()
    _, key = device_key(unit)
    response = post_fixes(unit.pk, key, _track(timezone.now() - timedelta(minutes=5), 6))
    assert response.status_code == 400
    assert "at most 5 fixes" in response.json()["detail"]
    assert _counts() == (0, 0, 0, 0)


def _assert_401_nothing_stored(response):
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "not_authenticated" and response.json()["detail"]
    assert response["WWW-Authenticate"] == "Device"
    assert _counts() == (0, 0, 0, 0)


def test_missing_token_is_401():
    unit = UnitFactory()
    _assert_401_nothing_stored(post_fixes(unit.pk, None, _track(timezone.now(), 1)))


def test_unknown_token_is_401():
    unit = UnitFactory()
    device_key(unit)
    _assert_401_nothing_stored(post_fixes(unit.pk, "dev_not-a-real-key", _track(timezone.now(), 1)))


def test_wrong_scheme_is_401():
    unit = UnitFactory()
    _, key = device_key(unit)
    _assert_401_nothing_stored(post_fixes(unit.pk, key, _track(timezone.now(), 1), scheme="Token"))


def test_revoked_token_is_401():
    unit = UnitFactory()
    token, key = device_key(unit)
    device_token_revoke(token=token, actor=None)
    assert DeviceToken.objects.get(pk=token.pk).revoked_at is not None
    _assert_401_nothing_stored(post_fixes(unit.pk, key, _track(timezone.now(), 1)))


def test_token_of_another_unit_is_401():
    unit, other = UnitFactory(), UnitFactory()
    _, other_key = device_key(other)
    _assert_401_nothing_stored(post_fixes(unit.pk, other_key, _track(timezone.now(), 1)))
    _assert_401_nothing_stored(post_fixes(999_999, other_key, _track(timezone.now(), 1)))


# 90: one INSERT even on SQLite (999 parameters; PostgreSQL takes any batch in one).
@pytest.mark.parametrize("size", [12, 90])
def test_query_count_does_not_grow_with_the_batch(size, django_assert_num_queries):
    unit = UnitFactory()
    _, key = device_key(unit)
    start = timezone.now() - timedelta(hours=2)
    post_fixes(unit.pk, key, _track(start, 1, prefix="first"))
    batch = _track(start + timedelta(seconds=5), size, prefix="next")
    # token, lock, duplicates, position, insert, position update, site state, sites (+ the
    # savepoint pair of the test's transaction)
    with django_assert_num_queries(10):
        body = post_fixes(unit.pk, key, batch).json()
    assert body["accepted"] == size
