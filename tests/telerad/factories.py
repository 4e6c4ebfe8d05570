"""Shared factories of the tele-reading domain: reading groups, pools, radiologists, tasks.

Defaults line up: factory hospitals are in region "HB-01", pools serve it for CT/MR/DX, and
radiologists are licensed for it, on shift, with every subspecialty. Override what a test is
about, e.g. ``RadiologistFactory(pools=[pool], subspecialties=["neuro"], on_shift=False)``.
"""

from datetime import timedelta

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from core.choices import OrganisationKind
from dicom.choices import IngestStatus, QCOutcome
from dicom.models import Study
from telerad.models import Radiologist, ReadingPool, ReadingTask
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import OrderFactory

ALL_SUBSPECIALTIES = ["neuro", "chest", "body", "msk"]
PRIORITY_RANK = {"STAT": 0, "URGENT": 1, "ROUTINE": 2}
SLA_MINUTES = {"STAT": 60, "URGENT": 240, "ROUTINE": 1440}


class ReadingGroupFactory(OrganisationFactory):
    kind = OrganisationKind.READING_GROUP
    name = factory.Sequence(lambda n: f"Reading Group {n}")
    region_code = "HB-WH"


class RadiologistUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"reader{n}")
    first_name = factory.Sequence(lambda n: f"Reader{n}")
    last_name = "Doctor"
    organisation = factory.SubFactory(ReadingGroupFactory)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in ["radiologist", *(extracted or [])]:
            group, _ = Group.objects.get_or_create(name=role)
            self.groups.add(group)
        self.save()


class ReadingPoolFactory(factory.django.DjangoModelFactory):
    """A pool serving region HB-01 for CT/MR/DX. ``hospitals=[...]``, ``readers=[...]`` add members."""

    class Meta:
        model = ReadingPool
        skip_postgeneration_save = True

    reading_group = factory.SubFactory(ReadingGroupFactory)
    name = factory.Sequence(lambda n: f"Reading pool {n}")
    regions = factory.LazyFunction(lambda: ["HB-01"])
    modalities = factory.LazyFunction(lambda: ["CT", "MR", "DX"])

    @factory.post_generation
    def hospitals(self, create, extracted, **kwargs):
        if create and extracted:
            self.hospitals.add(*extracted)

    @factory.post_generation
    def readers(self, create, extracted, **kwargs):
        if create and extracted:
            self.readers.add(*extracted)


class RadiologistFactory(factory.django.DjangoModelFactory):
    """A radiologist profile (and its user): licensed for HB-01, on shift, every subspecialty."""

    class Meta:
        model = Radiologist
        skip_postgeneration_save = True

    user = factory.SubFactory(RadiologistUserFactory)
    subspecialties = factory.LazyFunction(lambda: list(ALL_SUBSPECIALTIES))
    licensed_regions = factory.LazyFunction(lambda: ["HB-01"])
    on_shift = True
    max_concurrent = 3

    @factory.post_generation
    def pools(self, create, extracted, **kwargs):
        if create and extracted:
            self.pools.add(*extracted)


class RoutableStudyFactory(factory.django.DjangoModelFactory):
    """A study matched to its order, QC passed, routable now (as QC leaves it)."""

    class Meta:
        model = Study

    order = factory.SubFactory(OrderFactory)
    orthanc_id = factory.Sequence(lambda n: f"{n:08x}-11111111-00000000-00000000-00000000")
    study_instance_uid = factory.SelfAttribute("order.study_instance_uid")
    accession_number = factory.SelfAttribute("order.accession_number")
    patient_id = factory.SelfAttribute("order.patient_id")
    modalities = factory.SelfAttribute("order.modality")
    body_part = factory.SelfAttribute("order.body_part")
    hospital = factory.SelfAttribute("order.hospital")
    unit = factory.SelfAttribute("order.unit")
    ingest_status = IngestStatus.MATCHED
    qc_outcome = QCOutcome.PASS
    number_of_series = 1
    number_of_instances = 10
    routable_at = factory.LazyFunction(timezone.now)


class ReadingTaskFactory(factory.django.DjangoModelFactory):
    """A task as routing leaves it (unclaimed). ``eligible=[...]`` sets the eligible readers.

    Pass ``study__order__hospital=h`` to share a hospital, ``priority="STAT"`` etc.
    """

    class Meta:
        model = ReadingTask
        skip_postgeneration_save = True

    class Params:
        sla_minutes = factory.LazyAttribute(lambda o: SLA_MINUTES[o.priority])

    pool = factory.SubFactory(ReadingPoolFactory)
    study = factory.SubFactory(RoutableStudyFactory, order__priority=factory.SelfAttribute("...priority"))
    hospital = factory.SelfAttribute("study.hospital")
    modality = factory.SelfAttribute("study.order.modality")
    body_part = factory.SelfAttribute("study.order.body_part")
    subspecialty = "neuro"
    priority = "ROUTINE"
    priority_rank = factory.LazyAttribute(lambda o: PRIORITY_RANK[o.priority])
    routed_at = factory.LazyFunction(timezone.now)
    deadline = factory.LazyAttribute(lambda o: o.routed_at + timedelta(minutes=o.sla_minutes))

    @factory.post_generation
    def eligible(self, create, extracted, **kwargs):
        if create and extracted:
            self.eligible.add(*extracted)
