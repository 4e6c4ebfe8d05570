from core.models.audit import AuditEntry
from core.models.organisations import Organisation
from core.models.users import User

__all__ = ["AuditEntry", "Organisation", "User"]
