"""Reading the audit log is itself audited: one entry per search, viewer lookup or export."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.http import HttpRequest

from core.models import AuditEntry, User
from core.services.audit import audit_record

# The object every review entry points at (ParticipantObjectID of an ATNA "Audit Log Used").
AUDIT_LOG_OBJECT_TYPE = "core.auditentry"
AUDIT_LOG_OBJECT_ID = "audit-log"


def _plain(filters: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in filters.items():
        if value in (None, ""):
            continue
        clean[key] = value.isoformat() if isinstance(value, date | datetime) else value
    return clean


def audit_review_record(
    *,
    actor: User | None,
    action: str,
    filters: dict[str, Any],
    request: HttpRequest | None = None,
    extra: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record one read of the audit log (``audit.search``, ``audit.patient_viewers``, ``audit.export``).

    The searched patient, if any, goes in ``patient_id`` so "who looked this patient up in the
    audit log" is itself searchable; ``patient_data`` stays False because the reviewer sees who
    accessed the record, not the clinical data (so reviewers do not show up as viewers).
    """
    clean = _plain(filters)
    patient_id = str(clean.get("patient_id") or "")
    return audit_record(
        actor=actor,
        action=action,
        object_type=AUDIT_LOG_OBJECT_TYPE,
        object_id=AUDIT_LOG_OBJECT_ID,
        patient_id=patient_id,
        details={"filters": clean, **(extra or {})},
        request=request,
    )
