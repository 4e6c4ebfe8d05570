"""Orders: the booking service and its refusals, the state transitions, the API and the web page."""

from __future__ import annotations

import datetime
import re
import threading

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from core.exceptions import AccessDenied, Conflict, InvalidInput, Unavailable
from core.models import AuditEntry
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.services import orders as order_services
from dicom.services.order_moves import orders_attach_visit
from dicom.services.orders import order_cancel, order_create, order_mark_acquired, order_mark_in_progress
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory, bookable
from tests.fleet.factories import OperatorFactory, UnitFactory, VisitFactory

pytestmark = pytest.mark.django_db

ACCESSION_RE = re.compile(r"^CV[A-Z2-7]{10}$")
ORDERS_URL = "/api/dicom/orders/"
PAGE_URL = "/workspace/hospital/orders/"


def _today() -> datetime.date:
    return timezone.localdate()


@pytest.fixture
def hospital():
    return HospitalFactory()


@pytest.fixture
def booker(hospital):
    return UserFactory(organisation=hospital, roles=["hospital_user"])


@pytest.fixture
def ct_unit(hospital):
    """A contracted, licensed CT van visiting ``hospital`` today and tomorrow (the default day)."""
    unit = UnitFactory(modality="CT", ae_title="ORDCT01")
    for offset in (0, 1):
        bookable(unit, hospital, _today() + datetime.timedelta(days=offset))
    return unit


@pytest.fixture
def dispatcher(ct_unit):
    """A dispatcher of the operator whose van ``ct_unit`` is."""
    return UserFactory(organisation=ct_unit.operator, roles=["dispatcher"])


def _booking(**overrides):
    values = {
        "scheduled_date": _today() + datetime.timedelta(days=1),
        "requested_procedure": "CT HEAD W/O CONTRAST",
        "modality": "CT",
        "body_part": "HEAD",
        "priority": "ROUTINE",
        "patient_id": "HB-0042",
        "patient_name": "ZHANG^SAN",
        "patient_sex": "M",
        "patient_birth_date": datetime.date(1961, 3, 14),
    }
    values.update(overrides)
    return values


def _book(actor, hospital, unit, **overrides) -> Order:
    return order_create(actor=actor, hospital=hospital, unit=unit, **_booking(**overrides))


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _api_body(unit, **overrides):
    body = _booking(**overrides)
    body["unit"] = unit.pk
    for key in ("scheduled_date", "patient_birth_date"):
        if isinstance(body[key], datetime.date):
            body[key] = body[key].isoformat()
    return body


# --- booking -------------------------------------------------------------------------------------


def test_create_books_an_order_with_accession_and_uid_and_audits(booker, hospital, ct_unit):
    order = _book(booker, hospital, ct_unit, notes="  claustrophobic  ", client_request_id="req-1")

    order.refresh_from_db()
    assert ACCESSION_RE.match(order.accession_number)
    assert len(order.accession_number) <= 16
    assert order.study_instance_uid.startswith(settings.DICOM_UID_ROOT)
    assert len(order.study_instance_uid) <= 64
    assert (order.hospital, order.unit, order.created_by) == (hospital, ct_unit, booker)
    assert order.status == OrderStatus.SCHEDULED
    assert (order.patient_name, order.patient_id, order.notes) == ("ZHANG^SAN", "HB-0042", "claustrophobic")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_id) == (
        "order.create",
        "dicom.order",
        str(order.pk),
    )
    assert (entry.actor_id, entry.patient_data, entry.patient_id) == (booker.pk, True, "HB-0042")
    assert entry.details_data == {
        "body_part": "HEAD",
        "modality": "CT",
        "priority": "ROUTINE",
        "scheduled_date": order.scheduled_date.isoformat(),
        "unit": ct_unit.pk,
        "visit": order.visit_id,
    }
    assert "ZHANG" not in entry.details
    # Booked on the unit's visit to the hospital that day (found: the booking named none).
    visit = order.visit
    assert (visit.unit, visit.hospital, visit.date) == (ct_unit, hospital, order.scheduled_date)


