"""The demo's planning world: service contracts for every demo hospital and a week of requests,
so the planner page has something to plan (``manage.py demo``; idempotent)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from core.models import Organisation, User
from fleet.models import ServiceContract, ServiceRequest

# (modality, interval days) every demo hospital has with the operator.
CONTRACTS = (("CT", 14), ("MR", 28), ("DX", 30))
# (hospital index, modality, patients, earliest offset, window days, priority)
REQUESTS = (
    (0, "CT", 14, 1, 6, "routine"),  # Zhuxi: beyond a crew day from every CT depot (the plan says so)
    (1, "CT", 10, 1, 4, "urgent"),
    (2, "CT", 18, 2, 7, "routine"),
    (4, "MR", 6, 1, 10, "routine"),
    (4, "CT", 12, 2, 5, "routine"),
    (2, "DX", 30, 1, 7, "routine"),
    (6, "CT", 16, 3, 6, "routine"),
    (7, "MR", 5, 2, 8, "urgent"),
    (8, "CT", 9, 1, 3, "emergency"),
    (3, "DX", 25, 2, 6, "routine"),
    (7, "CT", 11, 3, 7, "routine"),
    (5, "CT", 13, 4, 6, "routine"),
)
DEMO_NOTE = "Demo request"


def demo_planning_load(*, operator: Organisation, hospitals: list[Organisation], requester: User) -> int:
    """Contracts for each hospital and the demo requests from tomorrow on; returns requests added.

    The requests are filed for ``requester``'s hospital when the index points there, else in
    each hospital's name by ``requester`` (demo data, loaded without the request service's
    per-hospital check, which wants a user of that very hospital).
    """
    # Started 20 days ago and never served yet: CT (every 14 days) overdue, MRI and DR due soon.
    starts = timezone.localdate() - dt.timedelta(days=20)
    for hospital in hospitals:
        for modality, interval in CONTRACTS:
            ServiceContract.objects.get_or_create(
                operator=operator,
                hospital=hospital,
                modality=modality,
                defaults={"interval_days": interval, "starts_on": starts},
            )
    today = timezone.localdate()
    added = 0
    for index, modality, patients, offset, window, priority in REQUESTS:
        hospital = hospitals[index % len(hospitals)]
        earliest = today + dt.timedelta(days=offset)
        if ServiceRequest.objects.filter(
            hospital=hospital, modality=modality, notes=DEMO_NOTE, latest_date__gte=today
        ).exists():
            continue
        ServiceRequest.objects.create(
            hospital=hospital,
            operator=operator,
            modality=modality,
            patients=patients,
            earliest_date=earliest,
            latest_date=earliest + dt.timedelta(days=window),
            priority=priority,
            notes=DEMO_NOTE,
            created_by=requester,
        )
        added += 1
    return added
