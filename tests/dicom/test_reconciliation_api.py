import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from core.models import AuditEntry
from dicom.choices import IngestStatus, OrderStatus
from dicom.models import Order, Study
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import OrderFactory, StudyFactory
from tests.fleet.factories import UnitFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit():
    """The van whose studies and orders the QC officer reconciles."""
    return UnitFactory()


@pytest.fixture
def qc_officer(unit):
    """A QC officer of the operator whose van ``unit`` is."""
    return UserFactory(organisation=unit.operator, roles=["qc_officer"])


@pytest.fixture
def other_operators_qc():
    """A QC officer of another operator: none of ``unit``'s studies or orders are theirs."""
    return UserFactory(organisation=OrganisationFactory(kind=OrganisationKind.OPERATOR), roles=["qc_officer"])


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_queue_lists_unmatched_studies_oldest_first_and_audits(qc_officer, unit, other_operators_qc):
    first = StudyFactory(accession_number="X1", unit=unit)
    second = StudyFactory(accession_number="X2", unit=UnitFactory(operator=unit.operator))
    StudyFactory(ingest_status=IngestStatus.MATCHED, unit=unit)
    StudyFactory(accession_number="X3", unit=UnitFactory())  # another operator's van
    body = _client(qc_officer).get("/api/dicom/reconciliation/").json()
    assert [row["id"] for row in body["results"]] == [first.pk, second.pk]
    entry = AuditEntry.objects.get(action="reconciliation.list")
    assert entry.patient_data is True and entry.actor_id == qc_officer.pk
    # Another operator's QC officer sees none of them (and an empty page is not audited).
    assert _client(other_operators_qc).get("/api/dicom/reconciliation/").json()["results"] == []
    assert AuditEntry.objects.filter(action="reconciliation.list").count() == 1


@pytest.mark.parametrize("role", ["hospital_user", "radiologist", "technologist", "dispatcher"])
def test_queue_is_refused_to_other_roles(role):
    kind = {"hospital_user": "hospital", "radiologist": "reading_group"}.get(role, "operator")
    user = UserFactory(organisation=OrganisationFactory(kind=kind), roles=[role])
    StudyFactory()
    response = _client(user).get("/api/dicom/reconciliation/")
    assert response.status_code == 403
    assert AuditEntry.objects.count() == 0


