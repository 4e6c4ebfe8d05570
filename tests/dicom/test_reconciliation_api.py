import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.choices import OrganisationKind
from core.models import AuditEntry
from dicom.choices import IngestStatus, OrderStatus
from dicom.models import Order, Study
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import OrderFactory, StudyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def qc_officer():
    return UserFactory(organisation=OrganisationFactory(kind=OrganisationKind.OPERATOR), roles=["qc_officer"])


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_queue_lists_unmatched_studies_oldest_first_and_audits(qc_officer):
    first, second = StudyFactory(accession_number="X1"), StudyFactory(accession_number="X2")
    StudyFactory(ingest_status=IngestStatus.MATCHED)
    body = _client(qc_officer).get("/api/dicom/reconciliation/").json()
    assert [row["id"] for row in body["results"]] == [first.pk, second.pk]
    entry = AuditEntry.objects.get(action="reconciliation.list")
    assert entry.patient_data is True and entry.actor_id == qc_officer.pk


@pytest.mark.parametrize("role", ["hospital_user", "radiologist", "technologist", "dispatcher"])
def test_queue_is_refused_to_other_roles(role):
    kind = {"hospital_user": "hospital", "radiologist": "reading_group"}.get(role, "operator")
    user = UserFactory(organisation=OrganisationFactory(kind=kind), roles=[role])
    StudyFactory()
    response = _client(user).get("/api/dicom/reconciliation/")
    assert response.status_code == 403
    assert AuditEntry.objects.count() == 0


def test_link_resolves_the_study(qc_officer, django_capture_on_commit_callbacks):
    study, order = StudyFactory(), OrderFactory()
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


def test_link_refusals_change_nothing(qc_officer):
    study, order = StudyFactory(), OrderFactory()
    other = StudyFactory(ingest_status=IngestStatus.MATCHED, order=OrderFactory())
    client = _client(qc_officer)
    cases = [
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": "abc"}, 400),
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": 999999}, 404),
        (f"/api/dicom/reconciliation/{other.pk}/link/", {"order": order.pk}, 404),  # not in the queue
        ("/api/dicom/reconciliation/999999/link/", {"order": order.pk}, 404),
        (f"/api/dicom/reconciliation/{study.pk}/link/", {"order": other.order_id}, 409),  # order taken
    ]
    for url, payload, status in cases:
        response = client.post(url, payload, format="json")
        assert response.status_code == status, (url, payload, response.json())
        assert response.json()["detail"]
    assert Study.objects.get(pk=study.pk).ingest_status == IngestStatus.UNMATCHED
    assert AuditEntry.objects.filter(action="study.link_order").count() == 0


def test_cancelled_order_cannot_be_linked(qc_officer):
    study, order = StudyFactory(), OrderFactory(status=OrderStatus.CANCELLED)
    response = _client(qc_officer).post(f"/api/dicom/reconciliation/{study.pk}/link/", {"order": order.pk})
    assert response.status_code == 400
    assert "cancelled" in response.json()["detail"]


# --- the QC officer's page ----------------------------------------------------------------


def test_page_lists_the_queue_with_candidate_orders_and_links(qc_officer, django_capture_on_commit_callbacks):
    order = OrderFactory()
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


def test_a_study_uid_conflict_is_listed_with_why_and_cannot_be_linked(qc_officer):
    held = StudyFactory(ingest_status=IngestStatus.MATCHED, study_instance_uid="1.2.3.4.5")
    conflict = StudyFactory(
        ingest_status=IngestStatus.UID_CONFLICT, study_instance_uid="1.2.3.4.5", uid_conflict_with=held
    )
    order = OrderFactory()
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
