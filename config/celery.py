"""The Celery app; tasks are discovered in each domain app's ``tasks.py``."""

import os

from celery import Celery
from celery.signals import beat_init, worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("caravan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _reconcile_when_a_worker_starts(sender, **kwargs):
    # Studies that became stable while no worker ran are picked up now, not at the next beat.
    sender.app.send_task("dicom.tasks.reconcile_orthanc_changes")


@worker_init.connect
def _yield_the_cpu_to_dicom_reception(sender, **kwargs):
    # Background work (ingest, QC, routing, sweeps) runs below the default priority, so on a
    # host shared with Orthanc it never slows a van's C-STORE; its pool's processes inherit it.
    from django.conf import settings

    if settings.WORKER_NICE:
        os.nice(settings.WORKER_NICE)


@worker_init.connect
@beat_init.connect
def _no_connection_pool_in_celery(sender, **kwargs):
    # The pool (DB_POOL_SIZE) bounds the web's threads. A worker process runs one task at a time,
    # so it needs one connection, and Celery's Django fix-up closes a prefork child's pool after
    # every task anyway: per-task connections (CONN_MAX_AGE=0) cost the same without the pool's
    # threads. Dropped before any task runs; a pool the parent may have opened is closed first.
    from django.conf import settings
    from django.db import connections

    for alias, database in settings.DATABASES.items():
        if database.get("OPTIONS", {}).get("pool"):
            connections[alias].close()
            connections[alias].close_pool()  # type: ignore[attr-defined]  # PostgreSQL backend
            del database["OPTIONS"]["pool"]
