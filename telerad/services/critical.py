"""Critical results: notify the hospital, escalate until someone there acknowledges.

The loop (see docs/critical-results.md):

* ``critical_result_open`` — called by the reader's sign transaction. Notifies the hospital's
  first contact (level 1) and schedules the next escalation ``CRITICAL_ESCALATION_MINUTES`` later.
* ``critical_results_escalate`` — the beat sweep. Every open result whose time has come notifies
  the next contact (level + 1), wrapping round to the first after the last; each wrap-round (all
  contacts tried without an acknowledgement) also notifies the operator's QC officers.
* ``critical_result_acknowledge`` — a hospital user of that hospital closes the loop; escalation
  stops. A second acknowledgement changes nothing and says who acknowledged first.

Contacts are the hospital's active users holding the hospital-user role, ordered by username
(stable, so "the next contact" means the same person to every worker). The list is read afresh
at each step, so a user added or deactivated between steps is taken into account.

Every step is one transaction holding the result's change, its notifications, its live events
and its audit entry; emails and websocket sends leave after commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from core.access import operator_staff, scope_for_user
from core.choices import Role
from core.exceptions import AccessDenied, InvalidInput, NotFound
from core.models import User
from core.services import audit_record
from telerad.choices import CriticalStatus, EventKind
from telerad.models import CriticalResult, Report
from telerad.services.events import event_emit
from telerad.services.notifications import NotificationKind, notify

SUMMARY_MAX_LENGTH = 300


def escalation_period() -> dt.timedelta:
    return dt.timedelta(minutes=settings.CRITICAL_ESCALATION_MINUTES)


def hospital_contacts(hospital_id: int) -> list[User]:
    """The people notified in turn: the hospital's active hospital users, by username."""
    return list(
        User.objects.filter(organisation_id=hospital_id, is_active=True, groups__name=Role.HOSPITAL_USER)
        .distinct()
        .order_by("username")
    )


def operator_qc_officers(result: CriticalResult) -> list[User]:
    """The QC officers told when a hospital has not answered a whole round of notifications.

    Those of the operator whose van scanned the study (its unit, else its order's); a study of
    no operator goes to the platform's superusers (``core.access.operator_staff``).
    """
    study = result.study
    order = study.order
    unit = study.unit if study.unit_id else (order.unit if order is not None else None)
    operator_id = unit.operator_id if unit is not None else None
    return list(operator_staff(operator_id, Role.QC_OFFICER).order_by("username"))


def _message(result: CriticalResult, *, level: int) -> str:
    # No patient identifiers: this text is emailed (see telerad.services.notifications).
    study = result.study
    exam = " ".join(part for part in (study.modalities.replace("\\", "/"), study.body_part) if part)
    prefix = f"Critical result #{result.pk}" + (f" ({exam})" if exam else "")
    reminder = "" if level <= 1 else f" Reminder {level - 1}: not yet acknowledged."
    return f"{prefix}: {result.summary.rstrip('.')}.{reminder} Please acknowledge in the hospital portal."


def _event_payload(result: CriticalResult, **extra: object) -> dict[str, object]:
    return {
        "critical_result": result.pk,
        "study": result.study_id,
        "report": result.report_id,
        "hospital": result.hospital_id,
        "accession_number": result.study.accession_number,
        "summary": result.summary,
        "status": result.status,
        "escalation_level": result.escalation_level,
        **extra,
    }


def _notify_step(result: CriticalResult, *, level: int) -> tuple[list[User], list[User], bool]:
    """Notify whoever step ``level`` (1 = the first contact) is for. Returns (contacts, QC, wrapped).

    Level n goes to contact (n - 1) mod len(contacts). When a level starts a new round (every
    contact has been tried), the operator's QC officers are told as well; with no contacts at
    all they are told at every step, since nobody at the hospital can acknowledge.
    """
    contacts = hospital_contacts(result.hospital_id)
    notified: list[User] = []
    officers: list[User] = []
    wrapped = False
    if contacts:
        contact = contacts[(level - 1) % len(contacts)]
        wrapped = level > len(contacts) and (level - 1) % len(contacts) == 0
        kind = NotificationKind.CRITICAL_RESULT if level == 1 else NotificationKind.CRITICAL_ESCALATION
        notify(recipient=contact, kind=kind, message=_message(result, level=level), critical_result=result)
        notified.append(contact)
    if wrapped or not contacts:
        officers = operator_qc_officers(result)
        why = (
            "nobody at the hospital has acknowledged after every contact was notified"
            if contacts
            else "the hospital has no active contact"
        )
        for officer in officers:
            notify(
                recipient=officer,
                kind=NotificationKind.CRITICAL_ESCALATION_QC,
                message=f"{_message(result, level=level)} Escalated to QC: {why}.",
                critical_result=result,
            )
    return notified, officers, wrapped


