"""Celery tasks of the core domain: thin wrappers over services (scheduled in config/settings.py)."""

from __future__ import annotations

from celery import shared_task


@shared_task
def audit_verify_nightly() -> dict:
    """Verify the audit chain, store an AuditCheck and alert people if it is broken."""
    from core.services.audit_check import audit_check_run

    check = audit_check_run()
    return {"ok": check.ok, "entries": check.entries, "first_broken_id": check.first_broken_id}


@shared_task
def audit_checkpoint() -> dict:
    """Verify the entries since the last checkpoint and append a signed checkpoint of the head."""
    from core.services.audit_checkpoint import audit_checkpoint_run

    checkpoint = audit_checkpoint_run()
    if checkpoint is None:
        return {"written": False}
    return {"written": True, "id": checkpoint.id, "count": checkpoint.count}


@shared_task
def retention_sweep() -> dict:
    """Apply every retention period (docs/retention.md); audit and clinical records are never swept."""
    from core.services.retention import retention_sweep as sweep

    return sweep()
