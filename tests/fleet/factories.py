import datetime

import factory
from django.utils import timezone

from core.choices import OrganisationKind
from fleet.choices import CredentialKind, CrewRole, EquipmentQCResult, LicenceKind
from fleet.equipment_qc import qc_tolerances
from fleet.models import CrewCredential, CrewMember, EquipmentQC, Licence, MaintenanceWindow, Unit, Visit
from fleet.selectors import REQUIRED_LICENCES
from tests.core.factories import OrganisationFactory


class OperatorFactory(OrganisationFactory):
    kind = OrganisationKind.OPERATOR
    name = factory.Sequence(lambda n: f"Operator {n}")


class UnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Unit

    operator = factory.SubFactory(OperatorFactory)
    name = factory.Sequence(lambda n: f"CT Van {n}")
    modality = "CT"
    ae_title = factory.Sequence(lambda n: f"VAN{n:02d}")
    capacity_per_day = 40
    depot_name = "Yichang depot"
    depot_latitude = 30.69
    depot_longitude = 111.29


class CrewMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CrewMember

    operator = factory.SubFactory(OperatorFactory)
    full_name = factory.Sequence(lambda n: f"Crew Member {n}")
    role = CrewRole.RADIOGRAPHER


class CrewCredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CrewCredential

    crew_member = factory.SubFactory(CrewMemberFactory)
    kind = CredentialKind.RADIOGRAPHER
    number = factory.Sequence(lambda n: f"CERT-{n:05d}")
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=365))


class LicenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Licence

    unit = factory.SubFactory(UnitFactory)
    kind = LicenceKind.INSTITUTION
    number = factory.Sequence(lambda n: f"LIC-{n:05d}")
    issuer = "Hubei Provincial Health Commission"
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=365))


class MaintenanceWindowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MaintenanceWindow

    unit = factory.SubFactory(UnitFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(hours=1))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + datetime.timedelta(hours=8))
    reason = "gantry bearing service"


# Measurements comfortably inside the default tolerances, per modality.
PASSING_MEASUREMENTS = {
    "CT": {"hu_mean": 0.8, "noise_sd": 4.9, "uniformity_hu": 2.1},
    "MR": {"snr": 87.0, "piu_percent": 91.5},
    "DX": {"dead_pixels": 12, "uniformity_deviation_percent": 2.4},
}


class EquipmentQCFactory(factory.django.DjangoModelFactory):
    """A daily check stored as the service would store it (passing, today, unless told)."""

    class Meta:
        model = EquipmentQC

    unit = factory.SubFactory(UnitFactory)
    performed_at = factory.LazyFunction(timezone.now)
    day = factory.LazyAttribute(lambda o: timezone.localdate(o.performed_at))
    measurements = factory.LazyAttribute(lambda o: dict(PASSING_MEASUREMENTS[o.unit.modality]))
    tolerances = factory.LazyAttribute(lambda o: qc_tolerances(o.unit.modality))
    result = EquipmentQCResult.PASS
    failures = factory.LazyFunction(list)


class VisitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visit

    unit = factory.SubFactory(UnitFactory)
    hospital = factory.SubFactory(OrganisationFactory)
    date = factory.LazyFunction(timezone.localdate)


def license_unit(unit: Unit, *, expires_on: datetime.date | None = None) -> list[Licence]:
    """Every licence the unit's modality requires, valid for a year (or until ``expires_on``)."""
    expires_on = expires_on or timezone.localdate() + datetime.timedelta(days=365)
    return [
        LicenceFactory(unit=unit, kind=kind, expires_on=expires_on)
        for kind in REQUIRED_LICENCES[unit.modality]
    ]


def crew_unit(unit: Unit, *, expires_on: datetime.date | None = None) -> CrewMember:
    """A crew member assigned to the unit, qualified for its modality (the planner's crew rule)
    until ``expires_on`` (a year by default)."""
    expires_on = expires_on or timezone.localdate() + datetime.timedelta(days=365)
    if unit.modality == "MR":
        role, kind = CrewRole.TECHNOLOGIST, CredentialKind.MR_SAFETY
    else:
        role, kind = CrewRole.RADIOGRAPHER, CredentialKind.RADIOGRAPHER
    member = CrewMemberFactory(operator=unit.operator, unit=unit, role=role)
    CrewCredentialFactory(crew_member=member, kind=kind, expires_on=expires_on)
    return member


def ready_unit(unit: Unit, *, expires_on: datetime.date | None = None) -> Unit:
    """Licensed and crewed: a unit the planner may use every day until ``expires_on``."""
    license_unit(unit, expires_on=expires_on)
    crew_unit(unit, expires_on=expires_on)
    return unit


def qc_pass_today(unit: Unit) -> EquipmentQC:
    """A passing daily phantom check for the unit today: lifts the QC hold (MWL, order start)."""
    return EquipmentQCFactory(unit=unit)
