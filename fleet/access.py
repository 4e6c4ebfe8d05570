"""Who may write the fleet register. Scoping (404 for other operators) is in ``fleet.selectors``."""

from __future__ import annotations

from core.choices import Role
from core.exceptions import AccessDenied
from core.models import User

REGISTER_WRITER_ROLES = (Role.DISPATCHER, Role.ADMIN)
QC_RECORDER_ROLES = (Role.TECHNOLOGIST, Role.QC_OFFICER, Role.ADMIN)


def _check(actor: User | None, operator_id: int, roles: tuple[str, ...], what: str) -> User:
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise AccessDenied(f"Sign in to {what}")
    if actor.is_superuser:
        return actor
    if actor.organisation_id != operator_id or not actor.has_role(*roles):
        names = ", ".join(Role(role).label.lower() + "s" for role in roles)
        raise AccessDenied(f"Only the unit operator's {names} may {what}")
    return actor


def check_register_writer(actor: User | None, operator_id: int) -> User:
    """Dispatchers and administrators of the operator keep its register."""
    return _check(actor, operator_id, REGISTER_WRITER_ROLES, "change the fleet register")


def check_qc_recorder(actor: User | None, operator_id: int) -> User:
    """Technologists (and QC officers, administrators) of the operator record daily QC."""
    return _check(actor, operator_id, QC_RECORDER_ROLES, "record a daily QC check")
