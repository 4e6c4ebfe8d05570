"""The nightly audit chain check: verify, store an ``AuditCheck``, alert people when broken."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction

from core.choices import Role
from core.models import AuditCheck, User
from core.services.audit import audit_record, audit_verify
from core.services.audit_checkpoint import audit_checkpoint_write

logger = logging.getLogger(__name__)

CHAIN_BROKEN_KIND = "audit.chain_broken"


def audit_alert_recipients() -> list[User]:
    """Every active administrator and QC officer (roles are groups named after them)."""
    return list(
        User.objects.filter(is_active=True, groups__name__in=[Role.ADMIN, Role.QC_OFFICER])
        .distinct()
        .order_by("id")
    )


def _alert(check: AuditCheck) -> bool:
    # Imported here: telerad depends on core, not the other way round.
    from telerad.services.notifications import notify

    where = f"at entry #{check.first_broken_id}" if check.first_broken_id is not None else "(checkpoints)"
    text = (
        f"The audit log hash chain is broken {where} ({check.message}); "
        f"{check.entries} entries verified before it. Investigate before the evidence ages: "
        "run `manage.py audit_verify` and compare with the last export."
    )
    # CRITICAL: the log pipeline pages someone on this level.
    logger.critical("audit chain broken at entry %s: %s", check.first_broken_id, check.message)
    alerted = False
    try:
        with transaction.atomic():
            # An entry in the chain itself, so the alert reaches the SIEM with the next export.
            audit_record(
                actor=None,
                action=CHAIN_BROKEN_KIND,
                object_type="core.auditcheck",
                object_id=check.pk,
                details={"first_broken_id": check.first_broken_id, "reason": check.message},
            )
            for user in audit_alert_recipients():
                notify(recipient=user, kind=CHAIN_BROKEN_KIND, message=text)
                alerted = True
    except Exception:  # the other channels must still go out
        logger.exception("audit check %s: notifications could not be stored", check.pk)
    try:
        if settings.ADMINS:  # mail_admins silently sends nothing without them
            mail_admins("Audit chain broken", text, fail_silently=False)
            alerted = True
    except Exception:
        logger.exception("audit check %s: mail to ADMINS could not be sent", check.pk)
    return alerted


def audit_check_run(*, alert: bool = True) -> AuditCheck:
    """Verify the whole chain and store the result; when broken (and ``alert``), raise the alarm.

    When the chain verifies, its head is written as a signed checkpoint (``AUDIT_CHECKPOINT_FILE``).

    The alarm: a CRITICAL log line, ``mail_admins``, a notification to every active admin and QC
    officer, and an ``audit.chain_broken`` entry. ``alerted`` records that it went out.
    """
    result = audit_verify()
    check = AuditCheck.objects.create(
        ok=result.ok,
        entries=result.checked,
        first_broken_id=result.broken_id,
        message=result.reason,
    )
    if result.ok:
        try:
            audit_checkpoint_write(result=result)
        except OSError:  # the verification itself stands; the next run or beat writes one
            logger.exception("audit check %s: the checkpoint could not be written", check.pk)
    if not result.ok and alert and _alert(check):
        AuditCheck.objects.filter(pk=check.pk).update(alerted=True)
        check.alerted = True
    return check