def test_link_resolves_the_study(qc_officer, unit, django_capture_on_commit_callbacks):
    study, order = StudyFactory(unit=unit), OrderFactory(unit=unit)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _client(qc_officer).post(
            f"/api/dicom/reconciliation/{study.pk}/link/", {"order": order.pk}
        )
    assert response.status_code == 200, response.json()
    study.refresh_from_db()
    assert (study.ingest_status, study.order_id, study.match_method, study.hospital_id) == (
        "matched",
        order.pk,
        "manual",
        order.hospital_id,
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.ACQUIRED
    assert len(callbacks) == 1  # QC runs again once the link is committed


def test_link_refusals_change_nothing(qc_officer, unit, other_operators_qc):
    study, order = StudyFactory(unit=unit), OrderFactory(unit=unit)
    other = StudyFactory(ingest_status=IngestStatus.MATCHED, order=OrderFactory(unit=unit))
    elsewhere = OrderFactory()  # on another operator's van
    client = _client(qc_officer)
    cases = [
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": "abc"}, 400),
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": 999999}, 404),
        (f"/api/dicom/reconciliation/{other.pk}/link/", {"order": order.pk}, 404),  # not in the queue
        ("/api/dicom/reconciliation/999999/link/", {"order": order.pk}, 404),
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": other.order_id}, 409),  # order taken
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": elsewhere.pk}, 404),  # not theirs
    ]
    for url, payload, status in cases:
        response = client.post(url, payload, format="json")
        assert response.status_code == status, (url, payload, response.json())
        assert response.json()["detail"]
    # Another operator's QC officer: the study is not in their queue, whichever order they name.
    for order_id in (order.pk, elsewhere.pk):
        response = _client(other_operators_qc).post(
            f"/api/dicom/reconciliation/{study.pk}/link/", {"order": order_id}, format="json"
        )
        assert response.status_code == 404
    assert Study.objects.get(pk=study.pk).ingest_status == IngestStatus.UNMATCHED
    assert Study.objects.get(pk=study.pk).order_id is None
    statuses = Order.objects.filter(pk__in=(order.pk, elsewhere.pk)).values_list("status", flat=True)
    assert list(statuses) == [OrderStatus.SCHEDULED] * 2
    assert AuditEntry.objects.filter(action="study.link_order").count() == 0


def test_cancelled_order_cannot_be_linked(qc_officer, unit):
    study, order = StudyFactory(unit=unit), OrderFactory(unit=unit, status=OrderStatus.CANCELLED)
    response = _client(qc_officer).post(f"/api/dicom/reconciliation/{study.pk}/link/", {"order": order.pk})
    assert response.status_code == 400
    assert "cancelled" in response.json()["detail"]


# --- the QC officer's page ----------------------------------------------------------------


def test_page_lists_the_queue_with_candidate_orders_and_links(
    qc_officer, unit, django_capture_on_commit_callbacks
):
    order = OrderFactory(unit=unit)
    study = StudyFactory(
        accession_number="WRONG01", study_date=order.scheduled_date, modalities="CT", unit=order.unit
    )
    OrderFactory(modality="MR", unit=order.unit)  # another modality: not offered
    client = Client()
    client.force_login(qc_officer)
    page = client.get("/workspace/quality/reconciliation/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "WRONG01" in html and f'value="{order.pk}"' in html
    assert html.count('<option value="') == 2  # the placeholder and the one candidate

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/workspace/quality/reconciliation/", {"study": study.pk, "order": order.pk})
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.order_id, study.match_method) == (order.pk, "manual")
    follow = client.get("/workspace/quality/reconciliation/").content.decode()
    assert "The queue is empty" in follow and f"linked to order {order.accession_number}" in follow


def test_page_is_for_qc_officers_only():
    tech = UserFactory(
        organisation=OrganisationFactory(kind=OrganisationKind.OPERATOR), roles=["technologist"]
    )
    client = Client()
    client.force_login(tech)
    assert client.get("/workspace/quality/reconciliation/").status_code == 403
    assert client.post("/workspace/quality/reconciliation/", {"study": 1, "order": 1}).status_code == 403


def test_a_study_uid_conflict_is_listed_with_why_and_cannot_be_linked(qc_officer, unit):
    held = StudyFactory(ingest_status=IngestStatus.MATCHED, study_instance_uid="1.2.3.4.5", unit=unit)
    conflict = StudyFactory(
        ingest_status=IngestStatus.UID_CONFLICT,
        study_instance_uid="1.2.3.4.5",
        uid_conflict_with=held,
        unit=unit,
    )
    order = OrderFactory(unit=unit)
    api = _client(qc_officer)
    [row] = api.get("/api/dicom/reconciliation/").json()["results"]
    assert (row["id"], row["ingest_status"], row["uid_conflict_with"]) == (
        conflict.pk,
        "uid_conflict",
        held.pk,
    )

    response = api.post(f"/api/dicom/reconciliation/{conflict.pk}/link/", {"order": order.pk}, format="json")
    assert response.status_code == 409
    assert f"reuses the Study Instance UID of study {held.pk}" in response.json()["detail"]
    assert Study.objects.get(pk=conflict.pk).order_id is None
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED

    client = Client()
    client.force_login(qc_officer)
    html = client.get("/workspace/quality/reconciliation/").content.decode()
    assert "data-uid-conflict" in html and f"as study {held.pk}" in html
    assert f'name="study" value="{conflict.pk}"' not in html  # no link form for it
