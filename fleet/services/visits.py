"""Visit crew: the dispatcher assigns it; a visit starts only with the qualified people on board."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, InvalidInput
from core.models import User
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import VisitStatus
from fleet.models import CrewMember, Visit
from fleet.selectors import visit_check_crew

# Crew can change until the van is on site.
CREW_EDITABLE = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE)


@transaction.atomic
def visit_crew_assign(*, actor: User | None, visit: Visit, crew: Sequence[CrewMember]) -> list[str]:
    """Set the visit's crew (replacing it) and return what it still lacks (empty: ready)."""
    if actor is not None:
        check_register_writer(actor, visit.unit.operator_id)
    if visit.status not in CREW_EDITABLE:
        raise Conflict(
            f"The visit is {VisitStatus(visit.status).label.lower()}; its crew can no longer change",
            code="visit_not_editable",
        )
    strangers = [member.full_name for member in crew if member.operator_id != visit.unit.operator_id]
    if strangers:
        raise InvalidInput(f"Not crew of {visit.unit.operator}: {', '.join(strangers)}", code="invalid_crew")
    visit.crew.set(crew)
    problems = visit_check_crew(visit)
    audit_record(
        actor=actor,
        action="visit.crew_assign",
        obj=visit,
        details={"crew": sorted(member.pk for member in crew), "problems": problems},
    )
    return problems


@transaction.atomic
def visit_start(*, visit: Visit, actor: User | None = None, reason: str = "") -> Visit:
    """planned / en route -> on site (telemetry's arrival); refused (409) when the crew lacks a credential."""
    problems = visit_check_crew(visit)
    if problems:
        raise Conflict(
            f"The visit cannot start: {'; '.join(problems)}",
            code="visit_crew_missing",
            extra={"reasons": problems},
        )
    now = timezone.now()
    changed = Visit.objects.filter(pk=visit.pk, status__in=CREW_EDITABLE).update(
        status=VisitStatus.ON_SITE, arrived_at=now
    )
    if not changed:
        current = Visit.objects.filter(pk=visit.pk).values_list("status", flat=True).first()
        label = VisitStatus(current).label.lower() if current else "gone"
        raise Conflict(f"The visit is {label}; it cannot start", code="visit_transition_refused")
    audit_record(actor=actor, action="visit.start", obj=visit, details={"reason": reason})
    visit.refresh_from_db()
    return visit
