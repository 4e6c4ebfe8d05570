import socket

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.orthanc
def test_health_ok_with_everything_up(orthanc):
    response = APIClient().get("/api/health/")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "database": "ok",
        "orthanc": "ok",
        "channel_layer": "ok",
        "broker": "ok",
        "stalled_studies": 0,
    }


def test_health_503_names_orthanc_when_it_is_down(settings):
    settings.ORTHANC_URL = f"http://127.0.0.1:{_closed_port()}"
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["orthanc"] != "ok"
    assert "Connection" in body["orthanc"] or "refused" in body["orthanc"]
    assert {k: v for k, v in body.items() if k != "orthanc"} == {
        "database": "ok",
        "channel_layer": "ok",
        "broker": "ok",
        "stalled_studies": 0,
    }


@pytest.mark.orthanc
def test_health_reports_wrong_orthanc_credentials(orthanc, settings):
    settings.ORTHANC_PASSWORD = "wrong"
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    assert "401" in response.json()["orthanc"]


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)")
def test_health_503_names_the_broker_when_redis_is_unreachable(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from config.celery import app

    bad = f"redis://127.0.0.1:{_closed_port()}/0"
    previous = app.conf.broker_url
    app.conf.broker_url = bad
    try:
        from core.health import check_broker

        result = check_broker()
    finally:
        app.conf.broker_url = previous
    assert result != "ok"
    assert "Error" in result or "refused" in result
