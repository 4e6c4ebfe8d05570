"""Orthanc integration against a real Orthanc (tests/orthanc_fixture.py): no mocks.

Covers the REST client, DICOM C-STORE and the AE whitelist, HTTP auth, the Python plugin's
StableStudy nudge (to a recorder and through the live Django endpoint), the nudge endpoint's
refusals, and the configuration ``manage.py orthanc`` renders.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.health import check_orthanc
from core.models import AuditEntry
from dicom.api.views import PLUGIN_SECRET_HEADER
from dicom.models import Study
from dicom.orthanc import launcher
from dicom.orthanc_client import OrthancClient, OrthancError, orthanc_client_from_settings
from tests.dicom.dicom_factory import (
    PATIENT_ID,
    PATIENT_NAME,
    associate,
    ct_instance,
    ct_series,
    to_bytes,
)
from tests.orthanc_fixture import free_ports

NUDGE_URL = "/api/dicom/orthanc/nudge/"
STUDY_ID = "5052c0fe-d828e128-c3d90fc7-ff092098-e2c92706"
SUCCESS = 0x0000


def _study_id(client: OrthancClient, study_uid: str) -> str:
    matches = [m for m in client.lookup(study_uid) if m["Type"] == "Study"]
    assert len(matches) == 1, matches
    return matches[0]["ID"]


def _wait_log(orthanc, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in orthanc.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in {orthanc.log_path}"
        time.sleep(0.05)


def _stable_seq(client: OrthancClient, study_id: str) -> int:
    page = client.changes(since=0, limit=10_000)
    seqs = [c["Seq"] for c in page["Changes"] if c["ChangeType"] == "StableStudy" and c["ID"] == study_id]
    assert len(seqs) == 1, page
    return seqs[0]


# --- REST client ---------------------------------------------------------------------------------


@pytest.mark.orthanc
def test_rest_upload_and_read_back(orthanc):
    ds = ct_instance(accession_number="ACC-REST-1")
    data = to_bytes(ds)

    stored = orthanc.client.upload_instance(data)

    assert stored["Status"] == "Success"
    assert orthanc.client.instance_file(stored["ID"]) == data
    tags = orthanc.client.instance_tags(stored["ID"])
    assert tags["SOPInstanceUID"] == ds.SOPInstanceUID
    assert tags["StudyInstanceUID"] == ds.StudyInstanceUID
    assert tags["SOPClassUID"] == ds.SOPClassUID
    assert tags["AccessionNumber"] == "ACC-REST-1"
    assert (tags["Rows"], tags["Columns"]) == ("16", "16")
    full = orthanc.client.instance_tags(stored["ID"], simplify=False)
    assert full["0008,0018"]["Value"] == ds.SOPInstanceUID
    study = orthanc.client.study(stored["ParentStudy"])
    assert study["MainDicomTags"]["StudyInstanceUID"] == ds.StudyInstanceUID
    assert [i["ID"] for i in orthanc.client.study_instances(stored["ParentStudy"])] == [stored["ID"]]
    assert _study_id(orthanc.client, ds.StudyInstanceUID) == stored["ParentStudy"]
    assert orthanc.client.statistics()["CountInstances"] == 1

    # Idempotent by SOP Instance UID: a second upload stores nothing new.
    assert orthanc.client.upload_instance(data)["Status"] == "AlreadyStored"
    assert orthanc.client.statistics()["CountInstances"] == 1

    orthanc.client.delete(f"studies/{stored['ParentStudy']}")
    assert orthanc.client.statistics()["CountInstances"] == 0


@pytest.mark.orthanc
def test_client_errors_carry_status(orthanc):
    with pytest.raises(OrthancError) as missing:
        orthanc.client.study(STUDY_ID)
    assert missing.value.status_code == 404

    with pytest.raises(OrthancError) as bad_dicom:
        orthanc.client.upload_instance(b"not a DICOM file")
    assert bad_dicom.value.status_code == 400
    assert orthanc.client.statistics()["CountInstances"] == 0

    with pytest.raises(OrthancError) as traversal:
        orthanc.client.study("../tools/reset")
    assert traversal.value.status_code is None  # refused before any request
    with pytest.raises(OrthancError):
        orthanc.client.delete("tools/reset")

    wrong = OrthancClient(orthanc.url, orthanc.username, "wrong-password", retries=0)
    with pytest.raises(OrthancError) as unauthorised:
        wrong.system()
    assert unauthorised.value.status_code == 401

    closed_port = free_ports(1)[0]
    with pytest.raises(OrthancError) as down:
        OrthancClient(f"http://127.0.0.1:{closed_port}", "u", "p", timeout=1, retries=1).system()
    assert down.value.status_code is None


def test_client_retries_only_what_is_safe_to_repeat():
    client = OrthancClient("http://127.0.0.1:8042", "u", "p", timeout=4, retries=3)
    retry = client.session.get_adapter(client.url).max_retries
    assert (retry.total, retry.connect, retry.read, retry.status) == (3, 3, 3, 3)
    assert set(retry.status_forcelist) == {500, 502, 503, 504}
    assert "GET" in retry.allowed_methods and "DELETE" in retry.allowed_methods
    assert "POST" not in retry.allowed_methods
    assert client.session.trust_env is False
    assert client.timeout == 4


@pytest.mark.orthanc
def test_client_from_settings_and_health(orthanc):
    assert orthanc_client_from_settings(timeout=3, retries=0).system()["DicomAet"] == orthanc.aet
    assert check_orthanc() == "ok"


@pytest.mark.orthanc
def test_changes_pages(orthanc):
    first = orthanc.client.changes(since=0, limit=10_000)["Last"]
    orthanc.client.upload_instance(to_bytes(ct_instance()))
    page = orthanc.client.changes(since=first, limit=2)
    assert [c["ChangeType"] for c in page["Changes"]] == ["NewInstance", "NewSeries"]
    assert page["Done"] is False
    with pytest.raises(OrthancError):
        orthanc.client.changes(since=-1, limit=10)


# --- HTTP security -------------------------------------------------------------------------------


@pytest.mark.orthanc
def test_rest_requires_credentials(orthanc):
    for path in ("/system", "/patients", "/dicom-web/studies", "/changes"):
        assert requests.get(orthanc.url + path, timeout=5).status_code == 401, path
    assert (
        requests.get(orthanc.url + "/system", auth=(orthanc.username, "nope"), timeout=5).status_code == 401
    )
    assert (
        requests.post(orthanc.url + "/instances", data=to_bytes(ct_instance()), timeout=5).status_code == 401
    )
    assert orthanc.client.statistics()["CountInstances"] == 0


def _get_from(source_ip: str, orthanc, path: str) -> int:
    connection = http.client.HTTPConnection(
        "127.0.0.1", orthanc.http_port, timeout=5, source_address=(source_ip, 0)
    )
    token = base64.b64encode(f"{orthanc.username}:{orthanc.password}".encode()).decode()
    try:
        connection.request("GET", path, headers={"Authorization": f"Basic {token}"})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.orthanc
def test_remote_clients_are_refused_even_with_credentials(orthanc):
    # Orthanc 1.10 counts only 127.0.0.1 as local, so a client bound to 127.0.0.2 stands in
    # for a remote host (Orthanc listens on every interface: it has no bind-address option).
    assert _get_from("127.0.0.1", orthanc, "/system") == 200
    assert _get_from(orthanc.other_host, orthanc, "/system") in {401, 403}
    assert _get_from(orthanc.other_host, orthanc, "/dicom-web/studies") in {401, 403}


@pytest.mark.orthanc
def test_only_python_and_dicomweb_plugins_and_no_explorer(orthanc):
    # "explorer.js" is Orthanc's built-in hook for plugins' UI extensions, not a plugin.
    assert set(orthanc.client.plugins()) - {"explorer.js"} == {"python", "dicom-web"}
    with pytest.raises(OrthancError) as explorer:
        orthanc.client.request("GET", "app/explorer.html")
    assert explorer.value.status_code == 404


@pytest.mark.orthanc
def test_dicomweb_qido(orthanc):
    ds = ct_instance()
    orthanc.client.upload_instance(to_bytes(ds))
    response = orthanc.client.request(
        "GET", "dicom-web/studies", params={"StudyInstanceUID": ds.StudyInstanceUID}
    )
    studies = response.json()
    assert len(studies) == 1
    assert studies[0]["0020000D"]["Value"] == [ds.StudyInstanceUID]


# --- DICOM ---------------------------------------------------------------------------------------


@pytest.mark.orthanc
def test_c_store_from_whitelisted_ae(orthanc):
    series = ct_series(3)
    assoc = associate(orthanc.dicom_port, calling_aet=orthanc.scu_aet, called_aet=orthanc.aet)
    assert assoc.is_established
    try:
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert assoc.send_c_echo().Status == SUCCESS
        statuses = [assoc.send_c_store(ds).Status for ds in series]
    finally:
        assoc.release()
    assert statuses == [SUCCESS] * 3

    study_id = _study_id(orthanc.client, series[0].StudyInstanceUID)
    stored = orthanc.client.study_instances(study_id)
    assert sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in stored) == sorted(
        ds.SOPInstanceUID for ds in series
    )
    # C-STORE carries the dataset, not the file: same pixels, re-wrapped by Orthanc.
    by_uid = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in stored}
    tags = orthanc.client.instance_tags(by_uid[series[1].SOPInstanceUID])
    assert tags["InstanceNumber"] == "2"
    assert tags["PatientID"] == PATIENT_ID


@pytest.mark.orthanc
def test_unknown_calling_ae_is_refused(orthanc):
    assoc = associate(orthanc.dicom_port, calling_aet="ROGUE_VAN", called_aet=orthanc.aet)
    assert not assoc.is_established
    # pynetdicom sometimes closes the socket before reading the A-ASSOCIATE-RJ and reports an
    # abort; Orthanc's log line below is the proof of the rejection and its reason.
    assert assoc.is_rejected or assoc.is_aborted
    _wait_log(orthanc, "Rejected association for remote AET ROGUE_VAN")
    assert orthanc.client.statistics()["CountInstances"] == 0


@pytest.mark.orthanc
def test_wrong_called_ae_is_refused(orthanc):
    assoc = associate(orthanc.dicom_port, calling_aet=orthanc.scu_aet, called_aet="SOMEONE_ELSE")
    assert not assoc.is_established
    # pynetdicom sometimes closes the socket before reading the A-ASSOCIATE-RJ and reports an
    # abort; Orthanc's log line below is the proof of the rejection and its reason.
    assert assoc.is_rejected or assoc.is_aborted
    _wait_log(orthanc, "bad called AET in the request (SOMEONE_ELSE)")


@pytest.mark.orthanc
def test_whitelisted_ae_only_from_its_registered_host(orthanc):
    # VAN02 is registered at 127.0.0.2; the same title from 127.0.0.1 is an impostor.
    impostor = associate(orthanc.dicom_port, calling_aet=orthanc.scu_aet_other_host, called_aet=orthanc.aet)
    assert not impostor.is_established
    # pynetdicom sometimes closes the socket before reading the A-ASSOCIATE-RJ and reports an
    # abort; Orthanc's log line below is the proof of the rejection and its reason.
    assert impostor.is_rejected or impostor.is_aborted
    _wait_log(orthanc, f"Rejected association for remote AET {orthanc.scu_aet_other_host} on IP 127.0.0.1")

    genuine = associate(
        orthanc.dicom_port,
        calling_aet=orthanc.scu_aet_other_host,
        called_aet=orthanc.aet,
        bind_host=orthanc.other_host,
    )
    assert genuine.is_established
    try:
        assert genuine.send_c_store(ct_instance()).Status == SUCCESS
    finally:
        genuine.release()
    assert orthanc.client.statistics()["CountInstances"] == 1


# --- the plugin's nudge --------------------------------------------------------------------------


@pytest.mark.orthanc
def test_plugin_nudges_after_stable_age(orthanc):
    ds = ct_instance()
    stored_at = time.time()
    stored = orthanc.client.upload_instance(to_bytes(ds))
    study_id = stored["ParentStudy"]

    nudge = orthanc.nudges.wait_for_study(study_id, timeout=orthanc.stable_age + 15)

    # Orthanc's moment of stability: at least StableAge after the last instance, before arrival.
    body = nudge.json
    stable_at = body.pop("stable_at")
    assert stored_at + orthanc.stable_age - 0.5 <= stable_at <= time.time()
    assert nudge.path == NUDGE_URL
    assert nudge.headers[PLUGIN_SECRET_HEADER] == orthanc.plugin_secret
    assert nudge.headers["Content-Type"] == "application/json"
    assert body == {
        "change": "StableStudy",
        "orthanc_id": study_id,
        "seq": _stable_seq(orthanc.client, study_id),
    }
    log = orthanc.log_text()
    assert f"StableStudy {study_id} seq" in log
    for identifier in (PATIENT_NAME, PATIENT_ID, ds.StudyInstanceUID, ds.SOPInstanceUID):
        assert identifier not in log
    assert orthanc.plugin_secret not in log


@pytest.mark.orthanc
def test_plugin_survives_a_failing_platform(orthanc):
    # 5xx: retried (3 tries in all), then given up and logged; Orthanc carries on.
    orthanc.nudges.fail_with = 503
    first = orthanc.client.upload_instance(to_bytes(ct_instance()))["ParentStudy"]
    orthanc.nudges.wait_for(
        lambda n: len(orthanc.nudges.for_study(first)) == 3, timeout=orthanc.stable_age + 15
    )
    _wait_log(orthanc, f"StableStudy {first} seq")
    _wait_log(orthanc, "not nudged after 3 tries (HTTP 503)")

    # 4xx: the platform refused the nudge itself; retrying cannot help.
    orthanc.nudges.fail_with = 403
    second = orthanc.client.upload_instance(to_bytes(ct_instance()))["ParentStudy"]
    orthanc.nudges.wait_for_study(second, timeout=orthanc.stable_age + 15)
    _wait_log(orthanc, f"StableStudy {second} seq")
    _wait_log(orthanc, "refused (HTTP 403)")
    time.sleep(1.0)  # longer than the plugin's retry back-off
    assert len(orthanc.nudges.for_study(second)) == 1
    assert len(orthanc.nudges.for_study(first)) == 3
    assert orthanc.client.statistics()["CountStudies"] == 2


@pytest.mark.orthanc
@pytest.mark.django_db(transaction=True)
def test_plugin_nudge_reaches_django_endpoint(orthanc, live_server):
    orthanc.nudges.forward_to = live_server.url
    stored = orthanc.client.upload_instance(to_bytes(ct_instance()))
    study_id = stored["ParentStudy"]

    nudge = orthanc.nudges.wait_for_study(study_id, timeout=orthanc.stable_age + 15)

    assert nudge.forwarded_status == 202
    # The endpoint scheduled the ingest, which mirrored the study (no order: reconciliation queue).
    study = Study.objects.get(orthanc_id=study_id)
    assert (study.ingest_status, study.number_of_instances) == ("unmatched", 1)
    assert AuditEntry.objects.filter(action="study.ingest", object_id=str(study.pk)).count() == 1


# --- the nudge endpoint --------------------------------------------------------------------------

SECRET = "endpoint-test-secret-0123456789"


@pytest.fixture
def plugin_secret(settings):
    settings.ORTHANC_PLUGIN_SECRET = SECRET
    return SECRET


def _post(client, body, secret=SECRET, content_type="application/json"):
    headers = {} if secret is None else {"HTTP_X_CARAVAN_PLUGIN_SECRET": secret}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(NUDGE_URL, data=data, content_type=content_type, **headers)


@pytest.mark.django_db
def test_nudge_endpoint_schedules_one_ingest_after_commit(
    client, plugin_secret, django_capture_on_commit_callbacks
):
    assert reverse("dicom-orthanc-nudge") == NUDGE_URL == launcher.NUDGE_PATH

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _post(client, {"change": "StableStudy", "orthanc_id": STUDY_ID, "seq": 42})

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "orthanc_id": STUDY_ID}
    assert len(callbacks) == 1  # the ingest task, sent only once the request's transaction commits
    assert Study.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1], "é" * 10])
def test_nudge_endpoint_refuses_wrong_secret(client, plugin_secret, secret):
    response = _post(client, {"change": "StableStudy", "orthanc_id": STUDY_ID, "seq": 1}, secret=secret)

    assert response.status_code == 403
    assert "X-Caravan-Plugin-Secret" in response.json()["detail"]
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"change": "StableStudy"},
        {"change": "StableStudy", "orthanc_id": "not-an-id"},
        {"change": "StableStudy", "orthanc_id": STUDY_ID.upper()},
        {"change": "StableStudy", "orthanc_id": "../" + STUDY_ID},
        {"change": "NewInstance", "orthanc_id": STUDY_ID},
        {"change": "StableStudy", "orthanc_id": STUDY_ID, "seq": -1},
        {"change": "StableStudy", "orthanc_id": STUDY_ID, "seq": "many"},
        [STUDY_ID],
        "{not json",
    ],
)
def test_nudge_endpoint_refuses_bad_body(client, plugin_secret, body):
    response = _post(client, body)

    assert response.status_code == 400
    assert response.json()
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
def test_nudge_endpoint_ignores_user_sessions(client, plugin_secret, django_user_model):
    # A logged-in user without the secret is still refused: the endpoint trusts nothing else.
    user = django_user_model.objects.create_superuser("root", "root@example.org", "pw-12345678")
    client.force_login(user)
    response = _post(client, {"change": "StableStudy", "orthanc_id": STUDY_ID}, secret=None)
    assert response.status_code == 403
    assert AuditEntry.objects.count() == 0


# --- configuration and process management --------------------------------------------------------


def test_manage_orthanc_renders_secure_config(tmp_path, settings):
    settings.ORTHANC_USERNAME = "platform"
    settings.ORTHANC_PASSWORD = "s3cret-password"
    settings.ORTHANC_PLUGIN_SECRET = "plugin-secret-0123456789"
    settings.ORTHANC_AET = "CARAVAN"
    settings.ORTHANC_ALLOWED_MODALITIES = ["VAN09@10.8.0.9:104", "MRI2@mri2.vans.internal:11112"]
    settings.PLATFORM_URL = "http://127.0.0.1:8000/"
    settings.ORTHANC_STABLE_AGE = 45

    call_command("orthanc", "--render-only", "--run-dir", str(tmp_path), "--http-port", "18042")

    path = tmp_path / "orthanc.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = json.loads(path.read_text())
    assert config["AuthenticationEnabled"] is True
    assert config["RegisteredUsers"] == {"platform": "s3cret-password"}
    assert config["RemoteAccessAllowed"] is False
    assert config["HttpPort"] == 18042
    assert config["OrthancExplorerEnabled"] is False
    assert config["WebDavEnabled"] is False
    assert config["HttpCompressionEnabled"] is False  # private link: gzip only costs CPU
    for option in (
        "DicomAlwaysAllowStore",
        "DicomAlwaysAllowEcho",
        "DicomAlwaysAllowFind",
        "DicomAlwaysAllowFindWorklist",
        "DicomAlwaysAllowGet",
        "DicomAlwaysAllowMove",
        "DicomModalitiesInDatabase",
    ):
        assert config[option] is False, option
    assert config["DicomCheckCalledAet"] is True
    assert config["DicomCheckModalityHost"] is True
    assert config["DicomAet"] == "CARAVAN"
    assert config["DicomModalities"]["VAN09"] == {
        "AET": "VAN09",
        "Host": "10.8.0.9",
        "Port": 104,
        "AllowEcho": True,
        "AllowStore": True,
        "AllowFind": False,
        "AllowFindWorklist": True,
        "AllowGet": False,
        "AllowMove": False,
        "AllowStorageCommitment": True,
    }
    assert config["DicomModalities"]["MRI2"]["Host"] == "mri2.vans.internal"
    assert config["Plugins"] == [
        "/usr/share/orthanc/plugins/libOrthancPython.so",
        "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    ]
    assert Path(config["PythonScript"]).is_absolute() and Path(config["PythonScript"]).is_file()
    assert config["DicomWeb"]["Enable"] is True and config["DicomWeb"]["Root"] == "/dicom-web/"
    assert config["StableAge"] == 45
    assert config["StorageDirectory"] == str(tmp_path / "storage")
    assert config["IndexDirectory"] == str(tmp_path / "index")
    assert config["Caravan"] == {
        "NudgeUrl": "http://127.0.0.1:8000/api/dicom/orthanc/nudge/",
        "PluginSecret": "plugin-secret-0123456789",
        "NudgeTimeout": 3.0,
    }


def test_the_rendered_config_is_the_json_template_filled_in(tmp_path, monkeypatch):
    from dicom.orthanc import orthanc_config

    template = json.loads(orthanc_config.TEMPLATE_PATH.read_text())
    config = orthanc_config.OrthancConfig(
        run_dir=tmp_path, username="u", password="p", plugin_secret="s" * 16, nudge_url="http://x/"
    )
    document = config.to_orthanc()
    assert list(document) == list(template)  # the template declares every key Orthanc gets
    for key, value in template.items():
        if value is None:
            assert document[key] is not None, key
        else:
            assert document[key] == value, key  # the fixed policy comes through unchanged

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({k: v for k, v in template.items() if k != "HttpPort"}))
    monkeypatch.setattr(orthanc_config, "TEMPLATE_PATH", broken)
    with pytest.raises(orthanc_config.LauncherError, match="broken.json has no key HttpPort"):
        config.to_orthanc()
    broken.write_text(json.dumps({**template, "DicomAet": None, "HttpThreadsCount": None}))
    with pytest.raises(orthanc_config.LauncherError, match="HttpThreadsCount left unset"):
        config.to_orthanc()


def test_manage_orthanc_refuses_bad_settings(tmp_path, settings):
    settings.ORTHANC_ALLOWED_MODALITIES = ["VAN09-without-address"]
    with pytest.raises(CommandError, match="AET@host:port"):
        call_command("orthanc", "--render-only", "--run-dir", str(tmp_path))
    settings.ORTHANC_ALLOWED_MODALITIES = []
    settings.ORTHANC_PLUGIN_SECRET = "short"
    with pytest.raises(CommandError, match="plugin secret"):
        call_command("orthanc", "--render-only", "--run-dir", str(tmp_path))
    assert not (tmp_path / "orthanc.json").exists()


@pytest.mark.orthanc
def test_manage_orthanc_starts_and_stops_by_pid(tmp_path, settings, orthanc_server):
    # orthanc_server only guarantees Orthanc is installed; this test runs its own instance.
    http_port, dicom_port = free_ports(2)
    settings.ORTHANC_PLUGIN_SECRET = "plugin-secret-0123456789"
    run_dir = tmp_path / "run"
    args = ["--run-dir", str(run_dir), "--http-port", str(http_port), "--dicom-port", str(dicom_port)]
    try:
        call_command("orthanc", *args, "--stable-age", "5")
        pid = int((run_dir / "orthanc.pid").read_text())
        assert launcher.read_pid(run_dir) == pid
        client = OrthancClient(
            f"http://127.0.0.1:{http_port}", settings.ORTHANC_USERNAME, settings.ORTHANC_PASSWORD
        )
        assert client.system()["DicomPort"] == dicom_port
        environ = (Path(f"/proc/{pid}/environ").read_bytes()).split(b"\0")
        assert b"TCP_NODELAY=1" in environ
        with pytest.raises(CommandError, match="already running"):
            call_command("orthanc", *args)
    finally:
        call_command("orthanc", "--stop", "--run-dir", str(run_dir))
    assert not (run_dir / "orthanc.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert launcher.read_pid(run_dir) is None
    assert launcher.stop(run_dir) is False


# --- launcher units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VAN01@127.0.0.1:104", launcher.Modality("VAN01", "127.0.0.1", 104)),
        (" CT_VAN_3@ct3.vans:11112 ", launcher.Modality("CT_VAN_3", "ct3.vans", 11112)),
        ("MR@[::1]:4242", launcher.Modality("MR", "::1", 4242)),
    ],
)
def test_modality_parse(text, expected):
    assert launcher.Modality.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "VAN01",
        "VAN01@host",
        "@host:104",
        "VAN01@:104",
        "VAN01@host:0",
        "VAN01@host:port",
        "A" * 17 + "@h:1",
        "A\\B@h:1",
    ],
)
def test_modality_parse_refuses(text):
    with pytest.raises(launcher.LauncherError):
        launcher.Modality.parse(text)


def test_modalities_must_be_unique():
    with pytest.raises(launcher.LauncherError, match="twice"):
        launcher.parse_modalities("VAN01@a:104,VAN01@b:104")


def test_config_from_env(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text("from-a-file\n")
    config = launcher.config_from_env(
        {
            "ORTHANC_URL": "http://127.0.0.1:9042",
            "ORTHANC_PASSWORD_FILE": str(secret_file),
            "ORTHANC_PLUGIN_SECRET": "x" * 16,
            "ORTHANC_ALLOWED_MODALITIES": "VAN01@10.0.0.1:104",
            "PLATFORM_URL": "http://web:8000",
            "ORTHANC_STABLE_AGE": "5",
        },
        run_dir=tmp_path,
    )
    assert (config.http_port, config.dicom_port, config.stable_age) == (9042, 4242, 5)
    assert config.password == "from-a-file"
    assert config.nudge_url == "http://web:8000/api/dicom/orthanc/nudge/"
    assert config.modalities == (launcher.Modality("VAN01", "10.0.0.1", 104),)
    with pytest.raises(launcher.LauncherError, match="CARAVAN_ENV=production"):
        launcher.config_from_env({"CARAVAN_ENV": "production"}, run_dir=tmp_path)


def test_launcher_cli_runs_on_bare_system_python(tmp_path):
    # The container image has only the system Python: no Django, no virtualenv.
    launcher_py = Path(launcher.__file__)
    result = subprocess.run(
        [
            "/usr/bin/python3",
            "-I",
            str(launcher_py),
            "render",
            "--run-dir",
            str(tmp_path),
            "--dicom-port",
            "11112",
        ],
        env={"PATH": "/usr/bin:/bin", "ORTHANC_ALLOWED_MODALITIES": "VAN01@127.0.0.1:104"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "orthanc.json").read_text())
    assert (config["DicomPort"], list(config["DicomModalities"])) == (11112, ["VAN01"])

    refused = subprocess.run(
        ["/usr/bin/python3", "-I", str(launcher_py), "render", "--run-dir", str(tmp_path / "prod")],
        env={"PATH": "/usr/bin:/bin", "CARAVAN_ENV": "production"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1
    assert "must be set when CARAVAN_ENV=production" in refused.stderr
    assert not (tmp_path / "prod" / "orthanc.json").exists()


def test_orthanc_environment_drops_virtualenv_python():
    env = launcher.orthanc_environment({"PATH": "/usr/bin", "PYTHONPATH": "/venv", "VIRTUAL_ENV": "/venv"})
    assert env == {"PATH": "/usr/bin", "TCP_NODELAY": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def test_factory_series_shares_study_and_series():
    series = ct_series(4)
    assert len({ds.SOPInstanceUID for ds in series}) == 4
    assert len({(ds.StudyInstanceUID, ds.SeriesInstanceUID) for ds in series}) == 1
    assert [ds.InstanceNumber for ds in series] == [1, 2, 3, 4]
    assert series[0].PixelData != series[1].PixelData
