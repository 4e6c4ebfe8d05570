"""The hospital portal: own studies only, statuses, signed reports (HTML/PDF), critical acks, audit."""

from __future__ import annotations

import importlib.util
import re

import pytest
from django.utils import timezone

from core.choices import OrganisationKind
from core.models import AuditEntry
from dicom.choices import QCOutcome
from telerad.choices import CriticalStatus, ReportStatus, TaskStatus
from telerad.models import CriticalResult, Report
from telerad.services.critical import critical_result_open
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory
from tests.fleet.factories import OperatorFactory
from tests.telerad.test_critical import make_final_report, make_radiologist, make_study, make_task

pytestmark = pytest.mark.django_db

STUDIES_URL = "/workspace/hospital/studies/"
RENDERER = importlib.util.find_spec("telerad.reports_render") is not None


@pytest.fixture
def hospital():
    return HospitalFactory(name="Xingshan County Hospital")


@pytest.fixture
def other_hospital():
    return HospitalFactory(name="Zigui County Hospital")


@pytest.fixture
def hospital_user(hospital):
    return UserFactory(username="ward-nurse", organisation=hospital, roles=["hospital_user"])


@pytest.fixture
def radiologist():
    return make_radiologist()


@pytest.fixture
def studies(hospital, other_hospital, radiologist):
    """One study of ours in each state, and one of another hospital's (reported)."""
    ours = {
        "received": make_study(hospital, qc_outcome=QCOutcome.PENDING, patient_name="LI^RECEIVED"),
        "qc_failed": make_study(hospital, qc_outcome=QCOutcome.FAIL, patient_name="LI^QCFAIL"),
        "waiting": make_study(hospital, patient_name="LI^WAITING", routable_at=timezone.now()),
        "claimed": make_study(hospital, patient_name="LI^CLAIMED", routable_at=timezone.now()),
        "reported": make_study(
            hospital, patient_name="LI^REPORTED", patient_id="P-OURS", routable_at=timezone.now()
        ),
    }
    make_task(ours["waiting"])
    make_task(ours["claimed"], status=TaskStatus.CLAIMED, reader=radiologist)
    make_final_report(ours["reported"], radiologist)
    theirs = make_study(other_hospital, patient_name="CHEN^THEIRS", accession_number="THEIRS000001")
    make_final_report(theirs, radiologist)
    return ours, theirs


def _rows(response) -> dict[int, str]:
    html = response.content.decode()
    return {int(pk): status for pk, status in re.findall(r'data-study="(\d+)" data-status="([a-z_]+)"', html)}


def test_portal_lists_exactly_the_hospitals_studies_with_their_status(client, hospital_user, studies):
    ours, theirs = studies
    client.force_login(hospital_user)
    response = client.get(STUDIES_URL)
    assert response.status_code == 200
    assert _rows(response) == {
        ours["received"].pk: "received",
        ours["qc_failed"].pk: "qc_failed",
        ours["waiting"].pk: "waiting",
        ours["claimed"].pk: "claimed",
        ours["reported"].pk: "reported",
    }
    html = response.content.decode()
    assert "CHEN" not in html and "THEIRS000001" not in html
    assert "LI, Reported" in html  # the DICOM name as people write it
    # Only the reported study links to its report.
    assert re.findall(r'href="/workspace/hospital/studies/(\d+)/report/"', html) == [str(ours["reported"].pk)]
    assert f'href="/workspace/hospital/studies/{ours["reported"].pk}/report.pdf"' in html
    # Live refresh through the shared websocket script.
    assert "/static/js/reading-live.js" in html
    assert 'hx-trigger="reading-event from:body' in html


def test_a_page_view_is_audited_once_with_the_study_ids(client, hospital_user, studies):
    ours, theirs = studies
    client.force_login(hospital_user)
    before = AuditEntry.objects.count()
    client.get(STUDIES_URL)
    entries = list(AuditEntry.objects.filter(id__gt=0).order_by("id"))[before:]
    assert [e.action for e in entries] == ["portal.studies_view"]
    entry = entries[0]
    assert entry.actor_id == hospital_user.pk and entry.patient_data is True
    assert sorted(entry.details_data["studies"]) == sorted(s.pk for s in ours.values())
    assert theirs.pk not in entry.details_data["studies"]


def test_an_empty_portal_writes_no_audit_entry(client, hospital_user):
    client.force_login(hospital_user)
    response = client.get(STUDIES_URL)
    assert response.status_code == 200 and b"data-studies-empty" in response.content
    assert not AuditEntry.objects.filter(action="portal.studies_view").exists()


