"""Coverage reads: every contracted hospital against its interval, and who a withdrawal would leave out.

The coverage rules are those of ``fleet.selectors_requests.hospitals_overdue`` (one rule, two
views): a contract counts from ``starts_on``; the last visit is the latest not-cancelled visit
on or before the day asked about by a unit of the contract's operator and modality; the hospital
is due again ``interval_days`` later (never served: due on ``starts_on``) and overdue from the
day after. See docs/coverage-exit.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import QuerySet, Subquery

from core.exceptions import NotFound
from fleet.choices import UnitStatus, VisitStatus
from fleet.models import ServiceContract, Unit, UnitWithdrawal, Visit, WithdrawalOutcome
from fleet.selectors_requests import _serving_visits, hospital_operator_scope_for_user

# A visit still to come: booked, on the road, or being worked (a visit "done" is in the past).
UPCOMING_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE)
# A unit's visits that can still be moved to another unit (the withdrawal looks at these).
MOVABLE_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE)
# Due within this many days (and not yet overdue): amber on the page.
DUE_SOON_DAYS = 3
# A hospital with nothing booked "will be late" only when it falls due within this horizon.
LOOKAHEAD_DAYS = 14
# Units that cannot cover for a withdrawn one.
UNAVAILABLE_UNIT_STATUSES = (UnitStatus.WITHDRAWN, UnitStatus.OUT_OF_SERVICE)


class CoverageState:
    OK = "ok"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class CoverageRow:
    """One active contract against its interval on a day."""

    contract_id: int
    operator_id: int
    hospital_id: int
    hospital_name: str
    latitude: float | None
    longitude: float | None
    region_code: str
    modality: str
    interval_days: int
    last_visit: dt.date | None
    next_visit: dt.date | None
    due_on: dt.date
    days_overdue: int
    state: str
    will_be_late: bool

    @property
    def days_left(self) -> int:
        """Days until due (0: today; negative: overdue)."""
        return -self.days_overdue

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        for key in ("last_visit", "next_visit", "due_on"):
            row[key] = row[key].isoformat() if row[key] else None
        return row


def _state(on: dt.date, due_on: dt.date) -> str:
    days_left = (due_on - on).days
    if days_left < 0:
        return CoverageState.OVERDUE
    if days_left <= DUE_SOON_DAYS:
        return CoverageState.DUE_SOON
    return CoverageState.OK


def coverage_rows(*, on: dt.date, operator_id: int | None = None) -> list[CoverageRow]:
    """Every active contract started by ``on`` (of an active hospital): most overdue first.

    ``last_visit`` and ``due_on`` follow ``hospitals_overdue`` (a visit planned for ``on``
    itself counts as the last visit). ``next_visit`` is the earliest planned, en-route or
    on-site visit dated strictly after ``on``. ``days_overdue`` is ``on - due_on`` in days (0:
    due today; negative: days left). ``state``: overdue (past due), due_soon (due within
    ``DUE_SOON_DAYS``), ok. ``will_be_late``: the next visit comes after the due date, or none is
    booked and the due date is within ``LOOKAHEAD_DAYS`` (or past). One query.
    """
    contracts = ServiceContract.objects.filter(active=True, starts_on__lte=on, hospital__is_active=True)
    if operator_id is not None:
        contracts = contracts.filter(operator_id=operator_id)
    contracts = contracts.select_related("hospital").annotate(
        last_visit=Subquery(_serving_visits(on).filter(date__lte=on).order_by("-date").values("date")[:1]),
        next_visit=Subquery(
            _serving_visits(on)
            .filter(date__gt=on, status__in=UPCOMING_STATUSES)
            .order_by("date")
            .values("date")[:1]
        ),
    )
    horizon = on + dt.timedelta(days=LOOKAHEAD_DAYS)
    rows = []
    for contract in contracts:
        last: dt.date | None = contract.last_visit  # type: ignore[attr-defined]
        upcoming: dt.date | None = contract.next_visit  # type: ignore[attr-defined]
        due_on = last + dt.timedelta(days=contract.interval_days) if last else contract.starts_on
        late = upcoming > due_on if upcoming else due_on <= horizon
        hospital = contract.hospital
        rows.append(
            CoverageRow(
                contract_id=contract.pk,
                operator_id=contract.operator_id,
                hospital_id=hospital.pk,
                hospital_name=hospital.name,
                latitude=hospital.latitude,
                longitude=hospital.longitude,
                region_code=hospital.region_code,
                modality=contract.modality,
                interval_days=contract.interval_days,
                last_visit=last,
                next_visit=upcoming,
                due_on=due_on,
                days_overdue=(on - due_on).days,
                state=_state(on, due_on),
                will_be_late=late,
            )
        )
    rows.sort(key=lambda row: (-row.days_overdue, row.hospital_name, row.modality))
    return rows


# --- withdrawal ----------------------------------------------------------------------------------


def _covering_visits(unit: Unit, hospital_id: int, start: dt.date, end: dt.date) -> QuerySet[Visit]:
    """Booked visits by *another* usable unit of the same operator and modality in ``start..end``."""
    return (
        Visit.objects.filter(
            hospital_id=hospital_id,
            date__gte=start,
            date__lte=end,
            status__in=MOVABLE_STATUSES,
            unit__operator_id=unit.operator_id,
            unit__modality=unit.modality,
        )
        .exclude(unit_id=unit.pk)
        .exclude(unit__status__in=UNAVAILABLE_UNIT_STATUSES)
    )


def _uncovered_row(
    *,
    hospital_id: int,
    hospital_name: str,
    modality: str,
    visit_date: dt.date | None,
    deadline: dt.date,
    why: str,
) -> dict[str, Any]:
    return {
        "hospital_id": hospital_id,
        "hospital_name": hospital_name,
        "modality": modality,
        "visit_date": visit_date.isoformat() if visit_date else None,
        "deadline": deadline.isoformat(),
        "why": why,
    }


def withdrawal_uncovered(*, unit: Unit, on: dt.date) -> list[dict[str, Any]]:
    """Hospitals that would miss their service interval if ``unit`` left the fleet on ``on``.

    Two checks, one row per hospital (by hospital name):

    1. ``booked`` — each of the unit's upcoming visits (planned or en route, dated ``on`` or
       later) must be taken over: its deadline is the later of the visit's date and the
       hospital's due date under the contract for the unit's operator and modality (no such
       active contract: the visit's date). It is covered when another unit of the same operator
       and modality, neither withdrawn nor out of service, has a planned or en-route visit to
       that hospital dated ``on`` ≤ date ≤ deadline. The earliest uncovered visit is reported.
    2. ``last_served`` — each active contract (operator and modality of the unit) whose last
       visit (coverage rule) was made by this unit and which falls due within ``LOOKAHEAD_DAYS``
       (``on`` ≤ due ≤ ``on`` + 14) needs a visit by another such unit dated ``on`` ≤ date ≤ due.
       Contracts already overdue are not the withdrawal's doing and are left to the coverage view.

    Rows: ``hospital_id``, ``hospital_name``, ``modality``, ``visit_date`` (the unit's visit;
    None for ``last_served``), ``deadline``, ``why``.
    """
    contracts = {
        contract.hospital_id: contract
        for contract in ServiceContract.objects.filter(
            operator_id=unit.operator_id, modality=unit.modality, active=True, starts_on__lte=on
        ).select_related("hospital")
    }
    dues: dict[int, dt.date] = {}
    last_by: dict[int, int] = {}
    for hospital_id, contract in contracts.items():
        last = (
            Visit.objects.filter(
                hospital_id=hospital_id,
                unit__operator_id=unit.operator_id,
                unit__modality=unit.modality,
                date__lte=on,
            )
            .exclude(status=VisitStatus.CANCELLED)
            .order_by("-date", "-id")
            .values_list("date", "unit_id")
            .first()
        )
        if last is None:
            dues[hospital_id] = contract.starts_on
        else:
            dues[hospital_id] = last[0] + dt.timedelta(days=contract.interval_days)
            last_by[hospital_id] = last[1]

    found: dict[int, dict[str, Any]] = {}
    visits = (
        Visit.objects.filter(unit=unit, status__in=MOVABLE_STATUSES, date__gte=on)
        .select_related("hospital")
        .order_by("date", "sequence", "id")
    )
    for visit in visits:
        if visit.hospital_id in found:
            continue
        due = dues.get(visit.hospital_id)
        deadline = max(visit.date, due) if due else visit.date
        if not _covering_visits(unit, visit.hospital_id, on, deadline).exists():
            found[visit.hospital_id] = _uncovered_row(
                hospital_id=visit.hospital_id,
                hospital_name=visit.hospital.name,
                modality=unit.modality,
                visit_date=visit.date,
                deadline=deadline,
                why="booked",
            )

    horizon = on + dt.timedelta(days=LOOKAHEAD_DAYS)
    for hospital_id, contract in contracts.items():
        due = dues[hospital_id]
        if hospital_id in found or last_by.get(hospital_id) != unit.pk or not on <= due <= horizon:
            continue
        if not _covering_visits(unit, hospital_id, on, due).exists():
            found[hospital_id] = _uncovered_row(
                hospital_id=hospital_id,
                hospital_name=contract.hospital.name,
                modality=unit.modality,
                visit_date=None,
                deadline=due,
                why="last_served",
            )
    return sorted(found.values(), key=lambda row: (row["hospital_name"], row["hospital_id"]))


# --- contracts -----------------------------------------------------------------------------------


def service_contract_list_for_user(user) -> QuerySet[ServiceContract]:
    """Dispatchers and administrators: their operator's contracts; hospital users: their hospital's
    (read-only); superusers: all; anyone else: none (ids are then 404)."""
    contracts = ServiceContract.objects.select_related("hospital", "operator").order_by(
        "hospital__name", "modality", "id"
    )
    return hospital_operator_scope_for_user(user, contracts)


def service_contract_modalities_for_user(user) -> list[str]:
    """The modalities the user's own hospital has an active contract for, sorted (what it may
    request); none for an account without a hospital."""
    contracts = ServiceContract.objects.filter(hospital_id=user.organisation_id, active=True)
    modalities = hospital_operator_scope_for_user(user, contracts).values_list("modality", flat=True)
    return sorted(set(modalities.distinct()))


def service_contract_get_for_user(user, pk: int) -> ServiceContract:
    contract = service_contract_list_for_user(user).filter(pk=pk).first()
    if contract is None:
        raise NotFound("No service contract matches the given id")
    return contract


# --- withdrawal (the operator is already the caller's: ``map_operator_for_user``) ----------------


def coverage_units(*, operator_id: int) -> QuerySet[Unit]:
    """The operator's units still in its fleet (not withdrawn), by name: those it may withdraw."""
    return Unit.objects.filter(operator_id=operator_id).exclude(status=UnitStatus.WITHDRAWN).order_by("name")


def coverage_unit(*, operator_id: int, unit_id: int) -> Unit | None:
    """The operator's unit ``unit_id``, or None (another operator's is not revealed)."""
    return Unit.objects.filter(pk=unit_id, operator_id=operator_id).first()


def coverage_withdrawal_done(*, operator_id: int, withdrawal_id: int) -> UnitWithdrawal | None:
    """A withdrawal of one of the operator's units that went through (not refused), or None."""
    return (
        UnitWithdrawal.objects.filter(pk=withdrawal_id, unit__operator_id=operator_id)
        .exclude(outcome=WithdrawalOutcome.REFUSED)
        .select_related("unit")
        .first()
    )


def unit_withdrawals(unit: Unit, *, limit: int = 100) -> QuerySet[UnitWithdrawal]:
    """A unit's withdrawal attempts (the caller reached the unit through ``unit_get_for_user``)."""
    return UnitWithdrawal.objects.filter(unit=unit).select_related("unit", "actor")[:limit]
