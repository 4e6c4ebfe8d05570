"""ATNA (DICOM PS3.15 A.5) export parsed back, RFC 5424 lines, the command and the download."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from io import StringIO
from xml.etree import ElementTree as ET

import pytest
from django.core.management import call_command
from django.test import Client

from core.choices import Role
from core.models import AuditEntry
from core.services.audit_export import atna_messages, event_kind, syslog_lines
from tests.core.audit_support import operator_user, record_at
from tests.core.factories import UserFactory

pytestmark = pytest.mark.django_db
WHEN = datetime(2026, 11, 20, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def entries():
    # One operator's staff: its QC officer downloads their entries (tenancy: test_audit_tenancy.py).
    staff = operator_user().organisation
    reader = UserFactory(username="dr.reader", roles=[Role.RADIOLOGIST], organisation=staff)
    admin = UserFactory(username="boss", roles=[Role.ADMIN], organisation=staff)
    view = record_at(
        WHEN,
        actor=reader,
        action="study.view",
        object_type="dicom.study",
        object_id="1.2.840.99.1",
        patient_data=True,
        patient_id="PX-1",
        source_ip="10.1.2.3",
        details={"frames": 3},
    )
    export = record_at(
        WHEN,
        actor=reader,
        action="report.download",
        object_type="telerad.report",
        object_id="42",
        patient_data=True,
        patient_id="PX-1",
    )
    role = record_at(
        WHEN,
        actor=admin,
        action="user.role_assign",
        object_type="core.user",
        object_id=str(reader.pk),
        details={"role": "radiologist"},
        source_ip="::1",
    )
    system = record_at(
        WHEN, actor=None, action="plan.publish_refused", object_type="fleet.plan", object_id="7"
    )
    return {
        "view": view,
        "export": export,
        "role": role,
        "system": system,
        "reader": reader,
        "admin": admin,
        "staff": staff,
    }


def _coded(element, code: str, system: str, text: str) -> None:
    assert element is not None
    assert (element.get("csd-code"), element.get("codeSystemName"), element.get("originalText")) == (
        code,
        system,
        text,
    )


def _check_required(message: ET.Element) -> None:
    """Every element and attribute PS3.15 A.5.1 requires, in schema order."""
    assert message.tag == "AuditMessage"
    tags = [child.tag for child in message]
    assert tags[0] == "EventIdentification"
    n_participants = tags.count("ActiveParticipant")
    assert n_participants >= 1 and tags[1 : 1 + n_participants] == ["ActiveParticipant"] * n_participants
    assert tags[1 + n_participants] == "AuditSourceIdentification"
    assert set(tags[2 + n_participants :]) <= {"ParticipantObjectIdentification"}
    event = message.find("EventIdentification")
    assert event.get("EventActionCode") in {"C", "R", "U", "D", "E"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event.get("EventDateTime"))
    assert event.get("EventOutcomeIndicator") in {"0", "4", "8", "12"}
    event_id = event.find("EventID")
    for attr in ("csd-code", "codeSystemName", "originalText"):
        assert event_id.get(attr)
    for participant in message.findall("ActiveParticipant"):
        assert participant.get("UserID")
        assert participant.get("UserIsRequestor") in {"true", "false"}
        for role in participant.findall("RoleIDCode"):
            assert role.get("csd-code") and role.get("codeSystemName") and role.get("originalText")
    assert sum(p.get("UserIsRequestor") == "true" for p in message.findall("ActiveParticipant")) == 1
    assert message.find("AuditSourceIdentification").get("AuditSourceID")
    for obj in message.findall("ParticipantObjectIdentification"):
        assert obj.get("ParticipantObjectID")
        assert obj.get("ParticipantObjectTypeCode") in {"1", "2", "3", "4"}
        assert obj.get("ParticipantObjectTypeCodeRole")
        id_type = obj.find("ParticipantObjectIDTypeCode")
        assert id_type is not None and id_type.get("csd-code") and id_type.get("codeSystemName")
        assert id_type.get("originalText")
        assert list(obj)[0].tag == "ParticipantObjectIDTypeCode"


def _parse(entries) -> list[ET.Element]:
    return [ET.fromstring(xml) for xml in atna_messages(entries)]


def test_patient_data_read_as_dicom_instances_accessed(entries, settings):
    settings.AUDIT_SOURCE_ID = "caravan-hubei"
    (message,) = _parse([entries["view"]])
    _check_required(message)
    event = message.find("EventIdentification")
    assert event.attrib == {
        "EventActionCode": "R",
        "EventDateTime": "2026-11-20T08:30:15.123456Z",
        "EventOutcomeIndicator": "0",
    }
    _coded(event.find("EventID"), "110103", "DCM", "DICOM Instances Accessed")
    _coded(event.find("EventTypeCode"), "study.view", "Caravan", "study.view")
    person, application = message.findall("ActiveParticipant")
    assert person.attrib == {
        "UserID": "dr.reader",
        "AlternativeUserID": str(entries["reader"].pk),
        "UserName": "dr.reader",
        "UserIsRequestor": "true",
        "NetworkAccessPointID": "10.1.2.3",
        "NetworkAccessPointTypeCode": "2",
    }
    _coded(person.find("RoleIDCode"), "radiologist", "Caravan", "Radiologist")
    assert (application.get("UserID"), application.get("UserIsRequestor")) == ("caravan", "false")
    _coded(application.find("RoleIDCode"), "110150", "DCM", "Application")
    assert message.find("AuditSourceIdentification").get("AuditSourceID") == "caravan-hubei"
    patient, study = message.findall("ParticipantObjectIdentification")
    assert (
        patient.get("ParticipantObjectID"),
        patient.get("ParticipantObjectTypeCode"),
        patient.get("ParticipantObjectTypeCodeRole"),
    ) == ("PX-1", "1", "1")
    _coded(patient.find("ParticipantObjectIDTypeCode"), "2", "RFC-3881", "Patient Number")
    assert study.get("ParticipantObjectID") == "1.2.840.99.1"
    _coded(study.find("ParticipantObjectIDTypeCode"), "110180", "DCM", "Study Instance UID")
    detail = study.find("ParticipantObjectDetail")
    assert detail.get("type") == "caravan-details"
    assert json.loads(base64.b64decode(detail.get("value"))) == {"frames": 3}


def test_export_security_alert_and_system_failure(entries):
    export, role, system = _parse([entries["export"], entries["role"], entries["system"]])
    for message in (export, role, system):
        _check_required(message)
    _coded(export.find("EventIdentification/EventID"), "110106", "DCM", "Export")
    assert export.find("EventIdentification").get("EventActionCode") == "R"
    assert export.find("ActiveParticipant").get("NetworkAccessPointID") is None  # no source IP recorded

    event = role.find("EventIdentification")
    _coded(event.find("EventID"), "110113", "DCM", "Security Alert")
    assert event.get("EventActionCode") == "E"
    first_type, local_type = event.findall("EventTypeCode")
    _coded(first_type, "110136", "DCM", "Security Roles Changed")
    _coded(local_type, "user.role_assign", "Caravan", "user.role_assign")
    (user_object,) = role.findall("ParticipantObjectIdentification")  # no patient
    assert user_object.attrib == {
        "ParticipantObjectID": str(entries["reader"].pk),
        "ParticipantObjectTypeCode": "1",
        "ParticipantObjectTypeCodeRole": "11",
    }
    assert role.find("ActiveParticipant").get("NetworkAccessPointID") == "::1"

    event = system.find("EventIdentification")
    assert event.get("EventOutcomeIndicator") == "4"  # refused
    _coded(event.find("EventID"), "plan.publish_refused", "Caravan", "plan.publish_refused")
    (application,) = system.findall("ActiveParticipant")
    assert (application.get("UserID"), application.get("UserIsRequestor")) == ("caravan", "true")


def test_event_mapping_table():
    assert event_kind("study.search").event_id.code == "110112"
    assert event_kind("auth.login").type_code.code == "110122"
    assert event_kind("audit.export").event_id.code == "110101"
    assert event_kind("task.claim").event_id.code == "110111"
    assert event_kind("visit.create").action_code == "C"


SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 "
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)) "
    r"(?P<host>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) (?P<procid>[\x21-\x7e]{1,128}) "
    r"(?P<msgid>[\x21-\x7e]{1,32}) "
    r'(?P<sd>-|(\[[^ =\]"]+( [^ =\]"]+="([^"\\\]]|\\["\\\]])*")*\])+) '
    r"\ufeff(?P<msg><AuditMessage>.*</AuditMessage>)$"
)


def test_syslog_lines_are_rfc5424_with_atna_xml(entries):
    lines = list(syslog_lines([entries["view"], entries["system"]], hostname="caravan host"))
    view, system = (SYSLOG.match(line) for line in lines)
    assert view and system, lines
    assert (view["pri"], system["pri"]) == ("85", "84")  # authpriv.notice, authpriv.warning (refused)
    assert view["ts"] == "2026-11-20T08:30:15.123456Z"
    assert (view["host"], view["app"], view["procid"], view["msgid"]) == (
        "caravan_host",
        "caravan",
        "-",
        "IHE+RFC-3881",
    )
    entry = entries["view"]
    assert view["sd"] == f'[caravan@32473 entry="{entry.pk}" hash="{entry.hash}" action="study.view"]'
    assert "\n" not in lines[0]
    _check_required(ET.fromstring(view["msg"]))


def test_command_exports_a_date_range(entries, tmp_path):
    record_at(datetime(2026, 11, 21, 0, 0, tzinfo=UTC), actor=None, action="plan.compute")  # next day: out
    out = tmp_path / "audit.xml"
    call_command("audit_export", "--start", "2026-11-20", "--end", "2026-11-20", "--output", str(out))
    document = ET.parse(out).getroot()
    assert document.tag == "AuditMessages"
    messages = list(document)
    assert len(messages) == 4
    for message in messages:
        _check_required(message)
    local = "EventIdentification/EventTypeCode[@codeSystemName='Caravan']"
    assert [m.find(local).get("csd-code") for m in messages] == [
        "study.view",
        "report.download",
        "user.role_assign",
        "plan.publish_refused",
    ]
    last = AuditEntry.objects.order_by("-id").first()
    assert last.action == "audit.export" and last.actor_id is None
    assert last.details_data == {
        "filters": {"start": "2026-11-20", "end": "2026-11-20"},
        "format": "atna",
        "via": "command",
    }

    stdout = StringIO()
    call_command(
        "audit_export",
        "--start",
        "2026-11-20T00:00:00Z",
        "--end",
        "2026-11-21T00:00:00Z",
        "--format",
        "syslog",
        "--hostname",
        "h1",
        stdout=stdout,
    )
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 4 and all(SYSLOG.match(line) for line in lines)


def test_download_streams_the_filtered_range(entries):
    client = Client()
    client.force_login(UserFactory(organisation=entries["staff"], roles=[Role.QC_OFFICER]))
    response = client.get("/workspace/quality/audit/", {"export": "atna", "patient_id": "PX-1"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("application/xml")
    assert "attachment;" in response["Content-Disposition"]
    document = ET.fromstring(b"".join(response.streaming_content))
    # The export's own record names the patient searched, so it is part of the export.
    codes = [m.find("EventIdentification/EventID").get("csd-code") for m in document]
    assert codes == ["110103", "110106", "110101"]
    last = AuditEntry.objects.order_by("-id").first()
    assert (last.action, last.patient_id) == ("audit.export", "PX-1")

    response = client.get("/workspace/quality/audit/", {"export": "syslog", "actor": "boss"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert response["Content-Type"].startswith("text/plain") and len(lines) == 1 and SYSLOG.match(lines[0])
