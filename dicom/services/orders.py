"""Orders (booked exams): booking, cancelling, and the transitions ingest drives.

An order is what the van's scanner sees in its Modality Worklist, so what is booked here must
survive the trip into DICOM: values are checked against their DICOM value representations
before anything is saved. Every write is audited as patient data.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.access import user_in_operator
from core.choices import OrganisationKind, Role
from core.exceptions import AccessDenied, Conflict, InvalidInput, Unavailable
from core.models import Organisation, User
from core.services import audit_record
from dicom.choices import BodyPart, OrderStatus, PatientSex, Priority
from dicom.models import Order
from dicom.services.order_booking import booking_check, booking_check_may_book
from dicom.services.order_start import order_start  # noqa: F401  (re-exported: the exam's start)
from dicom.uids import new_uid
from fleet.choices import Modality
from fleet.models import Unit, Visit

ACCESSION_PREFIX = "CV"
# 10 base32 characters = 50 random bits: "CV" + 10 fits DICOM SH (16) with room to spare.
ACCESSION_RANDOM_CHARS = 10
ACCESSION_ATTEMPTS = 5

# Orthanc 1.10 re-encodes worklist answers in its DefaultEncoding (Latin-1 unless configured
# otherwise), whatever the query asks for: a character outside it would reach the scanner as
# "?" or nothing, and the acquired study would then fail the demographics check. Refuse it here.
MWL_ENCODING = "latin-1"
# PS3.5 6.2: PN has up to three component groups (alphabetic, ideographic, phonetic) separated
# by "=", each of up to five components separated by "^" and at most 64 characters.
PN_GROUP_MAX = 64
PN_GROUPS_MAX = 3
PN_COMPONENTS_MAX = 5
PN_MAX_LENGTH = Order._meta.get_field("patient_name").max_length or 0
LO_MAX = 64  # PatientID, RequestedProcedureDescription
CLIENT_REQUEST_ID_MAX = 64
CANCEL_REASON_MAX = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Who may cancel besides the ordering hospital's own users (operator staff re-planning visits).
_CANCEL_ROLES = (Role.DISPATCHER, Role.ADMIN)

# The fields an idempotent replay must repeat: the same key with other values is a client bug.
_REPLAY_FIELDS = (
    "unit_id",
    "scheduled_date",
    "requested_procedure",
    "modality",
    "body_part",
    "priority",
    "patient_id",
    "patient_name",
    "patient_sex",
    "patient_birth_date",
)


# --- validation ------------------------------------------------------------------------------------


def _check_text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """A single-valued DICOM string (LO, SH): printable, no backslash, within the encoding."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", code=f"invalid_{field}")
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} is required", code=f"invalid_{field}")
    if len(text) > max_length:
        raise InvalidInput(f"{field} is at most {max_length} characters", code=f"invalid_{field}")
    if "\\" in text:
        # The DICOM value separator: the scanner would read two values.
        raise InvalidInput(f"{field} must not contain a backslash", code=f"invalid_{field}")
    if _CONTROL.search(text):
        raise InvalidInput(f"{field} must not contain control characters", code=f"invalid_{field}")
    try:
        text.encode(MWL_ENCODING)
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{field} may only use Latin characters (the scanner worklist is Latin-1)",
            code=f"invalid_{field}",
        ) from None
    return text


def clean_patient_name(value: str) -> str:
    """A DICOM PN value (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``), or ``InvalidInput`` saying why."""
    name = _check_text(value, field="patient_name", max_length=PN_MAX_LENGTH)
    groups = name.split("=")
    if len(groups) > PN_GROUPS_MAX:
        raise InvalidInput(
            f"patient_name has at most {PN_GROUPS_MAX} component groups separated by '='",
            code="invalid_patient_name",
        )
    for group in groups:
        if len(group) > PN_GROUP_MAX:
            raise InvalidInput(
                f"each part of patient_name is at most {PN_GROUP_MAX} characters",
                code="invalid_patient_name",
            )
        if len(group.split("^")) > PN_COMPONENTS_MAX:
            raise InvalidInput(
                "patient_name has at most 5 components separated by '^' (FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX)",
                code="invalid_patient_name",
            )
    if not groups[0].split("^")[0].strip():
        raise InvalidInput("patient_name needs a family name (FAMILY^GIVEN)", code="invalid_patient_name")
    return name


def _check_choice(value: str, choices: type[models.TextChoices], field: str) -> str:
    if value not in choices.values:
        raise InvalidInput(
            f"Unknown {field} {value!r}; valid: {', '.join(choices.values)}", code=f"invalid_{field}"
        )
    return value


def _check_date(value: Any, field: str) -> date:
    # datetime is a date subclass; a datetime here is a caller's mistake, not a day.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a date", code=f"invalid_{field}")
    return value