def test_an_order_joins_the_units_visit_and_a_published_visit_picks_up_older_unlinked_orders(
    booker, hospital, ct_unit
):
    day = _today() + datetime.timedelta(days=2)
    # Orders from before the booking rules, booked with no visit: a visit published for their
    # unit, hospital and day still collects them (orders_attach_visit).
    early = OrderFactory(hospital=hospital, unit=ct_unit, scheduled_date=day, created_by=booker)
    cancelled = OrderFactory(
        hospital=hospital, unit=ct_unit, scheduled_date=day, created_by=booker, status=OrderStatus.CANCELLED
    )
    elsewhere = OrderFactory(unit=ct_unit, scheduled_date=day)
    other_day = OrderFactory(
        hospital=hospital, unit=ct_unit, scheduled_date=day + datetime.timedelta(days=1), created_by=booker
    )
    VisitFactory(unit=ct_unit, hospital=hospital, date=day, status="cancelled")  # never joined
    visit = bookable(ct_unit, hospital, day)

    assert orders_attach_visit(visit=visit) == 1
    late = _book(booker, hospital, ct_unit, patient_id="LATE", scheduled_date=day)

    assert Order.objects.get(pk=early.pk).visit == visit and late.visit == visit
    assert Order.objects.get(pk=cancelled.pk).visit is None
    assert Order.objects.get(pk=other_day.pk).visit is None
    assert Order.objects.get(pk=elsewhere.pk).visit is None
    assert AuditEntry.objects.filter(action="order.create").last().details_data["visit"] == visit.pk
    body = _api(booker).get(f"{ORDERS_URL}{late.pk}/").json()
    assert body["visit"] == visit.pk


def test_booking_onto_another_units_visit_is_refused(booker, hospital, ct_unit):
    visit = VisitFactory(unit=UnitFactory(modality="CT"), hospital=hospital, date=_today())
    with pytest.raises(InvalidInput, match=f"Visit {visit.pk} is by .*, not {ct_unit.name}") as caught:
        order_create(
            actor=booker, hospital=hospital, unit=ct_unit, visit=visit, **_booking(scheduled_date=_today())
        )
    assert caught.value.code == "visit_other_unit"
    assert not Order.objects.exists()


def test_accession_numbers_and_uids_are_unique(booker, hospital, ct_unit):
    orders = [_book(booker, hospital, ct_unit, patient_id=f"P{i}") for i in range(20)]
    assert len({o.accession_number for o in orders}) == 20
    assert len({o.study_instance_uid for o in orders}) == 20


def test_booking_today_is_allowed(booker, hospital, ct_unit):
    assert _book(booker, hospital, ct_unit, scheduled_date=_today()).scheduled_date == _today()


def test_same_client_request_id_returns_the_existing_order(booker, hospital, ct_unit):
    first = _book(booker, hospital, ct_unit, client_request_id="tablet-7:0001")
    again = _book(booker, hospital, ct_unit, client_request_id="tablet-7:0001")

    assert again.pk == first.pk
    assert Order.objects.count() == 1
    assert AuditEntry.objects.filter(action="order.create").count() == 1


def test_replay_is_honoured_even_once_the_date_has_passed(booker, hospital, ct_unit):
    first = _book(booker, hospital, ct_unit, client_request_id="k1")
    Order.objects.filter(pk=first.pk).update(scheduled_date=_today() - datetime.timedelta(days=3))
    again = _book(
        booker,
        hospital,
        ct_unit,
        client_request_id="k1",
        scheduled_date=_today() - datetime.timedelta(days=3),
    )
    assert again.pk == first.pk


def test_same_key_from_another_hospital_is_another_order(booker, hospital, ct_unit):
    other = HospitalFactory()
    bookable(ct_unit, other, _today() + datetime.timedelta(days=1))
    other_booker = UserFactory(organisation=other, roles=["hospital_user"])
    mine = _book(booker, hospital, ct_unit, client_request_id="shared")
    theirs = _book(other_booker, other, ct_unit, client_request_id="shared")
    assert mine.pk != theirs.pk
    assert Order.objects.count() == 2


