"""Health checks of each component the platform depends on."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text[:300]


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # health reports any failure as text
        return _short(exc)
    return "ok"


def check_orthanc() -> str:
    from dicom.orthanc_client import orthanc_client_from_settings

    try:
        orthanc_client_from_settings(timeout=3, retries=0).system()
    except Exception as exc:
        return _short(exc)
    return "ok"


async def _channel_roundtrip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel("health.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout=3)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned a different message")


def check_channel_layer() -> str:
    try:
        async_to_sync(_channel_roundtrip)()
    except Exception as exc:
        return _short(exc)
    return "ok"


def check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "ok"  # embedded mode: tasks run in-process, there is no broker to reach
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return _short(exc)
    return "ok"


CHECKS = {
    "database": check_database,
    "orthanc": check_orthanc,
    "channel_layer": check_channel_layer,
    "broker": check_broker,
}


def health_report() -> dict[str, str]:
    return {name: check() for name, check in CHECKS.items()}


def stalled_studies() -> int | None:
    """Studies stuck before a reading task (QC pending or unrouted past ``STALLED_STUDY_MINUTES``);
    None when the database cannot say (the database check reports why)."""
    from dicom.selectors_stalled import stalled_study_count

    try:
        return stalled_study_count()
    except Exception:  # health reports, it does not fail
        return None


def health_status(report: dict[str, str], stalled: int | None) -> bool:
    """Healthy: every check ``ok``, and fewer stalled studies than ``HEALTH_STALLED_STUDIES_503``
    when that is set (0, the default: the count is reported, never a reason for 503)."""
    limit = settings.HEALTH_STALLED_STUDIES_503
    too_many = bool(limit) and stalled is not None and stalled >= limit
    return all(value == "ok" for value in report.values()) and not too_many
