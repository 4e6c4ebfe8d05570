"""Service contracts: the operator's dispatchers and administrators promise hospitals a visit interval.

One contract per (operator, hospital, modality) — a second is a 409. ``interval_days`` is 1 to
365. A contract is never deleted: it is deactivated (``active=False``), which takes it off the
coverage view, the planner's duty and the withdrawal check. Every write is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from core.choices import OrganisationKind
from core.exceptions import Conflict, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import Modality
from fleet.models import ServiceContract

INTERVAL_MIN, INTERVAL_MAX = 1, 365


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code="invalid_field", extra={"field": field})


def _clean_interval(interval_days: Any) -> int:
    if isinstance(interval_days, bool) or not isinstance(interval_days, int):
        raise _invalid("interval_days", "a whole number of days")
    if not INTERVAL_MIN <= interval_days <= INTERVAL_MAX:
        raise _invalid("interval_days", f"{INTERVAL_MIN} to {INTERVAL_MAX} days")
    return interval_days


@transaction.atomic
def service_contract_create(
    *,
    actor: User,
    operator: Organisation,
    hospital: Organisation,
    modality: str,
    interval_days: int,
    starts_on: dt.date,
    active: bool = True,
) -> ServiceContract:
    """Contract ``operator`` to serve ``hospital`` with ``modality`` every ``interval_days``."""
    check_register_writer(actor, operator.pk)
    if operator.kind != OrganisationKind.OPERATOR:
        raise _invalid("operator", f"{operator.name} is not a fleet operator")
    if hospital.kind != OrganisationKind.HOSPITAL:
        raise _invalid("hospital", f"{hospital.name} is not a hospital")
    if not hospital.is_active:
        raise _invalid("hospital", f"{hospital.name} is not active")
    if modality not in Modality.values:
        raise _invalid("modality", f"unknown modality {modality!r}; valid: {', '.join(Modality.values)}")
    interval_days = _clean_interval(interval_days)
    if not isinstance(starts_on, dt.date):
        raise _invalid("starts_on", "a date (YYYY-MM-DD)")
    duplicate = ServiceContract.objects.filter(
        operator=operator, hospital=hospital, modality=modality
    ).first()
    if duplicate is not None:
        raise _duplicate(duplicate)
    try:
        with transaction.atomic():
            contract = ServiceContract.objects.create(
                operator=operator,
                hospital=hospital,
                modality=modality,
                interval_days=interval_days,
                starts_on=starts_on,
                active=bool(active),
            )
    except IntegrityError:  # a concurrent create won the unique constraint
        raise _duplicate(
            ServiceContract.objects.get(operator=operator, hospital=hospital, modality=modality)
        ) from None
    audit_record(
        actor=actor,
        action="service_contract.create",
        obj=contract,
        details={
            "hospital": hospital.pk,
            "modality": modality,
            "interval_days": interval_days,
            "starts_on": starts_on.isoformat(),
            "active": contract.active,
        },
    )
    return contract


def _duplicate(existing: ServiceContract) -> Conflict:
    return Conflict(
        f"{existing.hospital.name} already has a {existing.modality} contract with this operator "
        f"(contract {existing.pk}); change that one instead",
        code="service_contract_exists",
        extra={"contract": existing.pk},
    )


@transaction.atomic
def service_contract_update(
    *,
    actor: User,
    contract: ServiceContract,
    interval_days: int | None = None,
    active: bool | None = None,
) -> ServiceContract:
    """Change the interval and/or (de)activate; the hospital, operator and modality are fixed."""
    check_register_writer(actor, contract.operator_id)
    locked = ServiceContract.objects.select_for_update().get(pk=contract.pk)
    changes: dict[str, list[Any]] = {}
    if interval_days is not None:
        interval_days = _clean_interval(interval_days)
        if interval_days != locked.interval_days:
            changes["interval_days"] = [locked.interval_days, interval_days]
            locked.interval_days = interval_days
    if active is not None:
        if not isinstance(active, bool):
            raise _invalid("active", "true or false")
        if active != locked.active:
            changes["active"] = [locked.active, active]
            locked.active = active
    if changes:
        locked.save(update_fields=list(changes))
        audit_record(actor=actor, action="service_contract.update", obj=locked, details=changes)
    return locked