def test_same_key_for_another_booking_is_refused(booker, hospital, ct_unit):
    _book(booker, hospital, ct_unit, client_request_id="k2")
    with pytest.raises(Conflict, match="differs in patient_id"):
        _book(booker, hospital, ct_unit, client_request_id="k2", patient_id="SOMEONE-ELSE")
    assert Order.objects.count() == 1
    assert AuditEntry.objects.count() == 1


def test_accession_collision_is_retried(booker, hospital, ct_unit, monkeypatch):
    taken = OrderFactory(accession_number="CVAAAAAAAAAA", hospital=hospital, created_by=booker)
    candidates = iter(["CVAAAAAAAAAA", "CVBBBBBBBBBB"])
    monkeypatch.setattr(order_services, "new_accession_number", lambda: next(candidates))

    order = _book(booker, hospital, ct_unit)

    assert order.accession_number == "CVBBBBBBBBBB"
    assert Order.objects.exclude(pk=taken.pk).get() == order


def test_accession_exhaustion_is_503_and_books_nothing(booker, hospital, ct_unit, monkeypatch):
    OrderFactory(accession_number="CVAAAAAAAAAA", hospital=hospital, created_by=booker)
    monkeypatch.setattr(order_services, "new_accession_number", lambda: "CVAAAAAAAAAA")
    with pytest.raises(Unavailable):
        _book(booker, hospital, ct_unit)
    assert Order.objects.count() == 1
    assert not AuditEntry.objects.exists()


def _long(n: int) -> str:
    return "A" * n


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"scheduled_date": "past"}, "scheduled_date_past"),
        ({"patient_birth_date": "future"}, "birth_date_future"),
        ({"modality": "MR"}, "modality_mismatch"),
        ({"modality": "US"}, "invalid_modality"),
        ({"body_part": "ELBOW"}, "invalid_body_part"),
        ({"priority": "WHENEVER"}, "invalid_priority"),
        ({"patient_sex": "X"}, "invalid_patient_sex"),
        ({"patient_name": ""}, "invalid_patient_name"),
        ({"patient_name": "   "}, "invalid_patient_name"),
        ({"patient_name": "ZHANG\\SAN"}, "invalid_patient_name"),
        ({"patient_name": _long(65)}, "invalid_patient_name"),
        ({"patient_name": _long(64) + "^B"}, "invalid_patient_name"),
        ({"patient_name": "ZHANG^SAN\x1b"}, "invalid_patient_name"),
        ({"patient_name": "ZHANG^SAN\tX"}, "invalid_patient_name"),
        ({"patient_name": "^SAN"}, "invalid_patient_name"),
        ({"patient_name": "A^B^C^D^E^F"}, "invalid_patient_name"),
        ({"patient_name": "A=B=C=D"}, "invalid_patient_name"),
        ({"patient_name": "张^三"}, "invalid_patient_name"),
        ({"patient_id": ""}, "invalid_patient_id"),
        ({"patient_id": "A\\B"}, "invalid_patient_id"),
        ({"patient_id": _long(65)}, "invalid_patient_id"),
        ({"requested_procedure": ""}, "invalid_requested_procedure"),
        ({"requested_procedure": _long(65)}, "invalid_requested_procedure"),
        ({"client_request_id": _long(65)}, "invalid_client_request_id"),
        ({"scheduled_date": datetime.datetime(2030, 1, 1, 8, 0)}, "invalid_scheduled_date"),
    ],
)
def test_invalid_bookings_are_refused_and_nothing_is_booked(booker, hospital, ct_unit, overrides, code):
    if overrides.get("scheduled_date") == "past":
        overrides["scheduled_date"] = _today() - datetime.timedelta(days=1)
    if overrides.get("patient_birth_date") == "future":
        overrides["patient_birth_date"] = _today() + datetime.timedelta(days=1)

    with pytest.raises(InvalidInput) as refused:
        _book(booker, hospital, ct_unit, **overrides)

    assert refused.value.code == code
    assert refused.value.status_code == 400
    assert refused.value.message
    assert Order.objects.count() == 0
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize(
    "name", ["ZHANG^SAN", "O'BRIEN^MARY ANN", "MÜLLER^JOSÉ", "DOE^JOHN^Q^DR^JR", "YAMADA^TARO=^=^", "A" * 64]
)
def test_valid_person_names(booker, hospital, ct_unit, name):
    assert _book(booker, hospital, ct_unit, patient_name=name).patient_name == name