def _check_may_cancel(actor: User | None, order: Order) -> None:
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise AccessDenied("Sign in to cancel an order")
    if actor.is_superuser:
        return
    if actor.has_role(Role.HOSPITAL_USER) and actor.organisation_id == order.hospital_id:
        return
    if actor.has_role(*_CANCEL_ROLES) and user_in_operator(actor, order.unit.operator_id):
        return
    raise AccessDenied(
        "Only the ordering hospital's users and the van operator's dispatchers and administrators "
        "can cancel orders"
    )


def new_accession_number() -> str:
    random_part = base64.b32encode(secrets.token_bytes(7)).decode("ascii")[:ACCESSION_RANDOM_CHARS]
    return ACCESSION_PREFIX + random_part


def _replay(existing: Order, values: dict[str, Any]) -> Order:
    """The order a repeated ``client_request_id`` refers to, if the request is the same one."""
    differing = sorted(
        name
        for name in _REPLAY_FIELDS
        if getattr(existing, name)
        != (values[name].strip() if isinstance(values[name], str) else values[name])
    )
    if differing:
        raise Conflict(
            f"client_request_id {existing.client_request_id!r} was already used for another booking "
            f"(differs in {', '.join(differing)})",
            code="client_request_id_reused",
        )
    return existing


# --- writes ----------------------------------------------------------------------------------------


@transaction.atomic
def order_create(
    *,
    actor: User | None,
    hospital: Organisation,
    unit: Unit,
    scheduled_date: date,
    requested_procedure: str,
    modality: str,
    body_part: str,
    priority: str,
    patient_id: str,
    patient_name: str,
    patient_sex: str,
    patient_birth_date: date,
    notes: str = "",
    client_request_id: str = "",
    visit: Visit | None = None,
    request: HttpRequest | None = None,
) -> Order:
    """Book an exam on ``unit`` for ``scheduled_date``; it appears in the unit's worklist.

    The order belongs to ``visit`` when given (it must be that unit's visit to the hospital on
    that day), else to the unit's visit there that day; with none, or a unit the hospital has no
    contract with, or one that cannot serve the visit, the booking is refused
    (``dicom.services.order_booking.booking_check``, docs/orders.md).

    The same ``client_request_id`` from the same hospital returns the order it created, so a
    client may retry a booking whose answer it never received.
    """
    booker = booking_check_may_book(actor, hospital)
    client_request_id = _check_text(
        client_request_id, field="client_request_id", max_length=CLIENT_REQUEST_ID_MAX, required=False
    )
    values: dict[str, Any] = {
        "unit_id": unit.pk,
        "scheduled_date": scheduled_date,
        "requested_procedure": requested_procedure,
        "modality": modality,
        "body_part": body_part,
        "priority": priority,
        "patient_id": patient_id,
        "patient_name": patient_name,
        "patient_sex": patient_sex,
        "patient_birth_date": patient_birth_date,
    }
    if client_request_id:
        # Before validation: a retry of yesterday's booking must not be refused as "in the past".
        existing = Order.objects.filter(hospital=hospital, client_request_id=client_request_id).first()
        if existing is not None:
            return _replay(existing, values)

    if hospital.kind != OrganisationKind.HOSPITAL:
        raise InvalidInput(f"{hospital.name} is not a hospital", code="not_a_hospital")
    if not hospital.is_active:
        raise InvalidInput(f"{hospital.name} is not active", code="hospital_inactive")
    _check_choice(modality, Modality, "modality")
    if unit.modality != modality:
        raise InvalidInput(
            f"Unit {unit.name} is a {unit.modality} unit; it cannot perform a {modality} exam",
            code="modality_mismatch",
        )
    _check_choice(body_part, BodyPart, "body_part")
    _check_choice(priority, Priority, "priority")
    _check_choice(patient_sex, PatientSex, "patient_sex")
    scheduled_date = _check_date(scheduled_date, "scheduled_date")
    patient_birth_date = _check_date(patient_birth_date, "patient_birth_date")
    today = timezone.localdate()
    if scheduled_date < today:
        raise InvalidInput(
            f"scheduled_date {scheduled_date.isoformat()} is in the past", code="scheduled_date_past"
        )
    if patient_birth_date > today:
        raise InvalidInput("patient_birth_date is in the future", code="birth_date_future")
    requested_procedure = _check_text(requested_procedure, field="requested_procedure", max_length=LO_MAX)
    patient_id = _check_text(patient_id, field="patient_id", max_length=LO_MAX)
    patient_name = clean_patient_name(patient_name)
    if not isinstance(notes, str):
        raise InvalidInput("notes must be text", code="invalid_notes")
    visit = booking_check(hospital=hospital, unit=unit, day=scheduled_date, visit=visit)

    order: Order | None = None
    for _ in range(ACCESSION_ATTEMPTS):
        accession_number = new_accession_number()
        if Order.objects.filter(accession_number=accession_number).exists():
            continue
        try:
            # A savepoint, so a lost race leaves the outer transaction usable.
            with transaction.atomic():
                order = Order.objects.create(
                    hospital=hospital,
                    unit=unit,
                    scheduled_date=scheduled_date,
                    visit=visit,
                    accession_number=accession_number,
                    study_instance_uid=new_uid(),
                    requested_procedure=requested_procedure,
                    modality=modality,
                    body_part=body_part,
                    priority=priority,
                    patient_id=patient_id,
                    patient_name=patient_name,
                    patient_sex=patient_sex,
                    patient_birth_date=patient_birth_date,
                    notes=notes.strip(),
                    client_request_id=client_request_id,
                    created_by=booker,
                )
        except IntegrityError:
            if client_request_id:
                # A concurrent retry with the same key committed first.
                existing = Order.objects.filter(
                    hospital=hospital, client_request_id=client_request_id
                ).first()
                if existing is not None:
                    return _replay(existing, values)
            continue  # an accession number taken between the check and the insert
        break
    if order is None:
        raise Unavailable(
            "Could not allocate a unique accession number; try again", code="accession_exhausted"
        )

    audit_record(
        actor=booker,
        action="order.create",
        obj=order,
        patient_data=True,
        patient_id=order.patient_id,
        details={
            "unit": unit.pk,
            "visit": visit.pk if visit is not None else None,
            "scheduled_date": order.scheduled_date,
            "modality": order.modality,
            "body_part": order.body_part,
            "priority": order.priority,
        },
        request=request,
    )
    return order


