"""The register: licences and maintenance decide dispatchability; crew credentials decide visits."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry
from dicom.selectors import worklist_for_aet
from fleet.choices import CredentialKind, CrewRole, LicenceKind, UnitStatus, VisitStatus
from fleet.models import Licence, MaintenanceWindow, Unit, UnitStatusChange, Visit
from fleet.selectors import (
    unit_dispatch_blockers,
    unit_licence_problems,
    unit_qc_hold_reason,
    visit_check_crew,
)
from fleet.services import (
    licence_add,
    maintenance_window_add,
    unit_transition,
    visit_crew_assign,
    visit_start,
)
from tests.core.factories import UserFactory
from tests.fleet.factories import (
    CrewCredentialFactory,
    CrewMemberFactory,
    LicenceFactory,
    MaintenanceWindowFactory,
    UnitFactory,
    VisitFactory,
    license_unit,
)

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate


# --- licences --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "kinds"),
    [
        ("CT", {"institution", "vehicle_registration", "large_equipment", "radiation_safety"}),
        ("MR", {"institution", "vehicle_registration", "large_equipment"}),
        ("DX", {"institution", "vehicle_registration", "radiation_safety"}),
    ],
)
def test_required_licences_per_modality(modality, kinds):
    unit = UnitFactory(modality=modality)
    assert len(unit_licence_problems(unit)) == len(kinds)
    license_unit(unit)
    assert set(Licence.objects.filter(unit=unit).values_list("kind", flat=True)) == kinds
    assert unit_dispatch_blockers(unit) == []


def test_an_expired_licence_blocks_dispatch_naming_it_and_changes_nothing():
    unit = UnitFactory(modality="CT")
    dispatcher = UserFactory(organisation=unit.operator, roles=["dispatcher"])
    license_unit(unit)
    expired_on = TODAY() - datetime.timedelta(days=1)
    Licence.objects.filter(unit=unit, kind=LicenceKind.RADIATION_SAFETY).update(
        expires_on=expired_on, number="RS-77"
    )

    with pytest.raises(Conflict) as refused:
        unit_transition(unit=unit, to_status=UnitStatus.EN_ROUTE, actor=dispatcher)
    reason = f"Radiation safety licence RS-77: expired on {expired_on.isoformat()}"
    assert refused.value.message == f"Unit {unit.name} cannot be dispatched: {reason}"
    assert refused.value.extra == {"from": "available", "to": "en_route", "reasons": [reason]}
    assert Unit.objects.get(pk=unit.pk).status == UnitStatus.AVAILABLE
    assert UnitStatusChange.objects.count() == 0
    assert not AuditEntry.objects.filter(action="unit.transition").exists()

    # A renewal (a new row with a later expiry) makes it dispatchable; expiring today is still valid.
    licence_add(
        actor=dispatcher,
        unit=unit,
        kind=LicenceKind.RADIATION_SAFETY,
        number="RS-78",
        issuer="EPB",
        expires_on=TODAY(),
    )
    assert (
        unit_transition(unit=unit, to_status=UnitStatus.EN_ROUTE, actor=dispatcher).status
        == UnitStatus.EN_ROUTE
    )


def test_missing_licences_are_listed():
    unit = UnitFactory(modality="MR")
    LicenceFactory(unit=unit, kind=LicenceKind.INSTITUTION)
    assert unit_dispatch_blockers(unit) == [
        "Vehicle registration: missing",
        "Large-equipment configuration permit: missing",
    ]


def test_a_maintenance_window_blocks_dispatch_only_while_it_lasts():
    unit = UnitFactory(modality="DX")
    license_unit(unit)
    now = timezone.now()
    MaintenanceWindowFactory(
        unit=unit, starts_at=now + datetime.timedelta(hours=2), ends_at=now + datetime.timedelta(hours=5)
    )
    assert unit_dispatch_blockers(unit, at=now) == []
    blockers = unit_dispatch_blockers(unit, at=now + datetime.timedelta(hours=3))
    assert len(blockers) == 1 and blockers[0].startswith("in a maintenance window until ")
    assert unit_dispatch_blockers(unit, at=now + datetime.timedelta(hours=5)) == []


def test_maintenance_windows_must_not_overlap_and_need_a_reason():
    unit = UnitFactory()
    dispatcher = UserFactory(organisation=unit.operator, roles=["dispatcher"])
    now = timezone.now()
    maintenance_window_add(
        actor=dispatcher, unit=unit, starts_at=now, ends_at=now + datetime.timedelta(hours=4), reason="tube"
    )
    with pytest.raises(Conflict, match="already has a maintenance window"):
        maintenance_window_add(
            actor=dispatcher,
            unit=unit,
            starts_at=now + datetime.timedelta(hours=3),
            ends_at=now + datetime.timedelta(hours=6),
            reason="again",
        )
    with pytest.raises(InvalidInput, match="ends_at must be after starts_at"):
        maintenance_window_add(actor=dispatcher, unit=unit, starts_at=now, ends_at=now, reason="x")
    with pytest.raises(InvalidInput, match="reason is required"):
        maintenance_window_add(
            actor=dispatcher,
            unit=unit,
            starts_at=now + datetime.timedelta(days=1),
            ends_at=now + datetime.timedelta(days=2),
            reason=" ",
        )
    assert MaintenanceWindow.objects.count() == 1
    assert AuditEntry.objects.filter(action="maintenance_window.add").count() == 1


def test_register_writes_are_for_the_operators_dispatchers_and_admins():
    unit = UnitFactory()
    for user in (
        UserFactory(organisation=unit.operator, roles=["technologist"]),
        UserFactory(roles=["dispatcher"]),
    ):
        with pytest.raises(AccessDenied):
            licence_add(actor=user, unit=unit, kind="institution", number="X", issuer="Y", expires_on=TODAY())
    assert Licence.objects.count() == 0


# --- crew --------------------------------------------------------------------------------------------


def _visit(modality: str, *crew) -> Visit:
    unit = UnitFactory(modality=modality)
    visit = VisitFactory(unit=unit)
    for member in crew:
        member.operator = unit.operator
        member.save()
    visit.crew.set(crew)
    return visit


def test_a_ct_visit_needs_a_valid_radiographer_credential():
    driver = CrewMemberFactory(role=CrewRole.DRIVER, full_name="Wang Jun")
    radiographer = CrewMemberFactory(role=CrewRole.RADIOGRAPHER, full_name="Chen Li")
    visit = _visit("CT", driver, radiographer)
    assert visit_check_crew(visit) == [
        "CT visit needs a radiographer with a valid radiographer certificate on the crew"
    ]

    expired_on = visit.date - datetime.timedelta(days=3)
    CrewCredentialFactory(crew_member=radiographer, kind=CredentialKind.RADIOGRAPHER, expires_on=expired_on)
    problems = visit_check_crew(visit)
    assert problems == [
        "CT visit needs a radiographer with a valid radiographer certificate on the crew "
        f"(Chen Li's radiographer certificate expired on {expired_on.isoformat()})"
    ]
    with pytest.raises(Conflict, match="The visit cannot start: CT visit needs a radiographer"):
        visit_start(visit=visit)
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.PLANNED

    CrewCredentialFactory(crew_member=radiographer, kind=CredentialKind.RADIOGRAPHER, expires_on=visit.date)
    assert visit_check_crew(visit) == []
    started = visit_start(visit=visit, reason="geofence arrival")
    assert (started.status, started.arrived_at is not None) == (VisitStatus.ON_SITE, True)
    assert AuditEntry.objects.filter(action="visit.start", object_id=str(visit.pk)).count() == 1


def test_an_mri_visit_needs_a_technologist_with_mr_safety_training():
    driver = CrewMemberFactory(role=CrewRole.DRIVER, full_name="Liu Yang")
    CrewCredentialFactory(crew_member=driver, kind=CredentialKind.MR_SAFETY)
    radiographer_cert_only = CrewMemberFactory(role=CrewRole.TECHNOLOGIST, full_name="Huang Qing")
    CrewCredentialFactory(crew_member=radiographer_cert_only, kind=CredentialKind.RADIOGRAPHER)
    visit = _visit("MR", driver, radiographer_cert_only)
    assert visit_check_crew(visit) == [
        "MRI visit needs a technologist with a valid MR-safety training on the crew "
        "(Liu Yang holds it but is a driver)"
    ]
    CrewCredentialFactory(crew_member=radiographer_cert_only, kind=CredentialKind.MR_SAFETY)
    assert visit_check_crew(visit) == []


def test_a_visit_without_crew_says_so():
    assert visit_check_crew(_visit("DX")) == [
        "DR visit needs a radiographer with a valid radiographer certificate on the crew (no crew assigned)"
    ]


def test_the_dispatcher_assigns_crew_and_learns_what_is_missing():
    visit = _visit("DX")
    dispatcher = UserFactory(organisation=visit.unit.operator, roles=["dispatcher"])
    radiographer = CrewMemberFactory(operator=visit.unit.operator, role=CrewRole.RADIOGRAPHER)
    assert visit_crew_assign(actor=dispatcher, visit=visit, crew=[radiographer]) != []
    CrewCredentialFactory(crew_member=radiographer)
    assert visit_crew_assign(actor=dispatcher, visit=visit, crew=[radiographer]) == []
    assert list(visit.crew.all()) == [radiographer]
    stranger = CrewMemberFactory()  # another operator's
    with pytest.raises(InvalidInput, match="Not crew of"):
        visit_crew_assign(actor=dispatcher, visit=visit, crew=[stranger])
    assert list(visit.crew.all()) == [radiographer]
    assert AuditEntry.objects.filter(action="visit.crew_assign").count() == 2


# --- the demo ----------------------------------------------------------------------------------------


def test_demo_fleet_is_licensed_qc_passed_and_shows_one_lapsed_unit():
    call_command("demo")
    today = TODAY()
    lapsed = Unit.objects.get(name="DR Van 2")
    blockers = unit_dispatch_blockers(lapsed)
    assert len(blockers) == 1
    assert blockers[0].startswith("Radiation safety licence ")
    assert blockers[0].endswith(f": expired on {(today - datetime.timedelta(days=12)).isoformat()}")
    for unit in Unit.objects.exclude(pk=lapsed.pk):
        assert unit_dispatch_blockers(unit) == [], unit.name
    assert all(unit_qc_hold_reason(unit) is None for unit in Unit.objects.all())
    assert len(worklist_for_aet("CARAVAN_CT01", today)) == 3
    for visit_unit in ("CT Van 1", "MRI Van 1", "DR Van 1"):
        visit = VisitFactory(unit=Unit.objects.get(name=visit_unit))
        visit.crew.set(visit.unit.crew.all())
        assert visit_check_crew(visit) == [], visit_unit