@pytest.mark.parametrize(
    "who",
    ["other_hospital_user", "same_hospital_no_role", "dispatcher", "technologist", "superuser", "anonymous"],
)
def test_only_the_hospitals_own_users_book(hospital, ct_unit, who):
    from django.contrib.auth.models import AnonymousUser

    actor = {
        "other_hospital_user": lambda: UserFactory(organisation=HospitalFactory(), roles=["hospital_user"]),
        "same_hospital_no_role": lambda: UserFactory(organisation=hospital),
        "dispatcher": lambda: UserFactory(organisation=OperatorFactory(), roles=["dispatcher"]),
        "technologist": lambda: UserFactory(organisation=OperatorFactory(), roles=["technologist"]),
        "superuser": lambda: UserFactory(organisation=None, is_superuser=True),
        "anonymous": AnonymousUser,
    }[who]()
    with pytest.raises(AccessDenied) as refused:
        _book(actor, hospital, ct_unit)
    assert refused.value.status_code == 403
    assert Order.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_booking_for_a_non_hospital_organisation_is_refused(ct_unit):
    lab = OrganisationFactory(kind=OrganisationKind.READING_GROUP)
    user = UserFactory(organisation=lab, roles=["hospital_user"])
    with pytest.raises(InvalidInput, match="not a hospital"):
        _book(user, lab, ct_unit)
    assert Order.objects.count() == 0


def _race(n: int, work) -> tuple[list, list[BaseException]]:
    barrier = threading.Barrier(n)
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_retries_book_once_and_racing_cancels_cancel_once(booker, hospital, ct_unit):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL); CI runs it there")
    booked, errors = _race(8, lambda: _book(booker, hospital, ct_unit, client_request_id="race").pk)
    assert errors == []
    assert len(set(booked)) == 1 and len(booked) == 8
    assert Order.objects.count() == 1
    assert AuditEntry.objects.filter(action="order.create").count() == 1

    order = Order.objects.get()
    cancelled, refusals = _race(8, lambda: order_cancel(actor=booker, order=order, reason="race").pk)
    assert len(cancelled) == 1
    assert len(refusals) == 7 and all(isinstance(exc, Conflict) for exc in refusals)
    assert AuditEntry.objects.filter(action="order.cancel").count() == 1


# --- cancelling and system transitions ----------------------------------------------------------


def test_cancel_a_scheduled_order(booker, hospital, ct_unit):
    order = _book(booker, hospital, ct_unit)
    cancelled = order_cancel(actor=booker, order=order, reason="Patient transferred")

    assert cancelled.status == OrderStatus.CANCELLED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    entry = AuditEntry.objects.get(action="order.cancel")
    assert (entry.actor_id, entry.object_id, entry.patient_data, entry.patient_id) == (
        booker.pk,
        str(order.pk),
        True,
        order.patient_id,
    )
    assert entry.details_data == {"reason": "Patient transferred"}


@pytest.mark.parametrize("status", [OrderStatus.CANCELLED, OrderStatus.IN_PROGRESS, OrderStatus.ACQUIRED])
def test_only_scheduled_orders_can_be_cancelled(booker, hospital, ct_unit, status):
    order = _book(booker, hospital, ct_unit)
    Order.objects.filter(pk=order.pk).update(status=status)
    with pytest.raises(Conflict) as refused:
        order_cancel(actor=booker, order=order, reason="changed mind")
    assert refused.value.status_code == 409
    assert status.label.lower() in refused.value.message
    assert Order.objects.get(pk=order.pk).status == status
    assert not AuditEntry.objects.filter(action="order.cancel").exists()


def test_cancel_needs_a_reason(booker, hospital, ct_unit):
    order = _book(booker, hospital, ct_unit)
    for reason in ("", "   ", "x" * 501):
        with pytest.raises(InvalidInput):
            order_cancel(actor=booker, order=order, reason=reason)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED


