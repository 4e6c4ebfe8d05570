"""Ending an operator's service in a region: refused while its hospitals would be left uncovered.

For a unit withdrawal the rest of the fleet can take the unit's work (a what-if plan shows how);
when the operator leaves a whole region, its own vans stop going there, so a hospital stays
covered only if another operator takes over: an active contract of another operator for the same
hospital and modality. ``region_service_end`` lists every contract of the operator in the region
that nobody takes over; any, and the exit is refused (the attempt recorded) until the handover
contracts exist, or an administrator overrides with a recorded reason. When it goes ahead the
operator's contracts there end (inactive, kept for the record) and its open service requests
from those hospitals are declined, "service in the region ended": scheduled ones free their
visit and booked exams, and every hospital is told (``service_request_transition``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import VisitStatus
from fleet.models import (
    RegionExit,
    ServiceContract,
    ServiceRequest,
    ServiceRequestStatus,
    WithdrawalOutcome,
)
from fleet.selectors_coverage import coverage_rows
from fleet.services.requests import service_request_transition

S = ServiceRequestStatus
OPEN_REQUESTS = (S.SUBMITTED, S.PLANNED, S.SCHEDULED)
REASON_MAX = 2000


def region_uncovered(
    *, operator: Organisation, region_code: str
) -> tuple[list[ServiceContract], list[dict[str, Any]]]:
    """The operator's active contracts in the region, and those no other operator takes over."""
    contracts = list(
        ServiceContract.objects.filter(operator=operator, active=True, hospital__region_code=region_code)
        .select_related("hospital")
        .order_by("hospital__name", "modality")
    )
    due = {
        (row.hospital_id, row.modality): row
        for row in coverage_rows(on=timezone.localdate(), operator_id=operator.pk)
    }
    uncovered = []
    for contract in contracts:
        taken_over = (
            ServiceContract.objects.filter(
                hospital_id=contract.hospital_id, modality=contract.modality, active=True
            )
            .exclude(operator=operator)
            .exists()
        )
        if taken_over:
            continue
        row = due.get((contract.hospital_id, contract.modality))
        uncovered.append(
            {
                "contract_id": contract.pk,
                "hospital_id": contract.hospital_id,
                "hospital_name": contract.hospital.name,
                "modality": contract.modality,
                "interval_days": contract.interval_days,
                "due_on": row.due_on.isoformat() if row is not None else None,
            }
        )
    return contracts, uncovered


def region_exit_refusal(record: RegionExit) -> Conflict:
    names = ", ".join(f"{row['hospital_name']} ({row['modality']})" for row in record.uncovered)
    return Conflict(
        f"Service in region {record.region_code} cannot end: no other operator takes over "
        f"{len(record.uncovered)} contract(s): {names}. Arrange the handover contracts first, or ask an "
        "administrator to override with a reason.",
        code="region_exit_refused",
        extra={"uncovered": record.uncovered, "region_exit": record.pk},
    )


def region_service_end(
    *, actor: User, operator: Organisation, region_code: str, override_reason: str = ""
) -> RegionExit:
    """End the operator's service in ``region_code`` if every hospital there is taken over.

    A refusal is returned (``outcome=refused``, committed), not raised, so the record survives a
    caller's transaction; the API maps it to 409 with ``region_exit_refusal``.
    """
    check_register_writer(actor, operator.pk)
    reason = (override_reason or "").strip() if isinstance(override_reason, str) else ""
    if reason and not (actor.is_superuser or actor.has_role(Role.ADMIN)):
        raise AccessDenied("Only the operator's administrators may override the coverage check")
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"override_reason: at most {REASON_MAX} characters", code="invalid_field")
    region_code = (region_code or "").strip()
    contracts, uncovered = region_uncovered(operator=operator, region_code=region_code)
    if not contracts:
        raise InvalidInput(
            f"region_code: {operator.name} has no active contract in region {region_code!r}",
            code="invalid_field",
            extra={"field": "region_code"},
        )
    if uncovered and not reason:
        with transaction.atomic():
            record = RegionExit.objects.create(
                operator=operator, region_code=region_code, actor=actor, outcome=WithdrawalOutcome.REFUSED,
                uncovered=uncovered,
            )  # fmt: skip
            audit_record(
                actor=actor,
                action="region.exit_refused",
                obj=record,
                details={"region": region_code, "uncovered": [row["contract_id"] for row in uncovered]},
            )
        return record
    outcome = WithdrawalOutcome.OVERRIDDEN if uncovered else WithdrawalOutcome.WITHDRAWN
    return _end(actor=actor, operator=operator, region_code=region_code, contracts=contracts,
                uncovered=uncovered, outcome=outcome, reason=reason)  # fmt: skip


@transaction.atomic
def _end(
    *,
    actor: User,
    operator: Organisation,
    region_code: str,
    contracts: list[ServiceContract],
    uncovered: list[dict[str, Any]],
    outcome: str,
    reason: str,
) -> RegionExit:
    ended = [c.pk for c in contracts]
    ServiceContract.objects.filter(pk__in=ended, active=True).update(active=False)
    why = f"{operator.name} ends its service in region {region_code}"
    declined = []
    hospitals = {c.hospital_id for c in contracts}
    requests = ServiceRequest.objects.filter(
        operator=operator, hospital_id__in=hospitals, status__in=OPEN_REQUESTS
    )
    for service_request in requests.select_related("visit").order_by("pk"):
        visit = service_request.visit
        if (
            service_request.status == S.SCHEDULED
            and visit is not None
            and visit.status != VisitStatus.PLANNED
        ):
            continue  # the van is on its way or there: that visit still happens
        service_request_transition(
            service_request=service_request, to_status=S.DECLINED, actor=actor, reason=why
        )
        declined.append(service_request.pk)
    record = RegionExit.objects.create(
        operator=operator, region_code=region_code, actor=actor, outcome=outcome, uncovered=uncovered,
        contracts_ended=ended, reason=reason,
    )  # fmt: skip
    audit_record(
        actor=actor,
        action="region.exit",
        obj=record,
        details={
            "region": region_code,
            "outcome": outcome,
            "contracts": ended,
            "declined": declined,
            "reason": reason,
        },
    )
    return record
