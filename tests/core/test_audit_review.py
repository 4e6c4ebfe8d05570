"""Audit trail review: search filters, who has seen a patient, the page and its access rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.test import Client

from core.choices import OrganisationKind, Role
from core.models import AuditEntry
from core.selectors_audit import audit_search, patient_viewers
from core.services import audit_record
from tests.core.audit_support import operator_user, record_at
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import StudyFactory
from tests.fleet.factories import UnitFactory

pytestmark = pytest.mark.django_db
PAGE = "/workspace/quality/audit/"


def _view(user, study, when: datetime, action: str = "study.view", **kw) -> AuditEntry:
    return record_at(
        when,
        actor=user,
        action=action,
        object_type="dicom.study",
        object_id=study.pk,
        patient_data=kw.pop("patient_data", True),
        patient_id=study.patient_id,
        source_ip="10.0.0.9",
        **kw,
    )


@pytest.fixture
def world():
    # Patients X and Y were scanned by the operator's van: its QC officers review these entries
    # (tenancy: tests/core/test_audit_tenancy.py).
    van = UnitFactory()
    px, py = (StudyFactory(unit=van, patient_id=patient) for patient in ("PX", "PY"))
    reader = UserFactory(username="dr.reader", roles=[Role.RADIOLOGIST])
    clerk = UserFactory(username="clerk", roles=[Role.HOSPITAL_USER])
    other = UserFactory(username="only.y", roles=[Role.RADIOLOGIST])
    listing = UserFactory(username="lister", roles=[Role.DISPATCHER])
    d1, d2, d3 = (datetime(2026, 11, day, 9, 0, tzinfo=UTC) for day in (2, 5, 9))
    _view(reader, px, d1)
    _view(reader, px, d3, action="report.view")
    _view(clerk, px, d2, action="report.pdf")
    _view(other, py, d2)  # only patient Y: not a viewer of X
    _view(listing, px, d2, action="order.move", patient_data=False)  # touched X, saw no data
    record_at(
        d2,
        actor=None,
        action="study.ingest",
        object_type="dicom.study",
        object_id="1.2.3",
        patient_data=True,
        patient_id="PX",
    )  # system work: nobody saw it
    return {
        "reader": reader,
        "clerk": clerk,
        "other": other,
        "listing": listing,
        "days": (d1, d2, d3),
        "operator": van.operator,
    }


def _reviewer(world, role: str, **kwargs):
    return UserFactory(organisation=world["operator"], roles=[role], **kwargs)


def test_patient_viewers_are_exactly_the_recorded_viewers(world, django_assert_num_queries):
    reader, clerk = world["reader"], world["clerk"]
    d1, d2, d3 = world["days"]
    with django_assert_num_queries(1):
        rows = list(patient_viewers("PX"))
    assert rows == [
        {
            "actor_id": reader.pk,
            "actor_username": "dr.reader",
            "role": Role.RADIOLOGIST,
            "first_access": d1,
            "last_access": d3,
            "accesses": 2,
        },
        {
            "actor_id": clerk.pk,
            "actor_username": "clerk",
            "role": Role.HOSPITAL_USER,
            "first_access": d2,
            "last_access": d2,
            "accesses": 1,
        },
    ]
    assert [r["actor_username"] for r in patient_viewers("PY")] == ["only.y"]
    assert list(patient_viewers("PZ")) == []


def test_patient_viewers_within_a_date_range(world):
    rows = list(patient_viewers("PX", start=date(2026, 11, 4), end=date(2026, 11, 5)))
    assert [(r["actor_username"], r["accesses"]) for r in rows] == [("clerk", 1)]
    d1, _, _ = world["days"]
    rows = list(patient_viewers("PX", start=d1, end=date(2026, 11, 2)))
    assert [(r["actor_username"], r["accesses"]) for r in rows] == [("dr.reader", 1)]


def test_search_filters(world):
    reader, listing = world["reader"], world["listing"]
    assert audit_search().count() == 6
    assert [e.action for e in audit_search(actor="dr.reader")] == [
        "report.view",
        "study.view",
    ]  # newest first
    assert audit_search(actor=reader.pk).count() == 2
    assert audit_search(actor=str(listing.pk)).get().action == "order.move"
    assert audit_search(actor="nobody").count() == 0
    assert audit_search(patient_id="PX").count() == 5
    assert audit_search(action="report.").count() == 2
    assert audit_search(action="report.p").get().actor_username == "clerk"
    assert audit_search(object_type="dicom.study", object_id="1.2.3").get().action == "study.ingest"
    assert audit_search(start=date(2026, 11, 5)).count() == 5
    assert audit_search(end=date(2026, 11, 5)).count() == 5
    assert audit_search(start=date(2026, 11, 3), end=date(2026, 11, 5)).count() == 4
    assert (
        audit_search(patient_id="PX", action="study.", start=date(2026, 11, 2), end=date(2026, 11, 2)).count()
        == 1
    )


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.HOSPITAL_USER])
def test_page_refuses_other_roles_and_records_nothing(role):
    client = _client(operator_user(role))
    before = AuditEntry.objects.count()
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE, {"export": "atna"}).status_code == 403
    assert client.get(PAGE, {"viewers_of": "PX"}).status_code == 403
    assert AuditEntry.objects.count() == before


def test_page_refuses_a_reading_group_qc_officer():
    qc = UserFactory(
        organisation=OrganisationFactory(kind=OrganisationKind.READING_GROUP), roles=[Role.QC_OFFICER]
    )
    assert _client(qc).get(PAGE).status_code == 403


def test_anonymous_is_sent_to_login():
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("role", [Role.QC_OFFICER, Role.ADMIN])
def test_page_searches_and_each_read_is_audited(world, role):
    reviewer = _reviewer(world, role, username=f"rev-{role}")
    client = _client(reviewer)
    response = client.get(PAGE, {"patient_id": "PX", "action": "report."})
    html = response.content.decode()
    assert response.status_code == 200
    assert "2 entries, newest first" in html
    assert html.count("<tr data-entry=") == 2
    review = AuditEntry.objects.order_by("-id").first()
    assert (review.action, review.actor_id, review.patient_id, review.patient_data) == (
        "audit.search",
        reviewer.pk,
        "PX",
        False,
    )
    assert review.details_data == {"filters": {"action": "report.", "patient_id": "PX"}}
    # The review entry is searchable, but the reviewer is not a viewer of the patient's data.
    assert reviewer.pk not in {row["actor_id"] for row in patient_viewers("PX")}


def test_viewers_panel(world):
    reviewer = _reviewer(world, Role.QC_OFFICER)
    client = _client(reviewer)
    count = AuditEntry.objects.count()
    html = client.get(PAGE, {"viewers_of": "PX"}).content.decode()
    assert 'data-viewer="dr.reader"' in html and 'data-viewer="clerk"' in html
    assert 'data-viewer="only.y"' not in html and 'data-viewer="lister"' not in html
    assert "2 users accessed data of patient PX" in html
    new = list(AuditEntry.objects.filter(id__gt=0).order_by("id")[count:].values_list("action", "patient_id"))
    assert new == [("audit.search", ""), ("audit.patient_viewers", "PX")]


def test_invalid_range_shows_an_error_and_searches_nothing(world):
    client = _client(_reviewer(world, Role.ADMIN))
    count = AuditEntry.objects.count()
    response = client.get(PAGE, {"start": "2026-11-09", "end": "2026-11-01"})
    assert response.status_code == 200
    assert "must not be after" in response.content.decode()
    assert AuditEntry.objects.count() == count


def test_pagination_newest_first():
    reviewer = operator_user(Role.QC_OFFICER)
    actor = UserFactory(organisation=reviewer.organisation)  # a colleague: their entries are in scope
    for i in range(55):
        audit_record(actor=actor, action="order.view", object_type="dicom.order", object_id=i)
    client = _client(reviewer)
    first = client.get(PAGE, {"action": "order."}).content.decode()
    assert first.count("<tr data-entry=") == 50 and "Page 1 of 2" in first
    second = client.get(PAGE, {"action": "order.", "page": 2}).content.decode()
    assert second.count("<tr data-entry=") == 5
    assert "dicom.order:0<" in second and "dicom.order:54<" in first


def test_latest_check_banner():
    from core.models import AuditCheck

    client = _client(operator_user(Role.QC_OFFICER))
    assert 'data-audit-check="none"' in client.get(PAGE).content.decode()
    AuditCheck.objects.create(ok=True, entries=10)
    assert 'data-audit-check="ok"' in client.get(PAGE).content.decode()
    AuditCheck.objects.create(
        ok=False, entries=3, first_broken_id=4, message="content does not match its hash"
    )
    html = client.get(PAGE).content.decode()
    assert 'data-audit-check="broken"' in html and "#4" in html and "content does not match" in html