def test_who_may_cancel(booker, hospital, ct_unit, dispatcher):
    order = _book(booker, hospital, ct_unit)
    outsiders = [
        UserFactory(organisation=HospitalFactory(), roles=["hospital_user"]),
        UserFactory(organisation=OperatorFactory(), roles=["technologist"]),
        UserFactory(organisation=OperatorFactory(), roles=["dispatcher"]),  # another operator's
        UserFactory(organisation=OperatorFactory(), roles=["admin"]),
    ]
    for outsider in outsiders:
        with pytest.raises(AccessDenied):
            order_cancel(actor=outsider, order=order, reason="no")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED
    order_cancel(actor=dispatcher, order=order, reason="Van withdrawn for repair")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED


def test_system_transitions_are_compare_and_swap_and_idempotent(booker, hospital, ct_unit):
    order = _book(booker, hospital, ct_unit)

    assert order_mark_in_progress(order=order).status == OrderStatus.IN_PROGRESS
    assert order_mark_in_progress(order=order).status == OrderStatus.IN_PROGRESS
    assert order_mark_acquired(order=order).status == OrderStatus.ACQUIRED
    assert order_mark_acquired(order=order).status == OrderStatus.ACQUIRED
    # A late "started" never moves an acquired order back.
    assert order_mark_in_progress(order=order).status == OrderStatus.ACQUIRED

    actions = list(AuditEntry.objects.filter(object_id=str(order.pk)).values_list("action", "actor_id"))
    assert actions == [("order.create", booker.pk), ("order.in_progress", None), ("order.acquired", None)]


def test_acquired_straight_from_scheduled(booker, hospital, ct_unit):
    order = _book(booker, hospital, ct_unit)
    assert order_mark_acquired(order=order).status == OrderStatus.ACQUIRED


def test_transitions_refuse_a_cancelled_order(booker, hospital, ct_unit):
    order = _book(booker, hospital, ct_unit)
    order_cancel(actor=booker, order=order, reason="duplicate")
    for transition in (order_mark_in_progress, order_mark_acquired):
        with pytest.raises(Conflict):
            transition(order=order)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert AuditEntry.objects.filter(action__in=["order.in_progress", "order.acquired"]).count() == 0


# --- API -----------------------------------------------------------------------------------------


