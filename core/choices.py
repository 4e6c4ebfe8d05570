"""Enumerations shared across the platform."""

from django.db import models


class OrganisationKind(models.TextChoices):
    OPERATOR = "operator", "Fleet operator"
    HOSPITAL = "hospital", "Hospital"
    READING_GROUP = "reading_group", "Reading group"


class Role(models.TextChoices):
    """A user's job; each role is a Django group carrying that job's permissions."""

    DISPATCHER = "dispatcher", "Dispatcher"
    TECHNOLOGIST = "technologist", "Technologist"
    RADIOLOGIST = "radiologist", "Radiologist"
    HOSPITAL_USER = "hospital_user", "Hospital user"
    QC_OFFICER = "qc_officer", "QC officer"
    ADMIN = "admin", "Administrator"


# Which organisation kinds a role may belong to; a mismatch is refused on assignment.
ROLE_ORGANISATION_KINDS: dict[str, set[str]] = {
    Role.DISPATCHER: {OrganisationKind.OPERATOR},
    Role.TECHNOLOGIST: {OrganisationKind.OPERATOR},
    Role.RADIOLOGIST: {OrganisationKind.READING_GROUP},
    Role.HOSPITAL_USER: {OrganisationKind.HOSPITAL},
    Role.QC_OFFICER: {OrganisationKind.OPERATOR, OrganisationKind.READING_GROUP},
    Role.ADMIN: {OrganisationKind.OPERATOR},
}