def _emit_step(result: CriticalResult, notified: list[User], officers: list[User], wrapped: bool) -> None:
    payload = _event_payload(
        result,
        notified=[user.username for user in notified],
        escalated_to_qc=bool(officers),
        wrapped=wrapped,
        next_escalation_at=result.next_escalation_at.isoformat() if result.next_escalation_at else None,
    )
    event_emit(kind=EventKind.CRITICAL_RESULT, payload=payload, hospital=result.hospital)
    for user in [*notified, *officers]:
        event_emit(kind=EventKind.CRITICAL_RESULT, payload={**payload, "for_you": True}, user=user)


@transaction.atomic
def critical_result_open(*, report: Report, summary: str, actor: User) -> CriticalResult:
    """Flag ``report``'s finding as critical and notify the hospital's first contact.

    Idempotent per report: a second call returns the result already open, notifying nobody.
    """
    existing = CriticalResult.objects.filter(report_id=report.pk).first()
    if existing is not None:
        return existing
    summary = " ".join((summary or "").split())
    if not summary:
        raise InvalidInput(
            "A critical result needs a summary of the finding", code="critical_summary_missing"
        )
    if len(summary) > SUMMARY_MAX_LENGTH:
        raise InvalidInput(
            f"The critical finding summary is at most {SUMMARY_MAX_LENGTH} characters",
            code="critical_summary_too_long",
        )
    study = report.study
    # The study carries its hospital once matched to an order; the reading task always does.
    hospital_id = study.hospital_id or report.task.hospital_id
    if hospital_id is None:
        raise InvalidInput(
            "This study is matched to no hospital, so nobody can be notified", code="critical_no_hospital"
        )
    now = timezone.now()
    try:
        with transaction.atomic():
            result = CriticalResult.objects.create(
                report=report,
                study=study,
                hospital_id=hospital_id,
                summary=summary,
                status=CriticalStatus.OPEN,
                flagged_by=actor,
                flagged_at=now,
                escalation_level=1,
                next_escalation_at=now + escalation_period(),
            )
    except IntegrityError:  # a concurrent open of the same report won
        return CriticalResult.objects.get(report_id=report.pk)
    notified, officers, wrapped = _notify_step(result, level=1)
    _emit_step(result, notified, officers, wrapped)
    audit_record(
        actor=actor,
        action="critical_result.open",
        obj=result,
        patient_data=True,
        patient_id=study.patient_id,
        details={
            "report": report.pk,
            "study": study.pk,
            "hospital": hospital_id,
            "escalation_level": 1,
            "notified": [user.username for user in notified],
            "escalated_to_qc": [user.username for user in officers],
            "next_escalation_at": result.next_escalation_at,
        },
    )
    return result


@transaction.atomic
def critical_result_escalate_one(*, result_id: int, level: int, now: dt.datetime) -> bool:
    """Escalate one result from ``level`` to ``level + 1`` if nobody else did (compare-and-swap).

    Returns whether this call escalated it. The conditional update takes the row lock; a second
    worker that read the same level finds it changed (or acknowledged) and does nothing.
    """
    next_at = now + escalation_period()
    swapped = CriticalResult.objects.filter(
        pk=result_id, status=CriticalStatus.OPEN, escalation_level=level
    ).update(escalation_level=level + 1, next_escalation_at=next_at)
    if swapped != 1:
        return False
    result = CriticalResult.objects.select_related("study", "study__unit", "hospital").get(pk=result_id)
    notified, officers, wrapped = _notify_step(result, level=level + 1)
    _emit_step(result, notified, officers, wrapped)
    audit_record(
        actor=None,
        action="critical_result.escalate",
        obj=result,
        patient_data=True,
        patient_id=result.study.patient_id,
        details={
            "escalation_level": level + 1,
            "notified": [user.username for user in notified],
            "escalated_to_qc": [user.username for user in officers],
            "wrapped": wrapped,
            "next_escalation_at": next_at,
        },
    )
    return True