def test_api_create(booker, ct_unit):
    response = _api(booker).post(ORDERS_URL, _api_body(ct_unit, client_request_id="api-1"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get()
    assert body["id"] == order.pk
    assert body["accession_number"] == order.accession_number
    assert body["study_instance_uid"] == order.study_instance_uid
    assert (body["status"], body["hospital"], body["unit_ae_title"]) == (
        "scheduled",
        booker.organisation_id,
        "ORDCT01",
    )
    assert body["created_by"] == booker.username


def test_api_create_replay_returns_the_same_order(booker, ct_unit):
    client = _api(booker)
    first = client.post(ORDERS_URL, _api_body(ct_unit, client_request_id="api-2"), format="json")
    second = client.post(ORDERS_URL, _api_body(ct_unit, client_request_id="api-2"), format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "status", "needle"),
    [
        ({"modality": "MR"}, 400, "cannot perform a MR exam"),
        ({"scheduled_date": "2001-01-01"}, 400, "in the past"),
        ({"patient_name": "A\\B"}, 400, "backslash"),
        ({"body_part": "ELBOW"}, 400, "Unknown body_part"),
        ({"unit": 999999}, 400, "unit"),
        ({"scheduled_date": "tomorrow"}, 400, "scheduled_date"),
    ],
)
def test_api_create_refusals_change_nothing(booker, ct_unit, overrides, status, needle):
    body = _api_body(ct_unit)
    body.update(overrides)
    response = _api(booker).post(ORDERS_URL, body, format="json")
    assert response.status_code == status
    assert needle in str(response.json())
    assert Order.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_api_create_for_another_hospital_is_403(booker, ct_unit):
    other = HospitalFactory()
    body = _api_body(ct_unit)
    body["hospital"] = other.pk
    response = _api(booker).post(ORDERS_URL, body, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert Order.objects.count() == 0


def test_api_create_by_a_dispatcher_is_403(dispatcher, ct_unit, hospital):
    body = _api_body(ct_unit)
    body["hospital"] = hospital.pk
    assert _api(dispatcher).post(ORDERS_URL, body, format="json").status_code == 403
    assert Order.objects.count() == 0


def test_api_requires_authentication(ct_unit):
    assert APIClient().get(ORDERS_URL).status_code in {401, 403}
    assert APIClient().post(ORDERS_URL, _api_body(ct_unit), format="json").status_code in {401, 403}


def test_api_list_is_scoped_and_audited(booker, hospital, ct_unit, dispatcher):
    mine = [OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker) for _ in range(2)]
    theirs = OrderFactory(unit=ct_unit)

    body = _api(booker).get(ORDERS_URL).json()
    assert sorted(row["id"] for row in body["results"]) == sorted(o.pk for o in mine)
    assert body["count"] == 2
    entry = AuditEntry.objects.get(action="order.list")
    assert (entry.actor_id, entry.patient_data) == (booker.pk, True)
    assert sorted(entry.details_data["orders"]) == sorted(o.pk for o in mine)

    # The van's operator's dispatcher: every hospital's orders on its vans, not another operator's.
    elsewhere = OrderFactory()
    every = _api(dispatcher).get(ORDERS_URL).json()
    assert sorted(row["id"] for row in every["results"]) == sorted([o.pk for o in mine] + [theirs.pk])
    rival = UserFactory(organisation=elsewhere.unit.operator, roles=["dispatcher"])
    assert [row["id"] for row in _api(rival).get(ORDERS_URL).json()["results"]] == [elsewhere.pk]


def test_api_list_filters(booker, hospital, ct_unit):
    tomorrow = _today() + datetime.timedelta(days=1)
    today_order = OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker, scheduled_date=_today())
    OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker, scheduled_date=tomorrow)
    cancelled = OrderFactory(
        hospital=hospital, unit=ct_unit, created_by=booker, scheduled_date=tomorrow, status="cancelled"
    )
    client = _api(booker)
    by_date = client.get(ORDERS_URL, {"date": _today().isoformat()}).json()
    assert [row["id"] for row in by_date["results"]] == [today_order.pk]
    by_status = client.get(ORDERS_URL, {"status": "cancelled"}).json()
    assert [row["id"] for row in by_status["results"]] == [cancelled.pk]
    assert client.get(ORDERS_URL, {"status": "lost"}).status_code == 400
    assert client.get(ORDERS_URL, {"date": "yesterday"}).status_code == 400


def test_api_list_query_count_does_not_depend_on_page_size(
    booker, hospital, ct_unit, django_assert_num_queries
):
    for _ in range(12):
        OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker)
    client = _api(booker)
    # Warm the user's role cache and the session machinery out of the measured requests.
    client.get(ORDERS_URL, {"page_size": 1})
    with CaptureQueriesContext(connection) as small:
        assert len(client.get(ORDERS_URL, {"page_size": 2}).json()["results"]) == 2
    # count; the page (hospital, unit and author joined); the audit entry: savepoint, (PostgreSQL:
    # chain lock), chain tail, insert, release.
    expected = 7 if connection.vendor == "postgresql" else 6
    assert len(small) == expected, [q["sql"] for q in small]
    with django_assert_num_queries(expected):
        assert len(client.get(ORDERS_URL, {"page_size": 12}).json()["results"]) == 12


def test_api_detail_is_scoped_and_audited(booker, hospital, ct_unit, dispatcher):
    mine = OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker, patient_id="PID-7")
    theirs = OrderFactory(unit=ct_unit)
    client = _api(booker)

    response = client.get(f"{ORDERS_URL}{mine.pk}/")
    assert response.status_code == 200
    assert response.json()["patient_id"] == "PID-7"
    entry = AuditEntry.objects.get(action="order.view")
    assert (entry.actor_id, entry.object_id, entry.patient_data, entry.patient_id) == (
        booker.pk,
        str(mine.pk),
        True,
        "PID-7",
    )

    hidden = client.get(f"{ORDERS_URL}{theirs.pk}/")
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "not_found"
    assert client.get(f"{ORDERS_URL}999999/").status_code == 404
    assert AuditEntry.objects.filter(action="order.view").count() == 1

    assert _api(dispatcher).get(f"{ORDERS_URL}{theirs.pk}/").status_code == 200
    rival = UserFactory(organisation=OperatorFactory(), roles=["dispatcher"])  # another operator's
    assert _api(rival).get(f"{ORDERS_URL}{theirs.pk}/").status_code == 404


