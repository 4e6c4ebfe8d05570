"""Notifications: a stored message to one user, shown in the portal and emailed after commit.

The ``Notification`` row is the record (the portal and ``/api/reading/notifications/`` show it);
the email is a courtesy copy sent through Django's email backend once the transaction commits,
so a rolled-back escalation never emails anyone. The default backend is the console (see
``EMAIL_BACKEND`` in settings): the real SMTP relay is a third party this repository does not run.

Messages carry no patient identifiers (no name, no patient ID, no accession number): emails leave
the platform, and the portal shows the details behind a login and an audit entry.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from core.choices import Role
from core.exceptions import InvalidInput, NotFound
from core.models import User
from core.on_commit import on_commit
from telerad.models import CriticalResult, Notification

logger = logging.getLogger(__name__)

MESSAGE_MAX_LENGTH = 300
KIND_MAX_LENGTH = 32


class NotificationKind:
    """The kinds this platform sends (``Notification.kind`` is free text, kept to these)."""

    CRITICAL_RESULT = "critical.result"
    CRITICAL_ESCALATION = "critical.escalation"
    CRITICAL_ESCALATION_QC = "critical.escalation_qc"


def _subject(kind: str) -> str:
    if kind.startswith("critical."):
        return "[Caravan] Critical result: acknowledgement required"
    return "[Caravan] Notification"


def _send_email(notification_id: int, address: str, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    except Exception:  # the stored notification stands; a mail relay outage must not undo it
        # Only the id: the address and the message are personal data.
        logger.exception("email for notification %s could not be sent", notification_id)


@transaction.atomic
def notify(
    *,
    recipient: User,
    kind: str,
    message: str,
    critical_result: CriticalResult | None = None,
) -> Notification:
    """Store a notification for ``recipient`` and email it after commit when they have an address."""
    message = message.strip()
    if not message:
        raise InvalidInput("A notification needs a message")
    if not kind or len(kind) > KIND_MAX_LENGTH:
        raise InvalidInput(f"A notification kind is 1..{KIND_MAX_LENGTH} characters")
    if len(message) > MESSAGE_MAX_LENGTH:
        message = message[: MESSAGE_MAX_LENGTH - 1] + "…"
    notification = Notification.objects.create(
        recipient=recipient, kind=kind, message=message, critical_result=critical_result
    )
    if recipient.email:
        page = "/workspace/hospital/studies/" if recipient.has_role(Role.HOSPITAL_USER) else "/"
        body = f"{message}\n\nOpen Caravan to see the details: {settings.PLATFORM_URL}{page}"
        address, subject, pk = recipient.email, _subject(kind), notification.pk
        on_commit(lambda: _send_email(pk, address, subject, body))
    return notification


def notification_get_own(*, user: User, pk: int) -> Notification:
    """The user's own notification ``pk``; anyone else's is reported as not found."""
    notification = Notification.objects.filter(pk=pk, recipient_id=user.pk).first()
    if notification is None:
        raise NotFound("No notification matches the given id")
    return notification


@transaction.atomic
def notifications_mark_read(*, user: User) -> int:
    """Mark every unread notification of ``user``'s own read; the number marked."""
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )


@transaction.atomic
def notification_mark_read(*, actor: User, notification: Notification) -> Notification:
    """Mark the actor's own notification read (idempotent: the first read time is kept)."""
    if notification.recipient_id != actor.pk:
        raise NotFound("No notification matches the given id")
    now = timezone.now()
    Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now)
    notification.refresh_from_db(fields=["read_at"])
    return notification