def test_htmx_refresh_returns_the_live_fragment(client, hospital_user, studies):
    client.force_login(hospital_user)
    response = client.get(STUDIES_URL, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content and b"data-studies-table" in response.content
    assert len(_rows(response)) == 5


@pytest.mark.parametrize("role", ["radiologist", "qc_officer", "dispatcher", "technologist", "admin"])
def test_other_roles_are_forbidden_on_every_portal_page(client, studies, role):
    ours, _ = studies
    kind = OrganisationKind.READING_GROUP if role == "radiologist" else OrganisationKind.OPERATOR
    client.force_login(UserFactory(organisation=OrganisationFactory(kind=kind), roles=[role]))
    reported = ours["reported"].pk
    result_id = 1
    for url in (
        STUDIES_URL,
        f"/workspace/hospital/studies/{reported}/report/",
        f"/workspace/hospital/studies/{reported}/report.pdf",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/workspace/hospital/studies/critical/{result_id}/acknowledge/").status_code == 403
    assert not AuditEntry.objects.filter(action__in=["portal.studies_view", "report.view"]).exists()


def test_anonymous_is_sent_to_login(client):
    response = client.get(STUDIES_URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- the report -----------------------------------------------------------------------------------


def test_report_page_shows_the_signed_report_and_is_audited(client, hospital_user, studies):
    ours, _ = studies
    study = ours["reported"]
    client.force_login(hospital_user)
    response = client.get(f"/workspace/hospital/studies/{study.pk}/report/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Large acute subdural haematoma." in html
    assert study.accession_number in html
    report = Report.objects.get(study=study)
    if RENDERER:  # the reports work's rendering, inside the portal page
        assert "data-pdf-link" in html
        assert f'data-report="{report.pk}"' in html
    entry = AuditEntry.objects.get(action="report.view")
    assert (entry.actor_id, entry.object_type, entry.object_id) == (
        hospital_user.pk,
        "telerad.report",
        str(report.pk),
    )
    assert entry.patient_data is True and entry.patient_id == "P-OURS"
    assert entry.details_data == {"format": "html", "study": study.pk}


def test_report_of_another_hospitals_study_is_not_found(client, hospital_user, studies):
    _, theirs = studies
    client.force_login(hospital_user)
    for url in (
        f"/workspace/hospital/studies/{theirs.pk}/report/",
        f"/workspace/hospital/studies/{theirs.pk}/report.pdf",
        "/workspace/hospital/studies/999999/report/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"CHEN" not in response.content
    assert not AuditEntry.objects.filter(action__in=["report.view", "report.download"]).exists()


@pytest.mark.parametrize("state", ["received", "waiting", "claimed"])
def test_report_of_an_unreported_study_is_not_found(client, hospital_user, studies, state):
    ours, _ = studies
    client.force_login(hospital_user)
    assert client.get(f"/workspace/hospital/studies/{ours[state].pk}/report/").status_code == 404
    assert client.get(f"/workspace/hospital/studies/{ours[state].pk}/report.pdf").status_code == 404


def test_a_preliminary_report_is_not_served_as_signed(client, hospital_user, hospital, radiologist):
    study = make_study(hospital)
    task = make_task(study, status=TaskStatus.CLAIMED, reader=radiologist)
    Report.objects.create(
        task=task,
        study=study,
        author=radiologist,
        template="generic",
        status=ReportStatus.PRELIMINARY,
        fields={"findings": "prelim"},
    )
    client.force_login(hospital_user)
    assert client.get(f"/workspace/hospital/studies/{study.pk}/report/").status_code == 404


def test_report_pdf_is_served_and_audited(client, hospital_user, studies):
    if not RENDERER:
        pytest.skip("telerad.reports_render (the reports work) is not installed yet: no PDF to serve")
    ours, _ = studies
    study = ours["reported"]
    study.order = OrderFactory(hospital=study.hospital)
    study.save()
    client.force_login(hospital_user)
    response = client.get(f"/workspace/hospital/studies/{study.pk}/report.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response.content.startswith(b"%PDF")
    entry = AuditEntry.objects.get(action="report.download")
    assert entry.patient_data is True and entry.details_data["format"] == "pdf"


# --- critical results in the portal -----------------------------------------------------------------


@pytest.fixture
def critical(studies, radiologist):
    ours, _ = studies
    report = Report.objects.get(study=ours["reported"])
    return critical_result_open(report=report, summary="Acute subdural haematoma", actor=radiologist)


def test_open_critical_results_are_on_top_with_an_acknowledge_button(client, hospital_user, critical):
    client.force_login(hospital_user)
    html = client.get(STUDIES_URL).content.decode()
    top, table = html.split("data-studies-table", 1)
    assert f'data-critical-result="{critical.pk}"' in top
    assert "Acute subdural haematoma" in top
    assert f'action="/workspace/hospital/studies/critical/{critical.pk}/acknowledge/"' in top
    assert "csrfmiddlewaretoken" in top
    entry = AuditEntry.objects.filter(action="portal.studies_view").latest("id")
    assert entry.details_data["critical_results"] == [critical.pk]


def test_acknowledge_from_the_portal(client, hospital_user, critical):
    client.force_login(hospital_user)
    url = f"/workspace/hospital/studies/critical/{critical.pk}/acknowledge/"
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == STUDIES_URL
    critical.refresh_from_db()
    assert critical.status == CriticalStatus.ACKNOWLEDGED and critical.acknowledged_by == hospital_user

    page = client.get(STUDIES_URL).content.decode()
    assert f"Critical result #{critical.pk} acknowledged." in page  # the message
    assert "data-critical-empty" in page
    assert 'data-critical-status="acknowledged"' in page

    # htmx: the live fragment comes back, saying it was already done.
    again = client.post(url, HTTP_HX_REQUEST="true")
    assert again.status_code == 200 and b"<html" not in again.content
    assert b"already acknowledged by ward-nurse" in again.content
    assert AuditEntry.objects.filter(action="critical_result.acknowledge").count() == 1


def test_acknowledging_another_hospitals_result_is_not_found(client, critical, other_hospital):
    stranger = UserFactory(organisation=other_hospital, roles=["hospital_user"])
    client.force_login(stranger)
    response = client.post(f"/workspace/hospital/studies/critical/{critical.pk}/acknowledge/")
    assert response.status_code == 404
    critical.refresh_from_db()
    assert critical.status == CriticalStatus.OPEN and critical.acknowledged_by is None
    assert not AuditEntry.objects.filter(action="critical_result.acknowledge").exists()
    assert CriticalResult.objects.filter(status=CriticalStatus.OPEN).count() == 1


def test_the_hospital_workspace_card_links_to_the_portal(client, hospital_user):
    client.force_login(hospital_user)
    assert b'href="/workspace/hospital/studies/"' in client.get("/").content


def test_a_hospital_user_without_organisation_sees_nothing(client, studies):
    user = UserFactory(organisation=None, roles=["hospital_user"])
    client.force_login(user)
    assert client.get(STUDIES_URL).status_code == 404
    ours, _ = studies
    assert client.get(f"/workspace/hospital/studies/{ours['reported'].pk}/report/").status_code == 404


def test_operator_staff_are_forbidden_even_though_they_see_across_hospitals(client, studies):
    client.force_login(UserFactory(organisation=OperatorFactory(), roles=["dispatcher"]))
    assert client.get(STUDIES_URL).status_code == 403


# --- in a browser -----------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_acknowledges_and_refreshes_live(live_server, monkeypatch, settings):
    import os
    from pathlib import Path

    from playwright.sync_api import expect, sync_playwright

    chromium = CHROMIUM
    if not os.path.exists(chromium):
        pytest.fail(f"{chromium} is missing: apt-get install -y chromium (make test does it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are deliberate.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    hospital = HospitalFactory(name="Badong County Hospital")
    UserFactory(username="hana", organisation=hospital, roles=["hospital_user"])
    radiologist = make_radiologist()
    study = make_study(hospital, patient_name="HUANG^MEI", routable_at=timezone.now())
    report = make_final_report(study, radiologist)
    result = critical_result_open(report=report, summary="Acute subdural haematoma", actor=radiologist)
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
            page.get_by_role("link", name="Studies, reports and critical results").click()
            expect(page).to_have_url(f"{live_server.url}{STUDIES_URL}")
            card = page.locator(f'[data-critical-result="{result.pk}"]')
            expect(card).to_contain_text("Acute subdural haematoma")
            page.screenshot(path=str(screenshots / "portal-critical-open.png"), full_page=True)

            card.get_by_role("button", name="Acknowledge").click()  # htmx POST with the CSRF header
            expect(page.locator("[data-portal-notice]")).to_contain_text("acknowledged")
            expect(page.locator("[data-critical-empty]")).to_be_visible()
            expect(page).to_have_url(f"{live_server.url}{STUDIES_URL}")  # swapped in place
            result.refresh_from_db()
            assert result.status == CriticalStatus.ACKNOWLEDGED and result.acknowledged_by.username == "hana"

            # A live event (as reading-live.js dispatches it) refreshes the list.
            newcomer = make_study(hospital, patient_name="ZHOU^LEI", qc_outcome=QCOutcome.PENDING)
            page.evaluate(
                "document.body.dispatchEvent(new CustomEvent('reading-event', "
                "{detail: {kind: 'study.added', seq: 1}}))"
            )
            expect(page.locator(f'[data-study="{newcomer.pk}"]')).to_contain_text("ZHOU, Lei")
            page.screenshot(path=str(screenshots / "portal-acknowledged.png"), full_page=True)

            page.locator(f'[data-study="{study.pk}"] [data-report-link]').click()
            expect(page.locator("[data-portal-report]")).to_contain_text("Large acute subdural haematoma.")
            page.screenshot(path=str(screenshots / "portal-report.png"), full_page=True)
        finally:
            browser.close()
