from core.models.audit import AuditCheck, AuditEntry
from core.models.organisations import Organisation
from core.models.users import User

__all__ = ["AuditCheck", "AuditEntry", "Organisation", "User"]
