"""Register writes that decide whether a unit may go out: licences, crew credentials, maintenance."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from core.exceptions import Conflict, InvalidInput
from core.models import User
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import CredentialKind, LicenceKind
from fleet.models import CrewCredential, CrewMember, Licence, MaintenanceWindow, Unit

NUMBER_MAX = 64
ISSUER_MAX = 150
REASON_MAX = 300


def _text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", code=f"invalid_{field}")
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} is required", code=f"invalid_{field}")
    if len(text) > max_length:
        raise InvalidInput(f"{field} is at most {max_length} characters", code=f"invalid_{field}")
    return text


def _date(value: object, field: str) -> dt.date:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise InvalidInput(f"{field} must be a date", code=f"invalid_{field}")
    return value


@transaction.atomic
def licence_add(
    *, actor: User | None, unit: Unit, kind: str, number: str, issuer: str, expires_on: dt.date
) -> Licence:
    """Record a licence of ``unit`` (a renewal is a new row; the latest expiry counts)."""
    if actor is not None:
        check_register_writer(actor, unit.operator_id)
    if kind not in LicenceKind.values:
        raise InvalidInput(
            f"Unknown licence kind {kind!r}; valid: {', '.join(LicenceKind.values)}", code="invalid_kind"
        )
    number = _text(number, field="number", max_length=NUMBER_MAX)
    issuer = _text(issuer, field="issuer", max_length=ISSUER_MAX)
    expires_on = _date(expires_on, "expires_on")
    if Licence.objects.filter(unit=unit, kind=kind, number=number).exists():
        raise Conflict(
            f"{LicenceKind(kind).label} {number} is already recorded for {unit.name}", code="duplicate"
        )
    licence = Licence.objects.create(
        unit=unit, kind=kind, number=number, issuer=issuer, expires_on=expires_on
    )
    audit_record(
        actor=actor,
        action="licence.add",
        obj=licence,
        details={"unit": unit.pk, "kind": kind, "number": number, "expires_on": expires_on},
    )
    return licence


@transaction.atomic
def crew_credential_add(
    *, actor: User | None, crew_member: CrewMember, kind: str, expires_on: dt.date, number: str = ""
) -> CrewCredential:
    if actor is not None:
        check_register_writer(actor, crew_member.operator_id)
    if kind not in CredentialKind.values:
        raise InvalidInput(
            f"Unknown credential kind {kind!r}; valid: {', '.join(CredentialKind.values)}",
            code="invalid_kind",
        )
    number = _text(number, field="number", max_length=NUMBER_MAX, required=False)
    expires_on = _date(expires_on, "expires_on")
    credential = CrewCredential.objects.create(
        crew_member=crew_member, kind=kind, number=number, expires_on=expires_on
    )
    audit_record(
        actor=actor,
        action="crew_credential.add",
        obj=credential,
        details={"crew_member": crew_member.pk, "kind": kind, "expires_on": expires_on},
    )
    return credential


@transaction.atomic
def maintenance_window_add(
    *, actor: User | None, unit: Unit, starts_at: dt.datetime, ends_at: dt.datetime, reason: str
) -> MaintenanceWindow:
    """Plan a workshop period; overlapping windows of the same unit are refused."""
    if actor is not None:
        check_register_writer(actor, unit.operator_id)
    for value, field in ((starts_at, "starts_at"), (ends_at, "ends_at")):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise InvalidInput(f"{field} must be a date and time with a time zone", code=f"invalid_{field}")
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", code="invalid_range")
    reason = _text(reason, field="reason", max_length=REASON_MAX)
    overlapping = MaintenanceWindow.objects.filter(
        unit=unit, starts_at__lt=ends_at, ends_at__gt=starts_at
    ).first()
    if overlapping is not None:
        raise Conflict(
            f"{unit.name} already has a maintenance window from {overlapping.starts_at:%Y-%m-%d %H:%M} "
            f"to {overlapping.ends_at:%Y-%m-%d %H:%M}",
            code="overlapping_window",
        )
    window = MaintenanceWindow.objects.create(
        unit=unit, starts_at=starts_at, ends_at=ends_at, reason=reason, created_by=actor
    )
    audit_record(
        actor=actor,
        action="maintenance_window.add",
        obj=window,
        details={"unit": unit.pk, "starts_at": starts_at, "ends_at": ends_at, "reason": reason},
    )
    return window
