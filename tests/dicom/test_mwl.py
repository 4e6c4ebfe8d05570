"""The Modality Worklist: booked orders reach a van's scanner through Orthanc.

End to end: orders booked through the service, a real Orthanc (tests/orthanc_fixture.py) whose
Python plugin asks the live Django endpoint (through the fixture's recorder), and DCMTK's
``findscu -W`` as the scanner. Then the endpoint on its own: secret, parameters, content.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEntry
from dicom.api.views import PLUGIN_SECRET_HEADER
from dicom.models import Order
from dicom.orthanc import launcher, orthanc_config
from dicom.services.orders import order_cancel, order_create, order_mark_acquired, order_mark_in_progress
from fleet.services import equipment_qc_record
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory, bookable
from tests.fleet.factories import UnitFactory, qc_pass_today
from tests.orthanc_fixture import free_ports

WORKLIST_URL = "/api/dicom/orthanc/worklist/"
FINDSCU = shutil.which("findscu")

# Return keys a scanner typically asks for; the date key is added per query.
RETURN_KEYS = [
    "AccessionNumber",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
]


def _da(day: datetime.date) -> str:
    return day.strftime("%Y%m%d")


def findscu(orthanc, out_dir: Path, *, calling_aet: str, date: str | None, extra: list[str] = ()):
    """Run ``findscu -W`` like a scanner and return (exit code, responses read back, output)."""
    if FINDSCU is None:
        pytest.fail("findscu (dcmtk) is required: apt-get install dcmtk", pytrace=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = list(RETURN_KEYS) + list(extra)
    date_key = "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate"
    keys.append(f"{date_key}={date}" if date is not None else date_key)
    command = [FINDSCU, "-W", "-aet", calling_aet, "-aec", orthanc.aet, "-to", "10", "-ta", "10"]
    command += ["-td", "30", "-X", "-od", str(out_dir)]
    for key in keys:
        command += ["-k", key]
    command += ["127.0.0.1", str(orthanc.dicom_port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    responses = [pydicom.dcmread(path) for path in sorted(out_dir.glob("rsp*.dcm"))]
    return result.returncode, responses, result.stdout + result.stderr


def _by_accession(responses) -> dict[str, pydicom.Dataset]:
    return {ds.AccessionNumber: ds for ds in responses}


@pytest.fixture
def world(orthanc):
    """A hospital booking on two vans whose AE titles Orthanc whitelists."""
    hospital = HospitalFactory()
    booker = UserFactory(organisation=hospital, roles=["hospital_user"])
    ct = UnitFactory(modality="CT", ae_title=orthanc.scu_aet, name="CT van (MWL)")
    mr = UnitFactory(modality="MR", ae_title=orthanc.scu_aet_second, name="MR van (MWL)")
    qc_pass_today(ct)
    qc_pass_today(mr)
    today = timezone.localdate()
    tomorrow = today + datetime.timedelta(days=1)
    for unit, day in ((ct, today), (ct, tomorrow), (mr, today)):
        bookable(unit, hospital, day)  # contracted, licensed, visiting that day

    def book(unit, day, patient_id, name, **extra):
        return order_create(
            actor=booker,
            hospital=hospital,
            unit=unit,
            scheduled_date=day,
            requested_procedure=f"{unit.modality} {extra.get('body_part', 'HEAD')}",
            modality=unit.modality,
            body_part=extra.get("body_part", "HEAD"),
            priority=extra.get("priority", "ROUTINE"),
            patient_id=patient_id,
            patient_name=name,
            patient_sex="F",
            patient_birth_date=datetime.date(1970, 1, 2),
        )

    orders = {
        "ct_today_1": book(ct, today, "MWL-P1", "WANG^FANG"),
        "ct_today_2": book(ct, today, "MWL-P2", "MÜLLER^JOSÉ", body_part="CHEST", priority="STAT"),
        "ct_today_started": book(ct, today, "MWL-P3", "LIU^YANG"),
        "ct_today_cancelled": book(ct, today, "MWL-P4", "CHEN^JING"),
        "ct_today_acquired": book(ct, today, "MWL-P5", "ZHAO^LEI"),
        "ct_tomorrow": book(ct, tomorrow, "MWL-P6", "SUN^LI"),
        "mr_today": book(mr, today, "MWL-P7", "ZHOU^MIN", body_part="KNEE"),
    }
    order_mark_in_progress(order=orders["ct_today_started"])
    order_cancel(actor=booker, order=orders["ct_today_cancelled"], reason="duplicate booking")
    order_mark_acquired(order=orders["ct_today_acquired"])
    return {"today": today, "tomorrow": tomorrow, "orders": orders, "ct": ct, "mr": mr}


@pytest.mark.orthanc
@pytest.mark.django_db(transaction=True)
def test_scanner_sees_exactly_its_orders_for_the_day(orthanc, live_server, world, tmp_path):
    orthanc.nudges.forward_to = live_server.url
    orders = world["orders"]

    code, responses, output = findscu(
        orthanc, tmp_path / "ct", calling_aet=orthanc.scu_aet, date=_da(world["today"])
    )

    assert code == 0, output
    found = _by_accession(responses)
    expected = [orders[k] for k in ("ct_today_1", "ct_today_2", "ct_today_started")]
    assert sorted(found) == sorted(o.accession_number for o in expected)
    for order in expected:
        ds = found[order.accession_number]
        assert ds.PatientID == order.patient_id
        assert ds.StudyInstanceUID == order.study_instance_uid
        assert str(ds.PatientName) == order.patient_name
        assert ds.PatientBirthDate == "19700102"
        assert ds.PatientSex == "F"
        assert ds.RequestedProcedureID == order.accession_number
        assert ds.RequestedProcedureDescription == order.requested_procedure
        step = ds.ScheduledProcedureStepSequence[0]
        assert step.Modality == "CT"
        assert step.ScheduledStationAETitle == orthanc.scu_aet
        assert step.ScheduledProcedureStepStartDate == _da(world["today"])
        assert step.ScheduledProcedureStepID == order.accession_number
    # The worklist answer is Latin-1 (Orthanc's DefaultEncoding); pydicom decodes it back.
    assert str(found[orders["ct_today_2"].accession_number].PatientName) == "MÜLLER^JOSÉ"

    request = orthanc.nudges.worklist_requests[-1]
    assert request.forwarded_status == 200
    assert request.headers[PLUGIN_SECRET_HEADER] == orthanc.plugin_secret
    entry = AuditEntry.objects.filter(action="orthanc.worklist").latest("id")
    assert (entry.object_type, entry.object_id, entry.patient_data, entry.actor_id) == (
        "dicom.worklist",
        orthanc.scu_aet,
        True,
        None,
    )
    assert sorted(entry.details_data["orders"]) == sorted(o.pk for o in expected)

    # The log names the AE title and the count, never a patient.
    log = orthanc.log_text()
    assert f"worklist for {orthanc.scu_aet} ({_da(world['today'])}): 3 of 3 items match" in log
    for order in orders.values():
        for value in (order.patient_id, order.patient_name.split("^")[0], order.accession_number):
            assert value not in log
        assert order.study_instance_uid not in log
    assert orthanc.plugin_secret not in log


@pytest.mark.orthanc
@pytest.mark.django_db(transaction=True)
def test_each_van_sees_only_its_own_worklist(orthanc, live_server, world, tmp_path):
    orthanc.nudges.forward_to = live_server.url
    orders = world["orders"]

    code, responses, output = findscu(
        orthanc, tmp_path / "mr", calling_aet=orthanc.scu_aet_second, date=_da(world["today"])
    )

    assert code == 0, output
    assert [ds.AccessionNumber for ds in responses] == [orders["mr_today"].accession_number]
    assert responses[0].PatientID == "MWL-P7"
    assert responses[0].StudyInstanceUID == orders["mr_today"].study_instance_uid
    assert responses[0].ScheduledProcedureStepSequence[0].Modality == "MR"

    # Asking for another van's station gets nothing: the plugin fetches the caller's own items.
    code, responses, output = findscu(
        orthanc,
        tmp_path / "mr-as-ct",
        calling_aet=orthanc.scu_aet_second,
        date=_da(world["today"]),
        extra=[f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={orthanc.scu_aet}"],
    )
    assert code == 0, output
    assert responses == []


@pytest.mark.orthanc
@pytest.mark.django_db(transaction=True)
def test_a_van_whose_daily_qc_failed_gets_an_empty_worklist(orthanc, live_server, world, tmp_path):
    orthanc.nudges.forward_to = live_server.url
    # A later failing phantom check supersedes the morning's pass: the van is on QC hold.
    equipment_qc_record(
        actor=None, unit=world["ct"], measurements={"hu_mean": 0.5, "noise_sd": 7.2, "uniformity_hu": 2}
    )

    code, responses, output = findscu(
        orthanc, tmp_path / "ct-held", calling_aet=orthanc.scu_aet, date=_da(world["today"])
    )

    assert code == 0, output
    assert responses == []
    assert orthanc.nudges.worklist_requests[-1].forwarded_status == 200
    entry = AuditEntry.objects.filter(action="orthanc.worklist").latest("id")
    assert (entry.patient_data, entry.details_data["orders"]) == (False, [])
    # The other van passed its check and is served as usual.
    code, responses, output = findscu(
        orthanc, tmp_path / "mr", calling_aet=orthanc.scu_aet_second, date=_da(world["today"])
    )
    assert [ds.AccessionNumber for ds in responses] == [world["orders"]["mr_today"].accession_number]


@pytest.mark.orthanc
@pytest.mark.django_db(transaction=True)
def test_tomorrow_a_range_and_no_date(orthanc, live_server, world, tmp_path):
    orthanc.nudges.forward_to = live_server.url
    orders = world["orders"]
    today, tomorrow = _da(world["today"]), _da(world["tomorrow"])

    _, responses, _ = findscu(orthanc, tmp_path / "tomorrow", calling_aet=orthanc.scu_aet, date=tomorrow)
    assert [ds.AccessionNumber for ds in responses] == [orders["ct_tomorrow"].accession_number]

    _, responses, _ = findscu(
        orthanc, tmp_path / "range", calling_aet=orthanc.scu_aet, date=f"{today}-{tomorrow}"
    )
    assert sorted(ds.AccessionNumber for ds in responses) == sorted(
        orders[k].accession_number for k in ("ct_today_1", "ct_today_2", "ct_today_started", "ct_tomorrow")
    )
    assert orthanc.nudges.worklist_requests[-1].path.endswith(f"date={today}-{tomorrow}")

    # Open-ended: from tomorrow on (the plugin closes the range).
    _, responses, _ = findscu(orthanc, tmp_path / "open", calling_aet=orthanc.scu_aet, date=f"{tomorrow}-")
    assert [ds.AccessionNumber for ds in responses] == [orders["ct_tomorrow"].accession_number]

    # Open-ended the other way: up to today (closed 31 days back).
    _, responses, _ = findscu(orthanc, tmp_path / "upto", calling_aet=orthanc.scu_aet, date=f"-{today}")
    assert len(responses) == 3
    assert orthanc.nudges.worklist_requests[-1].path.endswith(f"-{today}")

    # No date in the query: the platform's today.
    _, responses, _ = findscu(orthanc, tmp_path / "nodate", calling_aet=orthanc.scu_aet, date=None)
    assert len(responses) == 3
    assert "date=" not in orthanc.nudges.worklist_requests[-1].path

    # Orthanc's matcher applies the other keys, e.g. a modality the van does not have.
    _, responses, _ = findscu(
        orthanc,
        tmp_path / "modality",
        calling_aet=orthanc.scu_aet,
        date=today,
        extra=["ScheduledProcedureStepSequence[0].Modality=MR"],
    )
    assert responses == []


@pytest.mark.orthanc
def test_a_van_that_is_not_whitelisted_is_refused(orthanc, tmp_path):
    code, responses, output = findscu(orthanc, tmp_path / "rogue", calling_aet="ROGUE_VAN", date=None)

    assert code != 0
    assert responses == []
    assert "Association Rejected" in output or "rejected" in output.lower()
    assert orthanc.nudges.worklist_requests == []


@pytest.mark.orthanc
@pytest.mark.parametrize(
    ("fail_with", "reply", "reason"),
    [
        (503, None, "the platform answered HTTP 503"),
        (403, None, "the platform answered HTTP 403"),
        (None, b"not json", "JSONDecodeError: invalid JSON"),
        (None, b'{"items": "nope"}', "the platform's answer has no list of items"),
        (
            None,
            b'{"items": [{"PatientName": "X", "NoSuchTag": "1"}]}',
            "an item could not be encoded (ValueError)",
        ),
    ],
)
def test_platform_errors_answer_nothing_and_log_no_patient_data(orthanc, tmp_path, fail_with, reply, reason):
    orthanc.nudges.fail_with = fail_with
    if reply is not None:
        orthanc.nudges.worklist_reply = reply

    code, responses, output = findscu(orthanc, tmp_path / "err", calling_aet=orthanc.scu_aet, date="20300101")

    assert code == 0, output
    assert responses == []
    assert len(orthanc.nudges.worklist_requests) == 1
    assert f"worklist for {orthanc.scu_aet} (20300101) not served: {reason}" in orthanc.log_text()


@pytest.mark.orthanc
def test_an_unsupported_date_answers_nothing(orthanc, tmp_path):
    code, responses, output = findscu(orthanc, tmp_path / "bad", calling_aet=orthanc.scu_aet, date="2030")
    assert code == 0, output
    assert responses == []
    assert orthanc.nudges.worklist_requests == []
    assert f"worklist for {orthanc.scu_aet} (today) not served: unsupported" in orthanc.log_text()


@pytest.mark.orthanc
def test_plugin_derives_the_worklist_url_when_the_configuration_has_none(orthanc_server, tmp_path):
    # What `manage.py orthanc` renders: NudgeUrl only. The plugin serves the same platform.
    http_port, dicom_port = free_ports(2)
    config = launcher.OrthancConfig(
        run_dir=tmp_path / "run",
        username="u",
        password="p",
        plugin_secret="s" * 16,
        nudge_url="http://127.0.0.1:9/api/dicom/orthanc/nudge/",
        http_port=http_port,
        dicom_port=dicom_port,
    )
    assert "WorklistUrl" not in config.to_orthanc()["Caravan"]
    try:
        launcher.start(config, timeout=30)
        log = config.log_path.read_text()
    finally:
        launcher.stop(config.run_dir)
    assert "Modality Worklist items come from http://127.0.0.1:9/api/dicom/orthanc/worklist/" in log


def test_rendered_configuration_has_the_worklist_url(tmp_path):
    config = orthanc_config.config_from_env(
        {"PLATFORM_URL": "http://web:8000", "ORTHANC_PLUGIN_SECRET": "s" * 16}, run_dir=tmp_path
    )
    caravan = config.to_orthanc()["Caravan"]
    assert caravan["WorklistUrl"] == "http://web:8000/api/dicom/orthanc/worklist/"
    assert caravan["WorklistTimeout"] == 5.0
    override = orthanc_config.config_from_env(
        {"ORTHANC_WORKLIST_URL": "https://platform.internal/api/dicom/orthanc/worklist/"}, run_dir=tmp_path
    )
    assert override.to_orthanc()["Caravan"]["WorklistUrl"].startswith("https://platform.internal/")
    with pytest.raises(orthanc_config.LauncherError, match="worklist URL"):
        orthanc_config.config_from_env({"ORTHANC_WORKLIST_URL": "ftp://x/"}, run_dir=tmp_path)


# --- the endpoint ----------------------------------------------------------------------------------

SECRET = "worklist-test-secret-0123456789"


@pytest.fixture
def plugin_client(settings):
    settings.ORTHANC_PLUGIN_SECRET = SECRET
    client = APIClient()
    client.credentials(**{"HTTP_X_CARAVAN_PLUGIN_SECRET": SECRET})
    return client


@pytest.mark.django_db
def test_endpoint_returns_dicom_keyword_items(plugin_client):
    unit = UnitFactory(modality="CT", ae_title="WLVAN01")
    qc_pass_today(unit)
    order = OrderFactory(unit=unit, priority="URGENT", patient_name="WANG^FANG", patient_id="E-1")
    OrderFactory(unit=unit, scheduled_date=order.scheduled_date, status="cancelled")
    OrderFactory(unit=UnitFactory(ae_title="WLVAN02"), scheduled_date=order.scheduled_date)

    response = plugin_client.get(WORKLIST_URL, {"aet": "WLVAN01", "date": _da(order.scheduled_date)})

    assert response.status_code == 200
    body = response.json()
    day = _da(order.scheduled_date)
    assert (body["aet"], body["from"], body["to"]) == ("WLVAN01", day, day)
    assert body["items"] == [
        {
            "AccessionNumber": order.accession_number,
            "InstitutionName": order.hospital.name,
            "PatientName": "WANG^FANG",
            "PatientID": "E-1",
            "PatientBirthDate": "19610314",
            "PatientSex": "M",
            "StudyInstanceUID": order.study_instance_uid,
            "RequestedProcedureDescription": order.requested_procedure,
            "RequestedProcedureID": order.accession_number,
            "RequestedProcedurePriority": "HIGH",
            "ScheduledProcedureStepSequence": [
                {
                    "Modality": "CT",
                    "ScheduledStationAETitle": "WLVAN01",
                    "ScheduledProcedureStepStartDate": day,
                    "ScheduledProcedureStepStartTime": "000000",
                    "ScheduledProcedureStepID": order.accession_number,
                    "ScheduledProcedureStepDescription": order.requested_procedure,
                    "ScheduledProcedureStepStatus": "SCHEDULED",
                }
            ],
        }
    ]
    entry = AuditEntry.objects.get(action="orthanc.worklist")
    assert (entry.object_id, entry.patient_data, entry.source_ip) == ("WLVAN01", True, "127.0.0.1")
    assert entry.details_data == {
        "from": order.scheduled_date.isoformat(),
        "orders": [order.pk],
        "to": entry.details_data["from"],
    }


@pytest.mark.django_db
def test_endpoint_defaults_to_today_and_knows_no_unknown_van(plugin_client):
    unit = UnitFactory(ae_title="WLVAN03")
    qc_pass_today(unit)
    today = OrderFactory(unit=unit, scheduled_date=timezone.localdate())
    OrderFactory(unit=unit, scheduled_date=timezone.localdate() + datetime.timedelta(days=1))

    body = plugin_client.get(WORKLIST_URL, {"aet": "WLVAN03"}).json()
    assert [item["AccessionNumber"] for item in body["items"]] == [today.accession_number]
    assert body["from"] == body["to"] == _da(timezone.localdate())

    unknown = plugin_client.get(WORKLIST_URL, {"aet": "NOBODY"})
    assert unknown.status_code == 200
    assert unknown.json()["items"] == []
    assert AuditEntry.objects.filter(action="orthanc.worklist", patient_data=False).count() == 1


@pytest.mark.django_db
def test_endpoint_range(plugin_client):
    unit = UnitFactory(ae_title="WLVAN04")
    qc_pass_today(unit)
    start = timezone.localdate()
    orders = [OrderFactory(unit=unit, scheduled_date=start + datetime.timedelta(days=d)) for d in (0, 1, 2)]
    body = plugin_client.get(
        WORKLIST_URL, {"aet": "WLVAN04", "date": f"{_da(start)}-{_da(start + datetime.timedelta(days=1))}"}
    ).json()
    assert [item["AccessionNumber"] for item in body["items"]] == [o.accession_number for o in orders[:2]]


@pytest.mark.django_db
@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
def test_endpoint_refuses_a_wrong_secret(settings, secret):
    settings.ORTHANC_PLUGIN_SECRET = SECRET
    unit = UnitFactory(ae_title="WLVAN05")
    OrderFactory(unit=unit)
    headers = {} if secret is None else {"HTTP_X_CARAVAN_PLUGIN_SECRET": secret}
    response = APIClient().get(WORKLIST_URL, {"aet": "WLVAN05"}, **headers)
    assert response.status_code == 403
    assert PLUGIN_SECRET_HEADER in response.json()["detail"]
    assert "items" not in response.json()
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
def test_endpoint_ignores_user_sessions(settings, django_user_model):
    settings.ORTHANC_PLUGIN_SECRET = SECRET
    client = APIClient()
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw-12345678"))
    assert client.get(WORKLIST_URL, {"aet": "VAN01"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"aet": "VAN01", "date": "2025-01-01"},
        {"aet": "VAN01", "date": "20251301"},
        {"aet": "VAN01", "date": "20250230"},
        {"aet": "VAN01", "date": "today"},
        {"aet": "VAN01", "date": "20250101-"},
        {"aet": "VAN01", "date": "20250102-20250101"},
        {"aet": "VAN01", "date": "20250101-20250301"},
        {"date": "20250101"},
        {"aet": ""},
        {"aet": "A" * 17},
        {"aet": "VAN\\01"},
    ],
)
def test_endpoint_refuses_bad_parameters(plugin_client, params):
    response = plugin_client.get(WORKLIST_URL, params)
    assert response.status_code == 400
    assert response.json()
    assert AuditEntry.objects.count() == 0
    assert Order.objects.count() == 0
