"""The authorised DICOMweb proxy against a real Orthanc (tests/orthanc_fixture.py)."""

from __future__ import annotations

import email
import email.policy
import io
import json
import socket
import time
from dataclasses import dataclass

import pydicom
import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.test import AsyncClient
from knox.models import AuthToken

from core.choices import OrganisationKind, Role
from core.models import AuditEntry
from dicom.models import Study
from dicom.synth import StudySpec, make_study, to_bytes, upload_study_rest
from dicom.uids import new_uid
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, StudyFactory
from tests.fleet.factories import UnitFactory
from tests.orthanc_fixture import free_ports

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]

ALL_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@dataclass
class Stored:
    study: object
    uid: str
    series_uid: str
    instances: dict[str, bytes]  # SOP Instance UID -> Part 10 bytes as uploaded


def store_study(orthanc, hospital, unit=None, **spec) -> Stored:
    datasets = make_study(StudySpec(**spec))
    answers = upload_study_rest(orthanc.client, datasets)
    study = StudyFactory(
        orthanc_id=answers[0]["ParentStudy"],
        study_instance_uid=datasets[0].StudyInstanceUID,
        hospital=hospital,
        unit=unit,
        patient_id=datasets[0].PatientID,
    )
    return Stored(
        study=study,
        uid=datasets[0].StudyInstanceUID,
        series_uid=datasets[0].SeriesInstanceUID,
        instances={ds.SOPInstanceUID: to_bytes(ds) for ds in datasets},
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Audit dedupe marks live in the cache; keys include the Orthanc id, which is new per test,
    # so only a local-memory cache needs clearing (never a shared Redis).
    if cache.__class__.__name__ == "LocMemCache":
        cache.clear()


@pytest.fixture
def world(orthanc):
    hospital_a = HospitalFactory(name="County Hospital A")
    hospital_b = HospitalFactory(name="County Hospital B")
    user_a = UserFactory(username="alice", organisation=hospital_a, roles=[Role.HOSPITAL_USER])
    user_b = UserFactory(username="bob", organisation=hospital_b, roles=[Role.HOSPITAL_USER])
    stored = store_study(orthanc, hospital_a, slices_per_series=4, rows=64, columns=64)
    return hospital_a, hospital_b, user_a, user_b, stored


def get(client: AsyncClient, url: str, **headers: str):
    """GET through the ASGI handler; returns (response, whole body)."""

    async def go():
        response = await client.get(url, headers=headers)
        if response.streaming:
            chunks = [chunk async for chunk in response.streaming_content]
            return response, b"".join(chunks), len(chunks)
        return response, response.content, 1

    response, body, _ = async_to_sync(go)()
    return response, body


def get_chunks(client: AsyncClient, url: str, **headers: str):
    async def go():
        response = await client.get(url, headers=headers)
        assert response.streaming and response.is_async
        return response, [chunk async for chunk in response.streaming_content]

    return async_to_sync(go)()


def request(client: AsyncClient, method: str, url: str):
    return async_to_sync(getattr(client, method))(url)


def logged_in(user) -> AsyncClient:
    client = AsyncClient()
    client.force_login(user)
    return client


def parts(content_type: str, body: bytes) -> list[bytes]:
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    assert message.is_multipart(), content_type
    return [part.get_payload(decode=True) for part in message.iter_parts()]


def opened(user) -> int:
    return AuditEntry.objects.filter(action="study.open", actor_id=user.pk).count()


def test_hospital_user_gets_qido_metadata_and_frames_of_their_study_audited_once(world, orthanc):
    _, _, user_a, _, stored = world
    client = logged_in(user_a)

    response, body = get(client, f"/dicom-web/studies?StudyInstanceUID={stored.uid}")
    assert response.status_code == 200
    found = json.loads(body)
    assert [s["0020000D"]["Value"][0] for s in found] == [stored.uid]

    response, body = get(client, f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/dicom+json")
    metadata = json.loads(body)
    assert {m["00080018"]["Value"][0] for m in metadata} == set(stored.instances)
    # No URL in the metadata points at Orthanc itself: bulk data URIs point at the proxy.
    assert orthanc.url not in body.decode()
    bulk = [v["BulkDataURI"] for m in metadata for v in m.values() if "BulkDataURI" in v]
    assert bulk, "Orthanc lists PixelData as bulk data"
    assert all(uri.startswith(f"http://testserver/dicom-web/studies/{stored.uid}/") for uri in bulk), bulk[:2]
    response, body = get(client, bulk[0].removeprefix("http://testserver"))
    assert response.status_code == 200

    response, body = get(client, f"/dicom-web/studies/{stored.uid}/series")
    assert response.status_code == 200
    assert [s["0020000E"]["Value"][0] for s in json.loads(body)] == [stored.series_uid]

    for sop_uid in list(stored.instances)[:3]:
        url = f"/dicom-web/studies/{stored.uid}/series/{stored.series_uid}/instances/{sop_uid}/frames/1"
        response, body = get(client, url, accept=FRAMES)
        assert response.status_code == 200, body[:200]
        assert response["Content-Type"].startswith("multipart/related")
        (frame,) = parts(response["Content-Type"], body)
        assert frame == pydicom.dcmread(io.BytesIO(stored.instances[sop_uid])).PixelData

    assert opened(user_a) == 1
    entry = AuditEntry.objects.get(action="study.open", actor_id=user_a.pk)
    assert entry.object_type == "dicom.study"
    assert entry.object_id == str(stored.study.pk)
    assert entry.patient_data is True
    assert entry.patient_id == stored.study.patient_id


def test_other_hospital_gets_404_for_the_same_uid_and_for_made_up_ones(world):
    _, _, _, user_b, stored = world
    client = logged_in(user_b)
    made_up = new_uid()
    for url in (
        f"/dicom-web/studies/{stored.uid}/metadata",
        f"/dicom-web/studies/{stored.uid}",
        f"/dicom-web/studies/{stored.uid}/series",
        f"/dicom-web/studies/{stored.uid}/series/{stored.series_uid}/instances/{next(iter(stored.instances))}/frames/1",
        f"/dicom-web/studies/{made_up}/metadata",
    ):
        response, body = get(client, url)
        assert response.status_code == 404, url
        assert json.loads(body) == {
            "detail": "No study matches the given Study Instance UID",
            "code": "not_found",
        }
    assert AuditEntry.objects.filter(action="study.open").count() == 0


def uids_in(body: bytes) -> list[str]:
    return [s["0020000D"]["Value"][0] for s in json.loads(body)]


def test_study_search_never_reveals_other_hospitals_studies(world, orthanc, monkeypatch):
    hospital_a, hospital_b, user_a, user_b, stored_a = world
    # Same patient ID at both hospitals (IDs are only unique per issuer).
    stored_b = store_study(orthanc, hospital_b, slices_per_series=1, rows=32, columns=32)
    patient_id = stored_a.study.patient_id
    assert stored_b.study.patient_id == patient_id

    # B asks for A's study by UID: an empty answer, exactly as for a UID that does not exist.
    response, body = get(logged_in(user_b), f"/dicom-web/studies?StudyInstanceUID={stored_a.uid}")
    assert (response.status_code, json.loads(body)) == (200, [])
    response, body = get(logged_in(user_b), f"/dicom-web/studies?StudyInstanceUID={new_uid()}")
    assert (response.status_code, json.loads(body)) == (200, [])
    # B asks for both: only B's comes back.
    response, body = get(
        logged_in(user_b), f"/dicom-web/studies?StudyInstanceUID={stored_a.uid},{stored_b.uid}"
    )
    assert uids_in(body) == [stored_b.uid]
    assert opened(user_b) == 1
    assert AuditEntry.objects.filter(action="study.open", object_id=str(stored_a.study.pk)).count() == 0

    # Searches by other keys (OHIF's prior-studies lookup by PatientID) or by none at all
    # answer the user's own studies only.
    for query in (f"PatientID={patient_id}", f"00100020={patient_id}&limit=101", ""):
        response, body = get(logged_in(user_a), f"/dicom-web/studies?{query}")
        assert (response.status_code, uids_in(body)) == (200, [stored_a.uid]), query
        response, body = get(logged_in(user_b), f"/dicom-web/studies?{query}")
        assert (response.status_code, uids_in(body)) == (200, [stored_b.uid]), query
    response, body = get(logged_in(user_a), "/dicom-web/studies?PatientID=NOBODY")
    assert (response.status_code, json.loads(body)) == (200, [])
    # Those searches are audited per request, as searches, and open nothing.
    searches = AuditEntry.objects.filter(action="study.search", actor_id=user_a.pk)
    assert searches.count() == 4
    assert searches.filter(patient_id=patient_id).count() == 2
    assert all(entry.patient_data for entry in searches)
    assert opened(user_a) == 0

    # Too many candidates: refused, with what to do about it.
    monkeypatch.setattr("dicom.web.dicomweb_proxy.MAX_SEARCH_STUDIES", 0)
    response, body = get(logged_in(user_a), "/dicom-web/studies")
    assert response.status_code == 400
    assert json.loads(body)["code"] == "search_too_broad"

    monkeypatch.undo()

    # Both studies were acquired by one operator's van; a third, at hospital B, by another's.
    operator = OrganisationFactory(name="Caravan Operator", kind=OrganisationKind.OPERATOR)
    van = UnitFactory(operator=operator)
    Study.objects.filter(pk__in=[stored_a.study.pk, stored_b.study.pk]).update(unit=van)
    stored_c = store_study(orthanc, hospital_b, unit=UnitFactory(), slices_per_series=1, rows=32, columns=32)
    # A dispatcher sees no study at all, not even their own vans'.
    dispatcher = UserFactory(organisation=operator, roles=[Role.DISPATCHER])
    response, body = get(logged_in(dispatcher), f"/dicom-web/studies?StudyInstanceUID={stored_a.uid}")
    assert (response.status_code, json.loads(body)) == (200, [])
    response, _ = get(logged_in(dispatcher), f"/dicom-web/studies/{stored_a.uid}/metadata")
    assert response.status_code == 404
    # The operator's QC officer sees every hospital's studies its vans acquired, and only those.
    qc = UserFactory(organisation=operator, roles=[Role.QC_OFFICER])
    response, body = get(logged_in(qc), "/dicom-web/studies")
    assert response.status_code == 200
    assert set(uids_in(body)) == {stored_a.uid, stored_b.uid}
    response, body = get(logged_in(qc), f"/dicom-web/studies?StudyInstanceUID={stored_c.uid}")
    assert (response.status_code, json.loads(body)) == (200, [])
    # The other operator's QC officer: only its own van's study; A's is as if it did not exist.
    rival_qc = UserFactory(organisation=stored_c.study.unit.operator, roles=[Role.QC_OFFICER])
    response, body = get(logged_in(rival_qc), "/dicom-web/studies")
    assert (response.status_code, uids_in(body)) == (200, [stored_c.uid])
    response, _ = get(logged_in(rival_qc), f"/dicom-web/studies/{stored_a.uid}/metadata")
    assert response.status_code == 404
    assert AuditEntry.objects.filter(action="study.open", object_id=str(stored_a.study.pk)).count() == 0


def test_a_series_of_another_study_is_not_reachable_under_a_visible_study(world, orthanc):
    _, hospital_b, user_a, _, stored_a = world
    stored_b = store_study(orthanc, hospital_b, slices_per_series=1, rows=32, columns=32)
    response, _ = get(
        logged_in(user_a), f"/dicom-web/studies/{stored_a.uid}/series/{stored_b.series_uid}/metadata"
    )
    assert response.status_code == 404


def test_anonymous_is_401_and_token_auth_works(world):
    _, _, user_a, user_b, stored = world
    response, body = get(AsyncClient(), f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert json.loads(body)["code"] == "not_authenticated"

    response, _ = get(AsyncClient(), f"/dicom-web/studies/{stored.uid}/metadata", authorization="Token nope")
    assert response.status_code == 401

    _, token_a = AuthToken.objects.create(user=user_a)
    response, body = get(
        AsyncClient(), f"/dicom-web/studies/{stored.uid}/metadata", authorization=f"Token {token_a}"
    )
    assert response.status_code == 200
    assert len(json.loads(body)) == len(stored.instances)

    _, token_b = AuthToken.objects.create(user=user_b)
    response, _ = get(
        AsyncClient(), f"/dicom-web/studies/{stored.uid}/metadata", authorization=f"Token {token_b}"
    )
    assert response.status_code == 404

    user_a.is_active = False
    user_a.save()
    response, _ = get(
        AsyncClient(), f"/dicom-web/studies/{stored.uid}/metadata", authorization=f"Token {token_a}"
    )
    assert response.status_code == 401
    assert opened(user_a) == 1 and opened(user_b) == 0


def test_radiologist_sees_only_studies_of_their_reading_tasks(world, orthanc):
    from django.utils import timezone

    from telerad.models import Radiologist, ReadingPool, ReadingTask

    hospital_a, _, _, _, stored = world
    group = OrganisationFactory(name="Reading Group", kind=OrganisationKind.READING_GROUP)
    eligible = UserFactory(organisation=group, roles=[Role.RADIOLOGIST])
    outsider = UserFactory(organisation=group, roles=[Role.RADIOLOGIST])
    pool = ReadingPool.objects.create(reading_group=group, name="Neuro CT", modalities=["CT"])
    reader = Radiologist.objects.create(user=eligible)
    Radiologist.objects.create(user=outsider)
    now = timezone.now()
    task = ReadingTask.objects.create(
        study=stored.study,
        pool=pool,
        hospital=hospital_a,
        modality="CT",
        priority="ROUTINE",
        priority_rank=2,
        routed_at=now,
        deadline=now,
    )
    task.eligible.add(reader)
    response, _ = get(logged_in(eligible), f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 200
    response, _ = get(logged_in(outsider), f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 404


def test_whole_study_retrieve_streams_multi_megabytes_intact(orthanc):
    hospital = HospitalFactory()
    user = UserFactory(organisation=hospital, roles=[Role.HOSPITAL_USER])
    stored = store_study(orthanc, hospital, slices_per_series=40, rows=256, columns=256)  # ~5 MB
    assert sum(map(len, stored.instances.values())) > 5_000_000

    response, chunks = get_chunks(logged_in(user), f"/dicom-web/studies/{stored.uid}", accept=ALL_AS_STORED)
    assert response.status_code == 200
    assert response.streaming is True and response.is_async is True
    assert len(chunks) > 10  # passed through piece by piece, not as one buffer
    assert max(map(len, chunks)) <= 64 * 1024
    body = b"".join(chunks)
    if "Content-Length" in response:
        assert int(response["Content-Length"]) == len(body)
    received = {
        pydicom.dcmread(io.BytesIO(p)).SOPInstanceUID: p for p in parts(response["Content-Type"], body)
    }
    assert set(received) == set(stored.instances)
    for sop_uid, data in received.items():
        assert data == stored.instances[sop_uid]
    assert opened(user) == 1


def test_audit_window_dedupes_per_user_and_study(world, orthanc):
    hospital_a, _, user_a, _, stored = world
    colleague = UserFactory(organisation=hospital_a, roles=[Role.HOSPITAL_USER])
    other = store_study(orthanc, hospital_a, slices_per_series=1, rows=32, columns=32)
    for _ in range(3):
        get(logged_in(user_a), f"/dicom-web/studies/{stored.uid}/metadata")
        get(logged_in(user_a), f"/dicom-web/studies/{other.uid}/metadata")
        get(logged_in(colleague), f"/dicom-web/studies/{stored.uid}/metadata")
    assert opened(user_a) == 2
    assert opened(colleague) == 1
    # A refused request (bad method, other hospital, anonymous) writes nothing.
    before = AuditEntry.objects.count()
    request(AsyncClient(), "get", f"/dicom-web/studies/{stored.uid}/metadata")
    request(logged_in(user_a), "post", f"/dicom-web/studies/{stored.uid}")
    assert AuditEntry.objects.count() == before


def test_orthanc_down_is_502_with_a_message(world, settings):
    _, _, user_a, _, stored = world
    (port,) = free_ports(1)
    settings.ORTHANC_URL = f"http://127.0.0.1:{port}"
    response, body = get(logged_in(user_a), f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 502
    assert json.loads(body) == {
        "detail": "The image archive (Orthanc) is not reachable; try again shortly.",
        "code": "orthanc_unavailable",
    }
    assert opened(user_a) == 0


def test_orthanc_too_slow_is_502(world, settings):
    _, _, user_a, _, stored = world
    # A listening socket nobody reads: the connection is made, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.ORTHANC_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.ORTHANC_TIMEOUT = 1
        started = time.monotonic()
        response, body = get(logged_in(user_a), f"/dicom-web/studies/{stored.uid}/metadata")
    assert time.monotonic() - started < 5
    assert response.status_code == 502
    assert json.loads(body)["code"] == "orthanc_timeout"
    assert opened(user_a) == 0


def test_a_study_is_audited_again_after_the_session_window(world, monkeypatch):
    _, _, user_a, _, stored = world
    monkeypatch.setattr("dicom.study_access.OPEN_AUDIT_WINDOW", 1)
    client = logged_in(user_a)
    get(client, f"/dicom-web/studies/{stored.uid}/metadata")
    get(client, f"/dicom-web/studies/{stored.uid}/metadata")
    assert opened(user_a) == 1
    time.sleep(1.5)
    get(client, f"/dicom-web/studies/{stored.uid}/metadata")
    assert opened(user_a) == 2


def test_wrong_orthanc_credentials_are_502_not_a_browser_login_prompt(world, settings):
    _, _, user_a, _, stored = world
    settings.ORTHANC_PASSWORD = "wrong"
    response, body = get(logged_in(user_a), f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 502
    assert "WWW-Authenticate" not in response
    assert opened(user_a) == 0


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writes_are_405(world, method):
    _, _, user_a, _, stored = world
    response = request(logged_in(user_a), method, f"/dicom-web/studies/{stored.uid}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert opened(user_a) == 0


def test_head_and_options(world):
    _, _, user_a, _, stored = world
    client = logged_in(user_a)
    response = request(client, "head", f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/dicom+json")
    response = request(client, "options", f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 200
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    response = request(logged_in(world[3]), "head", f"/dicom-web/studies/{stored.uid}/metadata")
    assert response.status_code == 404
    assert opened(user_a) == 0


def test_paths_outside_dicomweb_studies_are_404(world):
    _, _, user_a, _, _ = world
    client = logged_in(user_a)
    for url in (
        "/dicom-web/",
        "/dicom-web/servers",
        "/dicom-web/studies/../tools/find",
        "/dicom-web/studies/abc",
    ):
        response, _ = get(client, url)
        assert response.status_code == 404, url


def test_viewer_needs_login_and_points_ohif_at_the_proxy(client, world):
    _, _, user_a, _, stored = world
    response = client.get(f"/viewer/?StudyInstanceUIDs={stored.uid}")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(user_a)
    response = client.get(f"/viewer/?StudyInstanceUIDs={stored.uid}")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'window.PUBLIC_URL="/static/vendor/ohif/"' in html
    assert 'src="/viewer/app-config.js"' in html
    assert "init-service-worker" not in html
    assert 'src="/app.bundle' not in html and 'href="/assets' not in html
    config = client.get("/viewer/app-config.js").content.decode()
    assert config.startswith("/* Generated by Caravan")
    data = json.loads(config.split("window.config = ", 1)[1].rstrip().rstrip(";"))
    (source,) = data["dataSources"]
    assert source["configuration"]["qidoRoot"] == "http://testserver/dicom-web"
    assert source["configuration"]["wadoRoot"] == "http://testserver/dicom-web"
    assert source["configuration"]["supportsReject"] is False
    assert "cloudfront" not in config and "https://" not in config


@pytest.mark.django_db
def test_study_open_for_user_audits_once_and_hides_other_hospitals():
    from core.exceptions import NotFound
    from dicom.study_access import study_get_for_user, study_open_for_user

    hospital_a, hospital_b = HospitalFactory(), HospitalFactory()
    study = StudyFactory(hospital=hospital_a, patient_id="P-1")
    user_a = UserFactory(organisation=hospital_a, roles=[Role.HOSPITAL_USER])
    user_b = UserFactory(organisation=hospital_b, roles=[Role.HOSPITAL_USER])
    assert study_open_for_user(user_a, study.study_instance_uid) == study
    assert study_open_for_user(user_a, study.study_instance_uid) == study
    assert opened(user_a) == 1
    for uid in (study.study_instance_uid, new_uid()):
        with pytest.raises(NotFound):
            study_open_for_user(user_b, uid)
        with pytest.raises(NotFound):
            study_get_for_user(user_b, uid)
    assert opened(user_b) == 0
