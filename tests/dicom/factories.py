import datetime

import factory
from django.utils import timezone

from core.choices import OrganisationKind
from dicom.choices import IngestStatus
from dicom.models import Order, Study
from dicom.uids import new_uid
from fleet.models import ServiceContract, Unit, Visit
from fleet.selectors import REQUIRED_LICENCES
from tests.core.factories import OrganisationFactory, UserFactory
from tests.fleet.factories import UnitFactory, VisitFactory, license_unit


class HospitalFactory(OrganisationFactory):
    kind = OrganisationKind.HOSPITAL
    name = factory.Sequence(lambda n: f"County Hospital {n}")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    hospital = factory.SubFactory(HospitalFactory)
    unit = factory.SubFactory(UnitFactory)
    scheduled_date = factory.LazyFunction(lambda: timezone.localdate())
    accession_number = factory.Sequence(lambda n: f"CVTEST{n:06d}")
    study_instance_uid = factory.LazyFunction(new_uid)
    requested_procedure = "CT HEAD W/O CONTRAST"
    modality = "CT"
    body_part = "HEAD"
    priority = "ROUTINE"
    patient_id = factory.Sequence(lambda n: f"P{n:06d}")
    patient_name = "ZHANG^SAN"
    patient_sex = "M"
    patient_birth_date = datetime.date(1961, 3, 14)
    created_by = factory.SubFactory(UserFactory, organisation=factory.SelfAttribute("..hospital"))


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    orthanc_id = factory.Sequence(lambda n: f"{n:08x}-00000000-00000000-00000000-00000000")
    study_instance_uid = factory.LazyFunction(new_uid)
    ingest_status = IngestStatus.UNMATCHED
    # As ingest does: a study acquired for an order was made by the order's van, for its hospital.
    # (Without an order the unit and hospital are unknown unless given.)
    order = None
    unit = factory.LazyAttribute(lambda o: o.order.unit if o.order else None)
    hospital = factory.LazyAttribute(lambda o: o.order.hospital if o.order else None)


def bookable(unit: Unit, hospital, day: datetime.date | None = None, **visit_fields) -> Visit:
    """What booking an exam on ``unit`` for ``hospital`` on ``day`` (default today) needs: an active
    contract with the unit's operator for its modality, the unit's licences, and its visit to the
    hospital that day (returned; created unless one is there already)."""
    day = day or timezone.localdate()
    ServiceContract.objects.get_or_create(
        operator_id=unit.operator_id,
        hospital=hospital,
        modality=unit.modality,
        defaults={"interval_days": 14, "starts_on": day},
    )
    if not unit.licences.filter(kind__in=REQUIRED_LICENCES[unit.modality]).exists():
        license_unit(unit)
    visit = Visit.objects.filter(unit=unit, hospital=hospital, date=day).exclude(status="cancelled").first()
    return visit or VisitFactory(unit=unit, hospital=hospital, date=day, **visit_fields)
