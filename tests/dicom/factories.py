import datetime

import factory
from django.utils import timezone

from core.choices import OrganisationKind
from dicom.choices import IngestStatus
from dicom.models import Order, Study
from dicom.uids import new_uid
from tests.core.factories import OrganisationFactory, UserFactory
from tests.fleet.factories import UnitFactory


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
