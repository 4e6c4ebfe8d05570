"""Service requests: filing (validation), the state machine, and scheduling with exam orders."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry
from fleet.models import ServiceRequest
from fleet.services.request_schedule import service_request_schedule
from fleet.services.requests import (
    service_request_cancel,
    service_request_create,
    service_request_decline,
    service_request_transition,
)
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, VisitFactory
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory, exam, served_hospital

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
DAY = datetime.timedelta(days=1)


@pytest.fixture
def site():
    operator, hospital, unit, user, dispatcher = served_hospital()
    return {"operator": operator, "hospital": hospital, "unit": unit, "user": user, "dispatcher": dispatcher}


def _file(site, **overrides):
    values = {
        "actor": site["user"],
        "hospital": site["hospital"],
        "modality": "CT",
        "patients": 3,
        "earliest_date": TODAY + DAY,
        "latest_date": TODAY + 10 * DAY,
        "priority": "urgent",
        "notes": "  stroke follow-ups ",
        "exams": [],
    }
    values.update(overrides)
    return service_request_create(**values)


def _audits(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


# --- filing ----------------------------------------------------------------------------------------


def test_hospital_user_files_a_request_for_the_contracted_operator(site):
    filed = _file(site, exams=[exam(1), exam(2, body_part="CHEST", sex="M")])
    stored = ServiceRequest.objects.get()
    assert stored.pk == filed.pk
    assert (stored.hospital, stored.operator, stored.status, stored.created_by) == (
        site["hospital"],
        site["operator"],
        "submitted",
        site["user"],
    )
    assert (stored.patients, stored.priority, stored.notes, stored.visit) == (
        3,
        "urgent",
        "stroke follow-ups",
        None,
    )
    assert stored.exams[1] == {
        "procedure": "CT HEAD W/O CONTRAST",
        "body_part": "CHEST",
        "patient_id": "P00002",
        "patient_name": "WANG^PATIENT2",
        "sex": "M",
        "birth_date": "1958-07-02",
    }
    [entry] = _audits("service_request.create")
    assert (entry.object_id, entry.patient_data, entry.details_data["exams"]) == (str(filed.pk), True, 2)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"earliest_date": TODAY - DAY}, "earliest_date"),
        ({"earliest_date": TODAY + 5 * DAY, "latest_date": TODAY + 4 * DAY}, "latest_date"),
        ({"latest_date": TODAY + 61 * DAY}, "latest_date"),
        ({"patients": 0}, "patients"),
        ({"patients": 201}, "patients"),
        ({"modality": "XX"}, "modality"),
        ({"modality": "MR"}, "modality"),  # no MR contract
        ({"priority": "whenever"}, "priority"),
        ({"patients": 1, "exams": [exam(1), exam(2)]}, "exams"),
        ({"exams": [{k: v for k, v in exam(1).items() if k != "sex"}]}, "exams[0].sex"),
        ({"exams": [exam(1), exam(2, body_part="ELBOWS")]}, "exams[1].body_part"),
        ({"exams": [exam(1, birth_date="02/07/1958")]}, "exams[0].birth_date"),
        ({"exams": [exam(1, birth_date=(TODAY + DAY).isoformat())]}, "exams[0].birth_date"),
        ({"exams": [exam(1, patient_name="王^小明")]}, "exams[0].patient_name"),
        ({"exams": [exam(1, procedure="CT\\HEAD")]}, "exams[0].procedure"),
        ({"exams": [exam(1, ward="3B")]}, "exams[0].ward"),
        ({"exams": "P1, P2"}, "exams"),
    ],
)
def test_invalid_request_names_the_field_and_stores_nothing(site, overrides, field):
    with pytest.raises(InvalidInput) as refused:
        _file(site, **overrides)
    assert refused.value.extra["field"] == field
    assert refused.value.message.startswith(f"{field}: ")
    assert ServiceRequest.objects.count() == 0
    assert _audits("service_request.create") == []


def test_operator_must_run_the_modality(site):
    # A contract for MR, but the operator has no MR van.
    ServiceContractFactory(operator=site["operator"], hospital=site["hospital"], modality="MR")
    with pytest.raises(InvalidInput, match=r"^modality: .* runs no MR unit") as refused:
        _file(site, modality="MR")
    assert refused.value.extra["field"] == "modality"
    assert ServiceRequest.objects.count() == 0


def test_two_contracted_operators_the_hospital_chooses(site):
    second = OperatorFactory()
    UnitFactory(operator=second, modality="CT")
    ServiceContractFactory(operator=second, hospital=site["hospital"], modality="CT")
    with pytest.raises(InvalidInput) as refused:
        _file(site)
    assert refused.value.extra["field"] == "operator"
    stranger = OperatorFactory()
    with pytest.raises(InvalidInput, match="^operator: .* has no active CT contract"):
        _file(site, operator=stranger)
    assert ServiceRequest.objects.count() == 0
    assert _file(site, operator=second).operator == second


@pytest.mark.parametrize("who", ["other_hospital", "dispatcher", "inactive"])
def test_only_the_hospitals_users_file_for_it(site, who):
    if who == "other_hospital":
        actor = UserFactory(organisation=HospitalFactory(), roles=[Role.HOSPITAL_USER])
    elif who == "dispatcher":
        actor = site["dispatcher"]
    else:
        actor = site["user"]
        actor.is_active = False
        actor.save()
    with pytest.raises(AccessDenied):
        _file(site, actor=actor)
    assert ServiceRequest.objects.count() == 0


# --- state machine ---------------------------------------------------------------------------------


def _stored(site, **kwargs):
    return ServiceRequestFactory(
        hospital=site["hospital"], operator=site["operator"], created_by=site["user"], **kwargs
    )


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ("submitted", "fulfilled"),
        ("planned", "fulfilled"),
        ("scheduled", "planned"),
        ("scheduled", "submitted"),
        ("fulfilled", "declined"),
        ("fulfilled", "planned"),
        ("declined", "submitted"),
        ("declined", "planned"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(site, start, to):
    stored = _stored(site, status=start)
    with pytest.raises(Conflict) as refused:
        service_request_transition(service_request=stored, to_status=to, actor=site["dispatcher"], reason="x")
    assert refused.value.code == "service_request_transition_refused"
    stored.refresh_from_db()
    assert (stored.status, stored.status_changed_at, stored.decline_reason) == (start, None, "")
    assert AuditEntry.objects.filter(action__startswith="service_request.").count() == 0


def test_legal_transitions_are_audited(site):
    visit = VisitFactory(unit=site["unit"], hospital=site["hospital"], date=TODAY + 2 * DAY)
    stored = _stored(site)
    service_request_transition(service_request=stored, to_status="planned", actor=None)
    service_request_schedule(service_request=stored, visit=visit, actor=site["dispatcher"])
    done = service_request_transition(service_request=stored, to_status="fulfilled", actor=site["dispatcher"])
    assert (done.status, done.visit) == ("fulfilled", visit)
    entries = AuditEntry.objects.filter(object_id=str(stored.pk), action__startswith="service_request.")
    assert [
        (e.action, e.details_data["from"], e.details_data["to"], e.actor_id) for e in entries.order_by("id")
    ] == [
        ("service_request.planned", "submitted", "planned", None),
        ("service_request.schedule", "planned", "scheduled", site["dispatcher"].pk),
        ("service_request.fulfilled", "scheduled", "fulfilled", site["dispatcher"].pk),
    ]


def test_a_stale_copy_cannot_undo_a_decline(site):
    stored = _stored(site)
    stale = ServiceRequest.objects.get(pk=stored.pk)
    service_request_decline(service_request=stored, actor=site["dispatcher"], reason="no CT capacity in May")
    with pytest.raises(Conflict):
        service_request_transition(service_request=stale, to_status="planned", actor=site["dispatcher"])
    stored.refresh_from_db()
    assert (stored.status, stored.decline_reason) == ("declined", "no CT capacity in May")


def test_decline_needs_a_reason_and_dispatch_staff(site):
    stored = _stored(site)
    with pytest.raises(InvalidInput) as refused:
        service_request_decline(service_request=stored, actor=site["dispatcher"], reason="  ")
    assert refused.value.extra["field"] == "reason"
    for actor in (site["user"], UserFactory(organisation=OperatorFactory(), roles=[Role.DISPATCHER])):
        with pytest.raises(AccessDenied):
            service_request_decline(service_request=stored, actor=actor, reason="full")
    technologist = UserFactory(organisation=site["operator"], roles=[Role.TECHNOLOGIST])
    with pytest.raises(AccessDenied):
        service_request_decline(service_request=stored, actor=technologist, reason="full")
    stored.refresh_from_db()
    assert stored.status == "submitted"


@pytest.mark.parametrize("start", ["submitted", "planned"])
def test_hospital_cancels_while_not_yet_scheduled(site, start):
    stored = _stored(site, status=start)
    done = service_request_cancel(service_request=stored, actor=site["user"], reason="patients transferred")
    assert (done.status, done.decline_reason) == ("declined", "cancelled by hospital: patients transferred")
    [entry] = _audits("service_request.cancel")
    assert entry.details_data["from"] == start


@pytest.mark.parametrize("start", ["fulfilled", "declined"])
def test_hospital_cannot_cancel_once_closed(site, start):
    stored = _stored(site, status=start)
    with pytest.raises(
        Conflict, match=f"is {start}; only submitted or planned or scheduled requests allow this"
    ):
        service_request_cancel(service_request=stored, actor=site["user"])
    stored.refresh_from_db()
    assert (stored.status, stored.decline_reason) == (start, "")


def test_hospital_cannot_cancel_once_the_van_has_left(site):
    stored = _stored(site, status="scheduled")
    stored.visit = VisitFactory(hospital=stored.hospital, status="en_route")
    stored.save()
    with pytest.raises(Conflict, match="is en route; it can no longer be cancelled"):
        service_request_cancel(service_request=stored, actor=site["user"])
    stored.refresh_from_db()
    assert (stored.status, stored.decline_reason) == ("scheduled", "")


def test_only_the_hospital_cancels(site):
    stored = _stored(site)
    other = UserFactory(organisation=HospitalFactory(), roles=[Role.HOSPITAL_USER])
    for actor in (other, site["dispatcher"]):
        with pytest.raises(AccessDenied):
            service_request_cancel(service_request=stored, actor=actor)
    stored.refresh_from_db()
    assert stored.status == "submitted"


def test_a_concurrent_change_between_read_and_swap_is_refused(site, monkeypatch):
    stored = _stored(site)
    real_now = timezone.now

    def now_after_a_concurrent_decline():
        # Runs between the service's status read and its compare-and-swap.
        ServiceRequest.objects.filter(pk=stored.pk).update(
            status="declined", decline_reason="by someone else"
        )
        return real_now()

    monkeypatch.setattr(timezone, "now", now_after_a_concurrent_decline)
    with pytest.raises(Conflict) as refused:
        service_request_transition(service_request=stored, to_status="planned", actor=site["dispatcher"])
    monkeypatch.undo()
    assert refused.value.code == "service_request_changed_concurrently"
    # The simulated writer shares the service's transaction, so its write is undone with the
    # refusal (a real one would have committed); either way the request was not planned.
    stored.refresh_from_db()
    assert (stored.status, stored.status_changed_at) == ("submitted", None)
    assert AuditEntry.objects.filter(action__startswith="service_request.").count() == 0
