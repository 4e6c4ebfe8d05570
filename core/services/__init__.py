from core.services.audit import audit_record, audit_verify
from core.services.users import organisation_create, user_assign_role, user_create

__all__ = ["audit_record", "audit_verify", "organisation_create", "user_assign_role", "user_create"]
