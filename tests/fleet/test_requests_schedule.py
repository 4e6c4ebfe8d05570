"""Scheduling a service request on a visit books its exam list as orders, all or nothing."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from core.exceptions import Conflict, InvalidInput
from core.models import AuditEntry
from dicom.models import Order
from dicom.services.orders import order_create
from fleet.models import ServiceRequest, Visit
from fleet.services import request_schedule as request_services
from fleet.services.request_schedule import service_request_schedule
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import UnitFactory, VisitFactory
from tests.fleet.request_factories import ServiceRequestFactory, exam, served_hospital

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
DAY = datetime.timedelta(days=1)


@pytest.fixture
def setup():
    operator, hospital, unit, user, dispatcher = served_hospital()
    service_request = ServiceRequestFactory(
        hospital=hospital,
        operator=operator,
        created_by=user,
        patients=5,
        priority="emergency",
        earliest_date=TODAY + DAY,
        latest_date=TODAY + 5 * DAY,
        exams=[exam(1), exam(2, body_part="CHEST", sex="M", patient_name="LI^SI"), exam(3)],
    )
    visit = VisitFactory(unit=unit, hospital=hospital, date=TODAY + 3 * DAY, exams_booked=4)
    return service_request, visit, dispatcher, user


def _unchanged(service_request: ServiceRequest, visit: Visit) -> None:
    service_request.refresh_from_db()
    visit.refresh_from_db()
    assert (service_request.status, service_request.visit_id) == ("submitted", None)
    assert visit.exams_booked == 4
    assert Order.objects.count() == 0
    assert AuditEntry.objects.filter(action__in=["service_request.schedule", "order.create"]).count() == 0


def test_schedule_books_one_order_per_exam(setup):
    service_request, visit, dispatcher, user = setup
    done = service_request_schedule(service_request=service_request, visit=visit, actor=dispatcher)
    assert (done.status, done.visit) == ("scheduled", visit)
    orders = list(Order.objects.order_by("client_request_id"))
    assert len(orders) == 3
    assert [
        (o.client_request_id, o.patient_id, o.patient_name, o.patient_sex, o.body_part) for o in orders
    ] == [
        (f"SR{done.pk}-1", "P00001", "WANG^PATIENT1", "F", "HEAD"),
        (f"SR{done.pk}-2", "P00002", "LI^SI", "M", "CHEST"),
        (f"SR{done.pk}-3", "P00003", "WANG^PATIENT3", "F", "HEAD"),
    ]
    for order in orders:
        assert (order.hospital_id, order.unit_id, order.scheduled_date) == (
            service_request.hospital_id,
            visit.unit_id,
            visit.date,
        )
        assert (order.modality, order.priority, order.status, order.created_by) == (
            "CT",
            "STAT",
            "scheduled",
            user,
        )
        assert order.requested_procedure == "CT HEAD W/O CONTRAST"
        assert order.patient_birth_date == datetime.date(1958, 7, 2)
        assert order.notes == f"Service request {done.pk}"
    visit.refresh_from_db()
    assert visit.exams_booked == 7
    assert AuditEntry.objects.filter(action="order.create").count() == 3
    [entry] = AuditEntry.objects.filter(action="service_request.schedule")
    assert entry.details_data == {"from": "submitted", "to": "scheduled", "visit": visit.pk, "exams": 3}


def test_a_refused_order_rolls_back_the_whole_schedule(setup, monkeypatch):
    service_request, visit, dispatcher, _ = setup
    calls = []

    def second_fails(**kwargs):
        calls.append(kwargs["patient_id"])
        if len(calls) == 2:
            raise InvalidInput("patient_id is taken", code="invalid_patient_id")
        return order_create(**kwargs)

    monkeypatch.setattr(request_services, "order_create", second_fails)
    with pytest.raises(Conflict, match=r"^exams\[1\] could not be booked: patient_id is taken") as refused:
        service_request_schedule(service_request=service_request, visit=visit, actor=dispatcher)
    assert refused.value.extra == {"field": "exams[1]", "reason": "invalid_patient_id"}
    assert calls == ["P00001", "P00002"]
    _unchanged(service_request, visit)


def test_booker_gone_refuses_the_schedule(setup):
    service_request, visit, dispatcher, user = setup
    user.is_active = False
    user.save()
    with pytest.raises(Conflict, match=r"^exams\[0\] could not be booked"):
        service_request_schedule(service_request=service_request, visit=visit, actor=dispatcher)
    _unchanged(service_request, visit)


@pytest.mark.parametrize("mismatch", ["hospital", "modality", "before", "after", "cancelled"])
def test_the_visit_must_fit_the_request(setup, mismatch):
    service_request, visit, dispatcher, _ = setup
    if mismatch == "hospital":
        visit.hospital = HospitalFactory()
    elif mismatch == "modality":
        visit.unit = UnitFactory(operator=service_request.operator, modality="MR")
    elif mismatch == "before":
        visit.date = service_request.earliest_date - DAY
    elif mismatch == "after":
        visit.date = service_request.latest_date + DAY
    else:
        visit.status = "cancelled"
    visit.save()
    with pytest.raises(InvalidInput) as refused:
        service_request_schedule(service_request=service_request, visit=visit, actor=dispatcher)
    assert refused.value.extra["field"] == "visit"
    assert len(refused.value.extra["reasons"]) == 1
    _unchanged(service_request, visit)


def test_a_request_without_exams_schedules_without_orders(setup):
    service_request, visit, dispatcher, _ = setup
    ServiceRequest.objects.filter(pk=service_request.pk).update(exams=[])
    service_request.refresh_from_db()
    done = service_request_schedule(service_request=service_request, visit=visit, actor=dispatcher)
    assert done.status == "scheduled"
    assert Order.objects.count() == 0
    visit.refresh_from_db()
    assert visit.exams_booked == 4
