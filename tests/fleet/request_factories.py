"""Factories of service contracts and service requests, and a hospital served by a CT operator."""

import datetime

import factory
from django.utils import timezone

from core.choices import Role
from fleet.models import ServiceContract, ServiceRequest
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, license_unit


class ServiceContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceContract

    operator = factory.SubFactory(OperatorFactory)
    hospital = factory.SubFactory(HospitalFactory)
    modality = "CT"
    interval_days = 14
    starts_on = datetime.date(2026, 1, 1)


class ServiceRequestFactory(factory.django.DjangoModelFactory):
    """A stored request as the service would store it (submitted, next week, no exams)."""

    class Meta:
        model = ServiceRequest

    hospital = factory.SubFactory(HospitalFactory)
    operator = factory.SubFactory(OperatorFactory)
    modality = "CT"
    patients = 12
    earliest_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=1))
    latest_date = factory.LazyAttribute(lambda o: o.earliest_date + datetime.timedelta(days=6))
    priority = "routine"
    created_by = factory.SubFactory(
        UserFactory, organisation=factory.SelfAttribute("..hospital"), roles=[Role.HOSPITAL_USER]
    )


def exam(n: int = 1, **overrides) -> dict:
    """One valid exam-list entry."""
    values = {
        "procedure": "CT HEAD W/O CONTRAST",
        "body_part": "HEAD",
        "patient_id": f"P{n:05d}",
        "patient_name": f"WANG^PATIENT{n}",
        "sex": "F",
        "birth_date": "1958-07-02",
    }
    values.update(overrides)
    return values


def served_hospital(modality: str = "CT"):
    """(operator, hospital, unit, hospital user, dispatcher): a contracted hospital and its operator."""
    operator = OperatorFactory()
    hospital = HospitalFactory()
    unit = UnitFactory(operator=operator, modality=modality)
    license_unit(unit)  # its exams can be booked on its visits
    ServiceContractFactory(operator=operator, hospital=hospital, modality=modality)
    user = UserFactory(organisation=hospital, roles=[Role.HOSPITAL_USER])
    dispatcher = UserFactory(organisation=operator, roles=[Role.DISPATCHER])
    return operator, hospital, unit, user, dispatcher
