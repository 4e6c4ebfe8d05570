"""The Celery app; tasks are discovered in each domain app's ``tasks.py``."""

import os

from celery import Celery
from celery.signals import worker_init, worker_ready

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
