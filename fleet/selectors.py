"""Fleet register reads: which units a user may reach, and why a unit cannot be dispatched or scan.

The rule functions take a unit (or visit) and iterate its related rows with ``.all()``, so a
list that prefetched them (``unit_list_for_user``) evaluates every unit without more queries.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from core.exceptions import NotFound
from fleet.choices import CredentialKind, CrewRole, EquipmentQCResult, LicenceKind, Modality
from fleet.models import CrewCredential, CrewMember, EquipmentQC, Licence, MaintenanceWindow, Unit, Visit

# Licences every unit needs, plus those its modality needs.
REQUIRED_LICENCES: dict[str, tuple[str, ...]] = {
    Modality.CT: (
        LicenceKind.INSTITUTION,
        LicenceKind.VEHICLE_REGISTRATION,
        LicenceKind.LARGE_EQUIPMENT,
        LicenceKind.RADIATION_SAFETY,
    ),
    Modality.MR: (LicenceKind.INSTITUTION, LicenceKind.VEHICLE_REGISTRATION, LicenceKind.LARGE_EQUIPMENT),
    Modality.DX: (LicenceKind.INSTITUTION, LicenceKind.VEHICLE_REGISTRATION, LicenceKind.RADIATION_SAFETY),
}

# Who must be on a visit's crew: (credential, roles that may hold it for this purpose, label).
CREW_REQUIREMENT: dict[str, tuple[str, tuple[str, ...], str]] = {
    Modality.CT: (CredentialKind.RADIOGRAPHER, tuple(CrewRole.values), "a radiographer"),
    Modality.DX: (CredentialKind.RADIOGRAPHER, tuple(CrewRole.values), "a radiographer"),
    Modality.MR: (CredentialKind.MR_SAFETY, (CrewRole.TECHNOLOGIST, CrewRole.RADIOGRAPHER), "a technologist"),
}

MODALITY_SHORT: dict[str, str] = {Modality.CT: "CT", Modality.MR: "MRI", Modality.DX: "DR"}


def _lower_first(label: str) -> str:
    """'Radiographer certificate' -> 'radiographer certificate'; 'MR-safety training' stays."""
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


# --- scope ---------------------------------------------------------------------------------------


def unit_scope_for_user(user, queryset: QuerySet[Unit]) -> QuerySet[Unit]:
    """Units of the user's own operator (superusers: all). Hospitals and other operators: none.

    Stricter than ``core.access.scope_for_user``, which lets any operator's staff across all
    organisations: a second operator's register is not theirs.
    """
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    if user.is_superuser:
        return queryset
    if user.organisation_id is None:
        return queryset.none()
    return queryset.filter(operator_id=user.organisation_id)


def _with_register(queryset: QuerySet[Unit], at: dt.datetime) -> QuerySet[Unit]:
    day = timezone.localdate(at)
    return queryset.prefetch_related(
        "licences",
        Prefetch("maintenance_windows", queryset=MaintenanceWindow.objects.filter(ends_at__gt=at)),
        Prefetch("qc_checks", queryset=EquipmentQC.objects.filter(day=day)),
    )


def unit_list_for_user(user, *, at: dt.datetime | None = None) -> QuerySet[Unit]:
    """The user's operator's units with licences, current/future maintenance and today's QC."""
    at = at or timezone.now()
    return _with_register(unit_scope_for_user(user, Unit.objects.select_related("operator")), at)


def unit_get_for_user(user, pk: int, *, at: dt.datetime | None = None) -> Unit:
    unit = unit_list_for_user(user, at=at).filter(pk=pk).first()
    if unit is None:
        raise NotFound("No unit matches the given id")
    return unit


def crew_member_get_for_user(user, pk: int) -> CrewMember:
    member = CrewMember.objects.filter(
        pk=pk, operator_id__in=unit_scope_for_user(user, Unit.objects.all()).values("operator_id")
    ).first()
    if member is None and getattr(user, "is_superuser", False):
        member = CrewMember.objects.filter(pk=pk).first()
    if member is None:
        raise NotFound("No crew member matches the given id")
    return member


def visit_get_for_user(user, pk: int) -> Visit:
    visit = Visit.objects.filter(pk=pk, unit__in=unit_scope_for_user(user, Unit.objects.all())).first()
    if visit is None:
        raise NotFound("No visit matches the given id")
    return visit


# --- a unit's rows (the caller reached the unit or visit through the functions above) -----------


def unit_maintenance_windows(unit: Unit) -> QuerySet[MaintenanceWindow]:
    return MaintenanceWindow.objects.filter(unit=unit)


