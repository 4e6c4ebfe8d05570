"""Audit entries as DICOM PS3.15 Annex A.5 / IHE ATNA audit messages, and RFC 5424 syslog lines.

One ``<AuditMessage>`` per entry, built with the standard library. The mapping from our action
names to DICOM event IDs is ``EVENT_MAP`` (documented in docs/audit.md); an action it does not
cover keeps a local code (codeSystemName ``Caravan``), and every message also carries the exact
action as an ``EventTypeCode`` so nothing is lost in translation.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from xml.etree import ElementTree as ET  # noqa: S405 - we only build XML here, never parse it

from django.conf import settings

from core.audit_checkpoints import Checkpoint
from core.choices import Role
from core.models import AuditEntry
from core.services.audit import audit_checkpoints

LOCAL_CODE_SYSTEM = "Caravan"
# RFC 5424 SD-ID of our structured data: name@<IANA private enterprise number>. 32473 is the
# number RFC 5612 reserves for documentation; an operator with its own number sets AUDIT_SYSLOG_SD_ID.
DEFAULT_SD_ID = "caravan@32473"
# IHE ITI TF-2 3.20.7: the MSGID of an ATNA message sent over syslog.
ATNA_MSGID = "IHE+RFC-3881"
# authpriv (10): "security/authorization messages"; severity notice (5), warning (4) on failure.
_FACILITY = 10


@dataclass(frozen=True)
class Code:
    """A DICOM coded value (CodedValueType: csd-code, codeSystemName, originalText)."""

    code: str
    system: str
    text: str


@dataclass(frozen=True)
class EventKind:
    """How one kind of action is reported: DICOM EventID, action code, optional type code."""

    event_id: Code
    action_code: str  # C create, R read, U update, D delete, E execute
    type_code: Code | None = None


def _dcm(code: str, text: str) -> Code:
    return Code(code, "DCM", text)


PATIENT_RECORD = _dcm("110110", "Patient Record")
INSTANCES_ACCESSED = _dcm("110103", "DICOM Instances Accessed")
EXPORT = _dcm("110106", "Export")
IMPORT = _dcm("110107", "Import")
QUERY = _dcm("110112", "Query")
ORDER_RECORD = _dcm("110109", "Order Record")
CHECKPOINT_EVENT = Code("audit.checkpoint", "Caravan", "Audit chain checkpoint")
PROCEDURE_RECORD = _dcm("110111", "Procedure Record")
AUDIT_LOG_USED = _dcm("110101", "Audit Log Used")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")

# Exact actions first, then prefixes (longest first); see docs/audit.md for the table.
EVENT_MAP: dict[str, EventKind] = {
    "study.search": EventKind(QUERY, "E"),
    "study.ingest": EventKind(IMPORT, "C"),
    "study.view": EventKind(INSTANCES_ACCESSED, "R"),
    "study.open": EventKind(INSTANCES_ACCESSED, "R"),
    "study.qc": EventKind(INSTANCES_ACCESSED, "R"),
    "study.update": EventKind(INSTANCES_ACCESSED, "U"),
    "study.link_order": EventKind(INSTANCES_ACCESSED, "U"),
    "study.route": EventKind(INSTANCES_ACCESSED, "U"),
    "report.view": EventKind(PATIENT_RECORD, "R"),
    "report.html": EventKind(PATIENT_RECORD, "R"),
    "report.pdf": EventKind(PATIENT_RECORD, "R"),
    "report.download": EventKind(EXPORT, "R"),
    "report.sign": EventKind(PATIENT_RECORD, "C"),
    "report.addendum_add": EventKind(PATIENT_RECORD, "U"),
    "report.addendum_sign": EventKind(PATIENT_RECORD, "U"),
    "portal.studies_view": EventKind(PATIENT_RECORD, "R"),
    "reconciliation.list": EventKind(PATIENT_RECORD, "R"),
    "critical_result.open": EventKind(PATIENT_RECORD, "C"),
    "critical_result.list": EventKind(PATIENT_RECORD, "R"),
    "critical_result.acknowledge": EventKind(PATIENT_RECORD, "U"),
    "critical_result.escalate": EventKind(PATIENT_RECORD, "U"),
    "pseudonym.create": EventKind(PATIENT_RECORD, "C"),
    "order.create": EventKind(ORDER_RECORD, "C"),
    "order.view": EventKind(ORDER_RECORD, "R"),
    "order.list": EventKind(ORDER_RECORD, "R"),
    "orthanc.worklist": EventKind(QUERY, "E"),
    "deid_export.create": EventKind(EXPORT, "R"),
    "deid_export.fail": EventKind(EXPORT, "R"),
    "auth.login": EventKind(USER_AUTHENTICATION, "E", _dcm("110122", "Login")),
    "auth.login_failed": EventKind(USER_AUTHENTICATION, "E", _dcm("110122", "Login")),
    "auth.logout": EventKind(USER_AUTHENTICATION, "E", _dcm("110123", "Logout")),
    "auth.tokens_revoke": EventKind(USER_AUTHENTICATION, "E", _dcm("110123", "Logout")),
    "auth.lockout": EventKind(SECURITY_ALERT, "E"),
    "user.create": EventKind(SECURITY_ALERT, "E", _dcm("110137", "User Security Attributes Changed")),
    "user.role_assign": EventKind(SECURITY_ALERT, "E", _dcm("110136", "Security Roles Changed")),
    "audit.chain_broken": EventKind(SECURITY_ALERT, "E"),
    "audit.search": EventKind(AUDIT_LOG_USED, "R"),
    "audit.patient_viewers": EventKind(AUDIT_LOG_USED, "R"),
    "audit.export": EventKind(AUDIT_LOG_USED, "R"),
}
PREFIX_MAP: tuple[tuple[str, EventKind], ...] = (
    ("order.", EventKind(ORDER_RECORD, "U")),
    ("report.", EventKind(PATIENT_RECORD, "U")),
    ("critical_result.", EventKind(PATIENT_RECORD, "U")),
    ("task.", EventKind(PROCEDURE_RECORD, "U")),
    ("study.", EventKind(INSTANCES_ACCESSED, "R")),
    ("audit.", EventKind(AUDIT_LOG_USED, "R")),
)


def event_kind(action: str) -> EventKind:
    """The DICOM event for an action: exact match, then prefix, else a local code."""
    if action in EVENT_MAP:
        return EVENT_MAP[action]
    for prefix, kind in PREFIX_MAP:
        if action.startswith(prefix):
            return kind
    verb = action.rsplit(".", 1)[-1]
    code = "C" if verb in {"create", "add", "register", "issue", "declare"} else "E"
    return EventKind(Code(action, LOCAL_CODE_SYSTEM, action), code)


def outcome(action: str) -> str:
    """EventOutcomeIndicator: 0 success, 4 minor failure (refused), 8 serious failure."""
    if action.endswith(("_refused", "_failed")):
        return "4"
    if action.endswith((".fail", "_fail")):
        return "8"
    return "0"


# XML 1.0 forbids most control characters, even escaped; they are replaced, not dropped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_UID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def _x(value: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(value))


def _coded(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(
        parent, tag, {"csd-code": _x(code.code), "codeSystemName": code.system, "originalText": _x(code.text)}
    )


def _timestamp(entry: AuditEntry) -> str:
    return entry.timestamp.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _role_label(role: str) -> str:
    return Role(role).label if role in Role.values else role


def _participants(message: ET.Element, entry: AuditEntry, app_name: str) -> None:
    if entry.actor_id is not None:
        attrs = {
            "UserID": _x(entry.actor_username or entry.actor_id),
            "AlternativeUserID": str(entry.actor_id),
            "UserName": _x(entry.actor_username),
            "UserIsRequestor": "true",
        }
        if entry.source_ip:
            attrs |= {"NetworkAccessPointID": entry.source_ip, "NetworkAccessPointTypeCode": "2"}
        person = ET.SubElement(message, "ActiveParticipant", attrs)
        if entry.actor_role:
            role = Code(entry.actor_role, LOCAL_CODE_SYSTEM, _role_label(entry.actor_role))
            _coded(person, "RoleIDCode", role)
    # The application: the requestor itself for system work, else the system acted through.
    application = ET.SubElement(
        message,
        "ActiveParticipant",
        {"UserID": _x(app_name), "UserIsRequestor": "true" if entry.actor_id is None else "false"},
    )
    _coded(application, "RoleIDCode", _dcm("110150", "Application"))


def _object_codes(entry: AuditEntry) -> tuple[str, str, Code]:
    """(ParticipantObjectTypeCode, ParticipantObjectTypeCodeRole, ParticipantObjectIDTypeCode)."""
    if entry.object_type == "core.auditentry":
        return "2", "13", Code("12", "RFC-3881", "URI")  # system object, security resource
    if entry.object_type.endswith(".study") and _UID.match(entry.object_id):
        return "2", "3", _dcm("110180", "Study Instance UID")  # system object, report
    if entry.object_type.endswith(".user"):
        return "1", "11", Code("11", "RFC-3881", "User Identifier")  # person, security user entity
    if entry.object_type.endswith(".order"):
        return "2", "20", Code(entry.object_type, LOCAL_CODE_SYSTEM, entry.object_type)  # job
    return "2", "4", Code(entry.object_type, LOCAL_CODE_SYSTEM, entry.object_type)  # resource


def _objects(message: ET.Element, entry: AuditEntry) -> None:
    if entry.patient_id:
        patient = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": _x(entry.patient_id),
                "ParticipantObjectTypeCode": "1",  # person
                "ParticipantObjectTypeCodeRole": "1",  # patient
            },
        )
        _coded(patient, "ParticipantObjectIDTypeCode", Code("2", "RFC-3881", "Patient Number"))
    if entry.object_type and entry.object_id:
        type_code, role, id_type = _object_codes(entry)
        obj = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": _x(entry.object_id),
                "ParticipantObjectTypeCode": type_code,
                "ParticipantObjectTypeCodeRole": role,
            },
        )
        _coded(obj, "ParticipantObjectIDTypeCode", id_type)
        if entry.details and entry.details != "{}":
            # xs:base64Binary: the details JSON exactly as hashed in the chain.
            value = base64.b64encode(entry.details.encode()).decode()
            ET.SubElement(obj, "ParticipantObjectDetail", {"type": "caravan-details", "value": value})


def atna_message(entry: AuditEntry, *, source_id: str | None = None, app_name: str = "caravan") -> ET.Element:
    """One entry as an ``<AuditMessage>`` element (schema order of PS3.15 A.5.1)."""
    kind = event_kind(entry.action)
    message = ET.Element("AuditMessage")
    event = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": kind.action_code,
            "EventDateTime": _timestamp(entry),
            "EventOutcomeIndicator": outcome(entry.action),
        },
    )
    _coded(event, "EventID", kind.event_id)
    if kind.type_code is not None:
        _coded(event, "EventTypeCode", kind.type_code)
    _coded(event, "EventTypeCode", Code(entry.action, LOCAL_CODE_SYSTEM, entry.action))
    _participants(message, entry, app_name)
    _source(message, source_id)
    _objects(message, entry)
    return message


def _source(message: ET.Element, source_id: str | None) -> None:
    source_attrs = {"AuditSourceID": _x(source_id or settings.AUDIT_SOURCE_ID)}
    if settings.AUDIT_ENTERPRISE_SITE_ID:
        source_attrs["AuditEnterpriseSiteID"] = _x(settings.AUDIT_ENTERPRISE_SITE_ID)
    source = ET.SubElement(message, "AuditSourceIdentification", source_attrs)
    _coded(source, "AuditSourceTypeCode", Code("4", "DCM", "Application Server"))


def checkpoint_message(
    checkpoint: Checkpoint, *, source_id: str | None = None, app_name: str = "caravan"
) -> ET.Element:
    """A signed checkpoint of the chain's head as an ``<AuditMessage>`` (local event code).

    The participant object is the head entry (the audit log as a security resource); its
    ``caravan-checkpoint`` detail is the checkpoint line exactly as signed, base64, so the
    recipient can later hold the chain against it (``audit_verify`` reads the same lines).
    """
    message = ET.Element("AuditMessage")
    event = ET.SubElement(
        message,
        "EventIdentification",
        {"EventActionCode": "E", "EventDateTime": checkpoint.at, "EventOutcomeIndicator": "0"},
    )
    _coded(event, "EventID", CHECKPOINT_EVENT)
    _coded(event, "EventTypeCode", CHECKPOINT_EVENT)
    application = ET.SubElement(
        message, "ActiveParticipant", {"UserID": _x(app_name), "UserIsRequestor": "true"}
    )
    _coded(application, "RoleIDCode", _dcm("110150", "Application"))
    _source(message, source_id)
    obj = ET.SubElement(
        message,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": str(checkpoint.id),
            "ParticipantObjectTypeCode": "2",  # system object
            "ParticipantObjectTypeCodeRole": "13",  # security resource
        },
    )
    _coded(obj, "ParticipantObjectIDTypeCode", Code("12", "RFC-3881", "URI"))
    value = base64.b64encode(checkpoint.line.encode()).decode()
    ET.SubElement(obj, "ParticipantObjectDetail", {"type": "caravan-checkpoint", "value": value})
    return message


def _latest_checkpoint() -> Checkpoint | None:
    checkpoints, _ = audit_checkpoints()
    return checkpoints[-1] if checkpoints else None


def atna_messages(entries: Iterable[AuditEntry], **kwargs) -> Iterator[str]:
    """One ``<AuditMessage>`` XML string per entry (no XML declaration, no newline inside)."""
    for entry in entries:
        yield ET.tostring(atna_message(entry, **kwargs), encoding="unicode")


def atna_document(entries: Iterable[AuditEntry], **kwargs) -> Iterator[str]:
    """A whole export as one XML document: ``<AuditMessages>`` holding one message per line.

    ``AuditMessages`` is a container, not a schema element: consumers take its children. The
    last child is the newest signed checkpoint of the chain (``checkpoint_message``), if any.
    """
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n'
    for message in atna_messages(entries, **kwargs):
        yield message + "\n"
    # Last: the newest signed checkpoint of the chain's head (read after the entries, so it is
    # as recent as possible), when one was written.
    checkpoint = _latest_checkpoint()
    if checkpoint is not None:
        yield ET.tostring(checkpoint_message(checkpoint, **kwargs), encoding="unicode") + "\n"
    yield "</AuditMessages>\n"


_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")


def _header_field(value: str, max_length: int) -> str:
    """RFC 5424 header fields are PRINTUSASCII with no spaces, "-" when empty."""
    value = _PRINTUSASCII.sub("_", value)[:max_length]
    return value or "-"


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_lines(
    entries: Iterable[AuditEntry], hostname: str, app_name: str = "caravan", *, sd_id: str | None = None
) -> Iterator[str]:
    """One RFC 5424 line per entry, without the trailing newline.

    ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG``: PRI is authpriv.notice (85),
    authpriv.warning (84) for a failed or refused action; PROCID is "-" (entries come from many
    processes); MSGID "IHE+RFC-3881" as IHE ATNA requires; the structured data names the chain
    entry (id and hash) so an ingested line can be checked against ``audit_verify``; MSG is the
    ATNA XML, UTF-8 after a BOM (RFC 5424 6.4). The last line is the newest signed checkpoint of
    the chain, if any (structured data ``checkpoint`` and ``hash`` instead of ``entry``).
    """
    host = _header_field(hostname, 255)
    app = _header_field(app_name, 48)
    sd = sd_id or getattr(settings, "AUDIT_SYSLOG_SD_ID", DEFAULT_SD_ID)
    for entry in entries:
        severity = 4 if outcome(entry.action) != "0" else 5
        xml = ET.tostring(atna_message(entry, app_name=app_name), encoding="unicode")
        structured = (
            f'[{sd} entry="{entry.pk}" hash="{_sd_value(entry.hash)}" action="{_sd_value(entry.action)}"]'
        )
        yield (
            f"<{_FACILITY * 8 + severity}>1 {_timestamp(entry)} {host} {app} - {ATNA_MSGID} "
            f"{structured} \ufeff{xml}"
        )
    checkpoint = _latest_checkpoint()
    if checkpoint is not None:  # the newest signed checkpoint of the chain's head, last
        xml = ET.tostring(checkpoint_message(checkpoint, app_name=app_name), encoding="unicode")
        structured = f'[{sd} checkpoint="{checkpoint.id}" hash="{_sd_value(checkpoint.hash)}"]'
        yield f"<{_FACILITY * 8 + 5}>1 {checkpoint.at} {host} {app} - {ATNA_MSGID} {structured} \ufeff{xml}"
