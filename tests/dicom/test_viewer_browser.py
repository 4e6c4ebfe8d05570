"""OHIF opens a study through the DICOMweb proxy in Debian's Chromium.

The proxy is an async view that streams with an async iterator. pytest-django's
``live_server`` is a threaded WSGI server, under which Django would have to consume that
iterator whole before sending it; this test therefore runs the real production server,
daphne (ASGI), in a subprocess on the test database, which a ``transaction=True`` test commits
to so the subprocess sees the users and the study.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from core.choices import Role
from core.models import AuditEntry
from dicom.synth import StudySpec, make_study, upload_study_rest
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, LOGS, SCREENSHOTS, running_daphne
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, StudyFactory
from tests.dicom.test_dicomweb_uid_conflict import SECOND_NAME
from tests.dicom.test_dicomweb_uid_conflict import conflict_world as conflict_world  # a fixture

pytestmark = [pytest.mark.browser, pytest.mark.orthanc, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def daphne_server(orthanc, transactional_db) -> Iterator[str]:
    with running_daphne("viewer-daphne.log") as url:
        yield url


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        yield context.new_page()
        context.close()
        browser.close()


# Pixels of the first viewport canvas that are not black (OHIF draws the image there).
NON_BLACK_PIXELS = """() => {
  const canvas = document.querySelector('.cornerstone-canvas')
    || document.querySelector('[data-viewport-uid] canvas');
  if (!canvas || !canvas.width || !canvas.height) return -1;
  const ctx = canvas.getContext('2d');
  if (!ctx) return -2;
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 30) n++;
  return n;
}"""


def test_hospital_user_opens_a_study_in_ohif(daphne_server, orthanc, page, settings):
    # The daphne subprocess knows only the production hashers, not the tests' fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    hospital = HospitalFactory(name="County Hospital A")
    user = UserFactory(username="hana", organisation=hospital, roles=[Role.HOSPITAL_USER])
    datasets = make_study(StudySpec(modality="CT", body_part="HEAD", slices_per_series=8))
    answers = upload_study_rest(orthanc.client, datasets)
    uid = datasets[0].StudyInstanceUID
    study = StudyFactory(
        orthanc_id=answers[0]["ParentStudy"],
        study_instance_uid=uid,
        hospital=hospital,
        patient_id=datasets[0].PatientID,
    )

    requested: list[str] = []
    failed: list[str] = []
    console: list[str] = []
    # On the context, so requests of web workers (image decoding) are seen too.
    page.context.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda r: r.status < 400 or failed.append(f"{r.status} {r.url}"))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

    page.goto(f"{daphne_server}/login/?next=/viewer/%3FStudyInstanceUIDs%3D{uid}")
    page.get_by_label("Username").fill("hana")
    page.get_by_label("Password").fill("pw-Caravan-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{daphne_server}/viewer/?StudyInstanceUIDs={uid}")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60
    drawn = -1
    while time.monotonic() < deadline:
        drawn = page.evaluate(NON_BLACK_PIXELS)
        if drawn > 1000:
            break
        page.wait_for_timeout(500)
    # Let the side panel (thumbnails, prior studies) settle for the screenshot.
    page.wait_for_timeout(3000)
    page.screenshot(path=str(SCREENSHOTS / "viewer.png"))
    (LOGS / "viewer-console.log").write_text("\n".join(console))
    assert drawn > 1000, f"no image drawn (canvas probe {drawn}); console: {console[-20:]}"

    # Pixels came through the proxy, frame by frame.
    assert any(
        url.startswith(f"{daphne_server}/dicom-web/studies/{uid}/series/") and "/frames/" in url
        for url in requested
    )
    # Many proxied requests, one audit entry (written by the daphne process).
    assert (
        AuditEntry.objects.filter(action="study.open", actor_id=user.pk, object_id=str(study.pk)).count() == 1
    )
    off_site = [url for url in requested if not url.startswith((daphne_server, "data:", "blob:"))]
    assert off_site == []
    assert failed == []


def test_reader_opens_the_claimed_copy_of_a_uid_held_twice(
    daphne_server, orthanc, page, settings, conflict_world
):
    """OHIF is opened by Study Instance UID; the proxy gives it only the claimed Orthanc study."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    w = conflict_world
    reader = w.reader
    reader.set_password("pw-Caravan-123")
    reader.save()
    requested: list[str] = []
    failed: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda r: r.status < 400 or failed.append(f"{r.status} {r.url}"))

    page.goto(f"{daphne_server}/login/?next=/viewer/%3FStudyInstanceUIDs%3D{w.uid}")
    page.get_by_label("Username").fill(reader.username)
    page.get_by_label("Password").fill("pw-Caravan-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{daphne_server}/viewer/?StudyInstanceUIDs={w.uid}")
    # dicom_factory's slices are black at OHIF's CT window, so wait for the stack instead: the
    # overlay counts the granted copy's 6 instances ("I:6 (1/6)"), not 6 + 3.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "(1/6)" not in page.content():
        page.wait_for_timeout(500)
    page.wait_for_timeout(3000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "viewer-uid-conflict.png"))
    assert "(1/6)" in page.content()
    assert any(f"/series/{w.first_series}/" in url and "/frames/" in url for url in requested)
    # OHIF never learnt of the second patient's series, nor shows their name.
    assert not [url for url in requested if w.second_series in url]
    assert SECOND_NAME.split("^")[0] not in page.content()
    assert failed == []
    assert AuditEntry.objects.filter(action="study.open", actor_id=reader.pk).values_list(
        "object_id", flat=True
    ).get() == str(w.held.pk)