def unit_qc_checks(unit: Unit, *, limit: int = 50) -> QuerySet[EquipmentQC]:
    """The unit's latest daily checks (model order), with who performed them."""
    return EquipmentQC.objects.filter(unit=unit).select_related("performed_by")[:limit]


def visit_crew_candidates(visit: Visit, ids: list[int]) -> QuerySet[CrewMember]:
    """Crew members ``ids`` of the visit's unit's operator (an id of another operator is left out)."""
    return CrewMember.objects.filter(pk__in=ids, operator_id=visit.unit.operator_id)


# --- rules ---------------------------------------------------------------------------------------


def _related(unit: Unit, name: str, **narrow) -> list:
    """``unit.<name>`` from the prefetch cache when a list loaded it, else only the rows needed."""
    cache = getattr(unit, "_prefetched_objects_cache", {})
    if name in cache:
        return list(cache[name])
    return list(getattr(unit, name).filter(**narrow))


def unit_licence_problems(unit: Unit, *, on: dt.date | None = None) -> list[str]:
    """Required licences that are missing or expired on ``on`` (default today), one line each."""
    on = on or timezone.localdate()
    held: dict[str, list[Licence]] = {}
    for licence in unit.licences.all():
        held.setdefault(licence.kind, []).append(licence)
    problems = []
    for kind in REQUIRED_LICENCES[unit.modality]:
        label = LicenceKind(kind).label
        licences = held.get(kind, [])
        if not licences:
            problems.append(f"{label}: missing")
            continue
        latest = max(licences, key=lambda licence: licence.expires_on)
        if latest.expires_on < on:
            problems.append(f"{label} {latest.number}: expired on {latest.expires_on.isoformat()}")
    return problems


def unit_maintenance_now(unit: Unit, *, at: dt.datetime | None = None) -> MaintenanceWindow | None:
    at = at or timezone.now()
    for window in _related(unit, "maintenance_windows", ends_at__gt=at):
        if window.starts_at <= at < window.ends_at:
            return window
    return None


def unit_dispatch_blockers(unit: Unit, *, at: dt.datetime | None = None) -> list[str]:
    """Why the unit may not be dispatched now (empty: it may)."""
    at = at or timezone.now()
    problems = unit_licence_problems(unit, on=timezone.localdate(at))
    window = unit_maintenance_now(unit, at=at)
    if window is not None:
        until = timezone.localtime(window.ends_at).strftime("%Y-%m-%d %H:%M")
        problems.append(f"in a maintenance window until {until}: {window.reason}")
    return problems


def unit_qc_today(unit: Unit, *, day: dt.date | None = None) -> EquipmentQC | None:
    """The latest daily check of ``day`` (default: the unit's local today); a re-check supersedes."""
    day = day or timezone.localdate()
    checks = [check for check in _related(unit, "qc_checks", day=day) if check.day == day]
    return max(checks, key=lambda check: (check.performed_at, check.pk), default=None)


def unit_qc_hold_reason(unit: Unit, *, day: dt.date | None = None) -> str | None:
    """Why the unit is on QC hold on ``day`` (no passing latest check), or None when it is not."""
    day = day or timezone.localdate()
    check = unit_qc_today(unit, day=day)
    if check is None:
        return f"no daily QC on {day.isoformat()}"
    if check.result != EquipmentQCResult.PASS:
        at = timezone.localtime(check.performed_at).strftime("%H:%M")
        return f"daily QC failed at {at}: {'; '.join(check.failures)}"
    return None


def visit_check_crew(visit: Visit) -> list[str]:
    """What the visit's crew lacks for its unit's modality on the visit's day (empty: ready)."""
    kind, roles, who = CREW_REQUIREMENT[visit.unit.modality]
    label = _lower_first(CredentialKind(kind).label)
    crew = list(visit.crew.all())
    credentials = CrewCredential.objects.filter(crew_member__in=crew, kind=kind)
    by_member: dict[int, list[CrewCredential]] = {}
    for credential in credentials:
        by_member.setdefault(credential.crew_member_id, []).append(credential)
    notes = []
    for member in crew:
        held = by_member.get(member.pk, [])
        if not held:
            continue
        latest = max(held, key=lambda c: c.expires_on)
        if member.role not in roles:
            notes.append(f"{member.full_name} holds it but is a {member.get_role_display().lower()}")
        elif latest.expires_on < visit.date:
            notes.append(f"{member.full_name}'s {label} expired on {latest.expires_on.isoformat()}")
        else:
            return []
    problem = f"{MODALITY_SHORT[visit.unit.modality]} visit needs {who} with a valid {label} on the crew"
    if not crew:
        problem += " (no crew assigned)"
    elif notes:
        problem += f" ({'; '.join(notes)})"
    return [problem]
