"""Helpers shared by the audit review, export and nightly check tests."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

from django.db import connection

from core.choices import OrganisationKind
from core.models import AuditEntry
from core.services import audit_record
from tests.core.factories import OrganisationFactory, UserFactory


def operator_user(*roles: str, **kwargs):
    return UserFactory(
        organisation=OrganisationFactory(kind=OrganisationKind.OPERATOR), roles=list(roles), **kwargs
    )


def record_at(when: datetime, **fields) -> AuditEntry:
    """An entry stamped ``when``: the service takes its clock from timezone.now()."""
    with mock.patch("core.services.audit.timezone.now", return_value=when):
        return audit_record(**fields)


def tamper(sql: str, params: list) -> None:
    """Edit the table behind the ORM's back, as an attacker with database access would (on
    PostgreSQL a superuser can switch user triggers off for the session; the chain must still tell)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET session_replication_role = DEFAULT")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS core_auditentry_no_update")
            cursor.execute(sql, params)