@transaction.atomic
def order_cancel(
    *, actor: User | None, order: Order, reason: str, request: HttpRequest | None = None
) -> Order:
    """Cancel a scheduled order (it leaves the worklist); anything further along is refused (409)."""
    _check_may_cancel(actor, order)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("A reason is required to cancel an order", code="reason_required")
    reason = reason.strip()
    if len(reason) > CANCEL_REASON_MAX:
        raise InvalidInput(f"reason is at most {CANCEL_REASON_MAX} characters", code="reason_too_long")
    if not order_cancel_if_scheduled(order=order, actor=actor, reason=reason, request=request):
        current = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
        label = OrderStatus(current).label.lower() if current else "gone"
        raise Conflict(
            f"Order {order.accession_number} is {label}; only scheduled orders can be cancelled",
            code="order_not_scheduled",
        )
    order.refresh_from_db()
    return order


def order_cancel_if_scheduled(
    *, order: Order, actor: User | None, reason: str, request: HttpRequest | None = None
) -> bool:
    """Compare-and-swap a scheduled order to cancelled and audit it; False (nothing done) if it
    is not scheduled any more. The callers check who may cancel and why."""
    if not Order.objects.filter(pk=order.pk, status=OrderStatus.SCHEDULED).update(
        status=OrderStatus.CANCELLED, updated_at=timezone.now()
    ):
        return False
    audit_record(
        actor=actor,
        action="order.cancel",
        obj=order,
        patient_data=True,
        patient_id=order.patient_id,
        details={"reason": reason},
        request=request,
    )
    return True


def _transition(
    order: Order, *, to: OrderStatus, sources: tuple[OrderStatus, ...], done: tuple[OrderStatus, ...]
) -> Order:
    """Compare-and-swap ``order`` into ``to``; a repeat (status already in ``done``) is a no-op."""
    changed = Order.objects.filter(pk=order.pk, status__in=sources).update(
        status=to, updated_at=timezone.now()
    )
    if changed:
        audit_record(
            actor=None,
            action=f"order.{to.value}",
            obj=order,
            patient_data=True,
            patient_id=order.patient_id,
        )
    else:
        current = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
        if current not in done:
            label = OrderStatus(current).label.lower() if current else "gone"
            raise Conflict(
                f"Order {order.accession_number} is {label}; it cannot become {to.label.lower()}",
                code="order_transition_refused",
            )
    order.refresh_from_db()
    return order


@transaction.atomic
def order_mark_in_progress(*, order: Order) -> Order:
    """The scanner started the exam (first images arrived). Repeats and later states are no-ops."""
    return _transition(
        order,
        to=OrderStatus.IN_PROGRESS,
        sources=(OrderStatus.SCHEDULED,),
        done=(OrderStatus.IN_PROGRESS, OrderStatus.ACQUIRED),
    )


@transaction.atomic
def order_mark_acquired(*, order: Order) -> Order:
    """The study is in and matched. Idempotent; a cancelled order is refused (409)."""
    return _transition(
        order,
        to=OrderStatus.ACQUIRED,
        sources=(OrderStatus.SCHEDULED, OrderStatus.IN_PROGRESS),
        done=(OrderStatus.ACQUIRED,),
    )
