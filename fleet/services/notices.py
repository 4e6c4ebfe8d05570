"""Telling a hospital what dispatch decided: its visit is booked, moved or cancelled, its request declined.

Every active hospital user of the hospital gets a ``Notification`` (shown at
``/api/reading/notifications/`` and emailed after commit, see ``telerad.services.notifications``).
Messages name the modality, the date and the unit, never a patient.
"""

from __future__ import annotations

import datetime as dt

from core.choices import Role
from core.models import Organisation, User
from telerad.models import Notification
from telerad.services.notifications import notify


class HospitalNoticeKind:
    VISIT_SCHEDULED = "visit.scheduled"
    VISIT_MOVED = "visit.moved"
    VISIT_CANCELLED = "visit.cancelled"
    REQUEST_DECLINED = "request.declined"


def hospital_users(hospital_id: int) -> list[User]:
    return [
        user
        for user in User.objects.filter(organisation_id=hospital_id, is_active=True).order_by("pk")
        if user.has_role(Role.HOSPITAL_USER)
    ]


def hospital_notify(*, hospital: Organisation | int, kind: str, message: str) -> list[Notification]:
    """Notify every active hospital user of ``hospital``; returns the stored notifications."""
    hospital_id = hospital if isinstance(hospital, int) else hospital.pk
    return [notify(recipient=user, kind=kind, message=message) for user in hospital_users(hospital_id)]


def day_label(day: dt.date) -> str:
    return day.strftime("%a %d %b %Y")
