"""Fleet writes. The foundation registers units and crew; the fleet issue adds the state machine."""

from __future__ import annotations

from django.db import transaction

from core.choices import OrganisationKind
from core.exceptions import Conflict, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
from fleet.choices import CrewRole, Modality
from fleet.models import CrewMember, Unit, ae_title_validator


@transaction.atomic
def unit_register(
    *,
    actor: User | None,
    operator: Organisation,
    name: str,
    modality: str,
    ae_title: str,
    capacity_per_day: int,
    depot_name: str,
    depot_latitude: float,
    depot_longitude: float,
    scanner_model: str = "",
) -> Unit:
    if operator.kind != OrganisationKind.OPERATOR:
        raise InvalidInput(f"{operator.name!r} is not a fleet operator")
    if modality not in Modality.values:
        raise InvalidInput(f"Unknown modality {modality!r}; valid: {', '.join(Modality.values)}")
    if capacity_per_day < 1:
        raise InvalidInput("capacity_per_day must be at least 1")
    if not (-90 <= depot_latitude <= 90 and -180 <= depot_longitude <= 180):
        raise InvalidInput("depot coordinates out of range")
    unit = Unit(
        operator=operator,
        name=name,
        modality=modality,
        ae_title=ae_title,
        capacity_per_day=capacity_per_day,
        depot_name=depot_name,
        depot_latitude=depot_latitude,
        depot_longitude=depot_longitude,
        scanner_model=scanner_model,
    )
    try:
        ae_title_validator(ae_title)
    except Exception as exc:
        raise InvalidInput(f"AE title {ae_title!r}: {exc}") from None
    if Unit.objects.filter(name=name).exists() or Unit.objects.filter(ae_title=ae_title).exists():
        raise Conflict(f"A unit named {name!r} or with AE title {ae_title!r} already exists")
    unit.save()
    audit_record(actor=actor, action="unit.register", obj=unit, details={"modality": modality})
    return unit


@transaction.atomic
def crew_member_add(
    *,
    actor: User | None,
    operator: Organisation,
    full_name: str,
    role: str,
    unit: Unit | None = None,
    user: User | None = None,
) -> CrewMember:
    if role not in CrewRole.values:
        raise InvalidInput(f"Unknown crew role {role!r}; valid: {', '.join(CrewRole.values)}")
    if unit is not None and unit.operator_id != operator.pk:
        raise InvalidInput("The unit belongs to another operator")
    if CrewMember.objects.filter(operator=operator, full_name=full_name).exists():
        raise Conflict(f"{full_name!r} is already on the crew register")
    member = CrewMember.objects.create(
        operator=operator, full_name=full_name, role=role, unit=unit, user=user
    )
    audit_record(actor=actor, action="crew.add", obj=member, details={"role": role})
    return member
