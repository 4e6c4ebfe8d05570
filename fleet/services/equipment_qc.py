"""Recording the daily phantom check. The platform computes the result; the client never sends it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.exceptions import InvalidInput
from core.models import User
from core.services import audit_record
from fleet.access import check_qc_recorder
from fleet.choices import EquipmentQCResult
from fleet.equipment_qc import qc_evaluate
from fleet.models import EquipmentQC, Unit

# A check may be entered a little after it was done, never for the future or an old day.
MAX_BACKDATE = dt.timedelta(hours=24)
CLOCK_SKEW = dt.timedelta(minutes=5)


@transaction.atomic
def equipment_qc_record(
    *,
    actor: User | None,
    unit: Unit,
    measurements: dict[str, Any],
    performed_at: dt.datetime | None = None,
) -> EquipmentQC:
    """Evaluate and store a daily check; a failed one puts the unit on QC hold for its day.

    The latest check of a day decides: a passing re-check after a fix lifts the hold.
    """
    if actor is not None:
        check_qc_recorder(actor, unit.operator_id)
    now = timezone.now()
    performed_at = performed_at or now
    if performed_at.tzinfo is None:
        raise InvalidInput("performed_at needs a time zone", code="invalid_performed_at")
    if performed_at > now + CLOCK_SKEW:
        raise InvalidInput("performed_at is in the future", code="invalid_performed_at")
    if performed_at < now - MAX_BACKDATE:
        raise InvalidInput("performed_at is more than 24 hours ago", code="invalid_performed_at")
    failures, tolerances = qc_evaluate(unit.modality, measurements)
    check = EquipmentQC.objects.create(
        unit=unit,
        performed_at=performed_at,
        day=timezone.localdate(performed_at),
        performed_by=actor,
        measurements=measurements,
        tolerances=tolerances,
        result=EquipmentQCResult.FAIL if failures else EquipmentQCResult.PASS,
        failures=failures,
    )
    audit_record(
        actor=actor,
        action="equipment_qc.record",
        obj=check,
        details={"unit": unit.pk, "day": check.day, "result": check.result, "failures": failures},
    )
    return check