def critical_results_escalate(*, now: dt.datetime | None = None) -> int:
    """Escalate every open result whose next escalation is due; returns how many were escalated.

    One step per result per sweep, and the next one is scheduled from ``now`` (not from the
    missed time), so a sweep after an outage notifies each contact once instead of in a burst.
    Each result escalates in its own transaction (``critical_result_escalate_one``), so the
    row locks are short and one result never waits on another; concurrent sweeps are safe.
    """
    now = now or timezone.now()
    due = list(
        CriticalResult.objects.filter(status=CriticalStatus.OPEN, next_escalation_at__lte=now)
        .order_by("next_escalation_at", "pk")
        .values_list("pk", "escalation_level")
    )
    return sum(critical_result_escalate_one(result_id=pk, level=level, now=now) for pk, level in due)


@dataclass(frozen=True)
class Acknowledgement:
    """What an acknowledgement did: the result, and whether this call was the one that closed it."""

    result: CriticalResult
    acknowledged_now: bool

    @property
    def message(self) -> str:
        who = self.result.acknowledged_by.username if self.result.acknowledged_by else "someone"
        when = self.result.acknowledged_at.isoformat() if self.result.acknowledged_at else ""
        if self.acknowledged_now:
            return f"Critical result #{self.result.pk} acknowledged."
        return f"Critical result #{self.result.pk} was already acknowledged by {who} at {when}."


def critical_result_check_acknowledger(*, actor: User, result: CriticalResult) -> None:
    """Only a hospital user of the result's hospital acknowledges.

    The role is checked first (403 whatever the id, so nothing is revealed); a hospital user of
    another hospital is told the result does not exist (404).
    """
    if not getattr(actor, "is_authenticated", False) or not actor.has_role(Role.HOSPITAL_USER):
        raise AccessDenied("Only a hospital user of the patient's hospital acknowledges a critical result")
    if actor.organisation_id is None or actor.organisation_id != result.hospital_id:
        raise NotFound("No critical result matches the given id")


@transaction.atomic
def critical_result_acknowledge(
    *, actor: User, result: CriticalResult, request: HttpRequest | None = None
) -> Acknowledgement:
    """Record that ``actor`` acknowledged the critical result; escalation stops.

    Idempotent: once acknowledged, later calls change nothing and report who was first.
    """
    critical_result_check_acknowledger(actor=actor, result=result)
    now = timezone.now()
    swapped = CriticalResult.objects.filter(pk=result.pk, status=CriticalStatus.OPEN).update(
        status=CriticalStatus.ACKNOWLEDGED,
        acknowledged_by=actor,
        acknowledged_at=now,
        next_escalation_at=None,
    )
    fresh = CriticalResult.objects.select_related("study", "acknowledged_by", "flagged_by", "hospital").get(
        pk=result.pk
    )
    if swapped != 1:
        return Acknowledgement(result=fresh, acknowledged_now=False)
    payload = _event_payload(
        fresh,
        acknowledged_by=actor.username,
        acknowledged_at=now.isoformat(),
        flagged_at=fresh.flagged_at.isoformat(),
    )
    event_emit(kind=EventKind.CRITICAL_ACK, payload=payload, hospital=fresh.hospital)
    event_emit(kind=EventKind.CRITICAL_ACK, payload=payload, user=fresh.flagged_by)
    audit_record(
        actor=actor,
        action="critical_result.acknowledge",
        obj=fresh,
        patient_data=True,
        patient_id=fresh.study.patient_id,
        details={
            "report": fresh.report_id,
            "study": fresh.study_id,
            "escalation_level": fresh.escalation_level,
            "flagged_at": fresh.flagged_at,
            "acknowledged_at": now,
            # The loop's length, for turnaround reporting.
            "seconds_to_acknowledge": round((now - fresh.flagged_at).total_seconds(), 3),
        },
        request=request,
    )
    return Acknowledgement(result=fresh, acknowledged_now=True)


def critical_results_for_user(user: User) -> QuerySet[CriticalResult]:
    """The critical results a user may list, within their tenancy (``core.access``): hospital
    users their hospital's, an operator's QC officers those of its vans' studies, a reading
    group's QC officers those of studies routed to it."""
    results = CriticalResult.objects.select_related(
        "study", "report", "hospital", "flagged_by", "acknowledged_by"
    )
    if user.is_superuser or user.has_role(Role.QC_OFFICER, Role.HOSPITAL_USER):
        return scope_for_user(user, results)
    raise AccessDenied("Critical results are listed for hospital users and QC officers")