def test_api_cancel(booker, hospital, ct_unit):
    order = OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker)
    client = _api(booker)
    url = f"{ORDERS_URL}{order.pk}/cancel/"

    assert client.post(url, {}, format="json").status_code == 400
    response = client.post(url, {"reason": "Patient admitted elsewhere"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"

    again = client.post(url, {"reason": "twice"}, format="json")
    assert again.status_code == 409
    assert "only scheduled orders" in again.json()["detail"]
    assert AuditEntry.objects.filter(action="order.cancel").count() == 1


def test_api_cancel_of_another_hospitals_order_is_404(booker, ct_unit):
    theirs = OrderFactory(unit=ct_unit)
    response = _api(booker).post(f"{ORDERS_URL}{theirs.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert Order.objects.get(pk=theirs.pk).status == OrderStatus.SCHEDULED
    assert AuditEntry.objects.count() == 0


def test_api_cancel_by_a_technologist_is_403(ct_unit):
    order = OrderFactory(unit=ct_unit)
    technologist = UserFactory(organisation=ct_unit.operator, roles=["technologist"])
    response = _api(technologist).post(f"{ORDERS_URL}{order.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 403
    # Another operator's dispatcher: the order is not theirs to see, let alone cancel.
    rival = UserFactory(organisation=OperatorFactory(), roles=["dispatcher"])
    response = _api(rival).post(f"{ORDERS_URL}{order.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED
    assert AuditEntry.objects.filter(action="order.cancel").count() == 0


# --- web page ------------------------------------------------------------------------------------


def _form(unit, **overrides):
    data = {
        "unit": unit.pk,
        "scheduled_date": (_today() + datetime.timedelta(days=1)).isoformat(),
        "modality": "CT",
        "body_part": "CHEST",
        "requested_procedure": "CT CHEST",
        "priority": "URGENT",
        "patient_id": "WEB-1",
        "family_name": "LI",
        "given_name": "SI",
        "patient_sex": "F",
        "patient_birth_date": "1980-05-06",
        "notes": "",
        "client_request_id": "form-key-1",
    }
    data.update(overrides)
    return data


def test_workspace_links_to_the_orders_page(client, booker):
    client.force_login(booker)
    assert f'href="{PAGE_URL}"' in client.get("/workspace/hospital/").content.decode()
    assert f'href="{PAGE_URL}"' in client.get("/").content.decode()


def test_page_lists_the_hospitals_orders_only(client, booker, hospital, ct_unit):
    mine = OrderFactory(hospital=hospital, unit=ct_unit, created_by=booker, accession_number="CVMINE000001")
    OrderFactory(unit=ct_unit, accession_number="CVTHEIRS0001")
    client.force_login(booker)

    response = client.get(PAGE_URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="order-booking"' in html
    assert 'data-order="CVMINE000001"' in html
    assert "CVTHEIRS0001" not in html
    assert AuditEntry.objects.get(action="order.list").details_data == {"orders": [mine.pk]}


def test_page_books_through_the_service(client, booker, ct_unit):
    client.force_login(booker)
    response = client.post(PAGE_URL, _form(ct_unit))

    assert response.status_code == 302
    order = Order.objects.get()
    assert (order.patient_name, order.priority, order.client_request_id) == ("LI^SI", "URGENT", "form-key-1")
    page = client.get(response["Location"]).content.decode()
    assert f"Booked {order.accession_number}" in page
    # A double submit of the same form books once.
    assert client.post(PAGE_URL, _form(ct_unit)).status_code == 302
    assert Order.objects.count() == 1


def test_page_shows_service_refusals_inline(client, booker, ct_unit):
    client.force_login(booker)
    past = (_today() - datetime.timedelta(days=1)).isoformat()
    response = client.post(PAGE_URL, _form(ct_unit, scheduled_date=past, modality="MR"))

    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-field-error="unit"' in html
    assert "cannot perform a MR exam" in html
    assert Order.objects.count() == 0


def test_page_htmx_errors_and_success(client, booker, ct_unit):
    client.force_login(booker)
    past = (_today() - datetime.timedelta(days=1)).isoformat()
    refused = client.post(PAGE_URL, _form(ct_unit, scheduled_date=past), headers={"HX-Request": "true"})
    html = refused.content.decode()
    assert refused.status_code == 200  # htmx swaps only 2xx bodies
    assert "<form" in html and "<html" not in html
    assert 'data-field-error="scheduled_date"' in html and "in the past" in html
    assert Order.objects.count() == 0

    booked = client.post(PAGE_URL, _form(ct_unit), headers={"HX-Request": "true"})
    assert booked.status_code == 200
    assert booked["HX-Redirect"] == PAGE_URL
    assert Order.objects.count() == 1


def test_page_form_errors_for_bad_name(client, booker, ct_unit):
    client.force_login(booker)
    response = client.post(PAGE_URL, _form(ct_unit, family_name="LI^X"))
    assert response.status_code == 400
    assert 'data-field-error="family_name"' in response.content.decode()
    assert Order.objects.count() == 0


@pytest.mark.parametrize("role", ["dispatcher", "technologist", "radiologist"])
def test_page_is_for_hospital_users(client, role):
    client.force_login(UserFactory(roles=[role]))
    assert client.get(PAGE_URL).status_code == 403


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_books_an_exam_with_errors_shown_inline(live_server, monkeypatch):
    import os
    from pathlib import Path

    from playwright.sync_api import expect, sync_playwright

    chromium = CHROMIUM
    if not os.path.exists(chromium):
        pytest.fail(f"{chromium} is missing: apt-get install -y chromium (make test does it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are deliberate.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    hospital = HospitalFactory(name="Zigui County Hospital")
    UserFactory(username="hana", organisation=hospital, roles=["hospital_user"])
    unit = UnitFactory(modality="CT", ae_title="BRWCT01", name="CT van Three Gorges")
    bookable(unit, hospital)
    screenshots = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{live_server.url}/login/")
            page.get_by_label("Username").fill("hana")
            page.get_by_label("Password").fill("pw-Caravan-123")
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{live_server.url}/workspace/hospital/")
            page.get_by_role("link", name="Book and track exams").click()
            expect(page).to_have_url(f"{live_server.url}{PAGE_URL}")

            page.select_option("#id_unit", str(unit.pk))
            page.fill("#id_scheduled_date", (_today() - datetime.timedelta(days=1)).isoformat())
            page.select_option("#id_body_part", "CHEST")
            page.fill("#id_requested_procedure", "CT CHEST")
            page.fill("#id_patient_id", "ZG-001")
            page.fill("#id_family_name", "HUANG")
            page.fill("#id_given_name", "MEI")
            page.select_option("#id_patient_sex", "F")
            page.fill("#id_patient_birth_date", "1975-09-01")
            page.get_by_role("button", name="Book exam").click()

            error = page.locator('[data-field-error="scheduled_date"]')
            expect(error).to_contain_text("in the past")
            expect(page).to_have_url(f"{live_server.url}{PAGE_URL}")  # swapped in place by htmx
            assert Order.objects.count() == 0
            page.screenshot(path=str(screenshots / "hospital-orders-error.png"), full_page=True)

            page.fill("#id_scheduled_date", _today().isoformat())
            page.get_by_role("button", name="Book exam").click()

            expect(page.locator(".message-success")).to_contain_text("Booked CV")
            order = Order.objects.get()
            expect(page.locator(f'[data-order="{order.accession_number}"]')).to_contain_text("HUANG^MEI")
            page.screenshot(path=str(screenshots / "hospital-orders-booked.png"), full_page=True)
        finally:
            browser.close()
