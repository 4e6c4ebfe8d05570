"""Enumerations of the DICOM domain."""

from enum import IntEnum

from django.db import models


class Priority(models.TextChoices):
    STAT = "STAT", "STAT"
    URGENT = "URGENT", "Urgent"
    ROUTINE = "ROUTINE", "Routine"


class OrderStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    ACQUIRED = "acquired", "Acquired"
    CANCELLED = "cancelled", "Cancelled"


class PatientSex(models.TextChoices):
    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "O", "Other"


class BodyPart(models.TextChoices):
    """DICOM Body Part Examined (0018,0015) defined terms we book exams for."""

    HEAD = "HEAD", "Head"
    NECK = "NECK", "Neck"
    CHEST = "CHEST", "Chest"
    ABDOMEN = "ABDOMEN", "Abdomen"
    PELVIS = "PELVIS", "Pelvis"
    SPINE = "SPINE", "Spine"
    CSPINE = "CSPINE", "Cervical spine"
    LSPINE = "LSPINE", "Lumbar spine"
    EXTREMITY = "EXTREMITY", "Extremity"
    KNEE = "KNEE", "Knee"
    HAND = "HAND", "Hand"


class MatchMethod(models.TextChoices):
    ACCESSION = "accession", "Accession number"
    FALLBACK = "fallback", "Patient ID + date + modality"
    MANUAL = "manual", "Linked by a QC officer"


class IngestStatus(models.TextChoices):
    UNMATCHED = "unmatched", "Unmatched (reconciliation queue)"
    MATCHED = "matched", "Matched to an order"
    # Orthanc keeps a study per (PatientID, StudyInstanceUID): images sent under a study's UID
    # with another patient ID (mistyped on the scanner, a UID reused) are a second study there.
    # Kept beside the first, never merged into it or dropped; resolved in Orthanc.
    UID_CONFLICT = "uid_conflict", "Study UID already held by another patient's study (reconciliation queue)"


class QCOutcome(models.TextChoices):
    PENDING = "pending", "Pending"
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"


class QCSeverity(models.TextChoices):
    WARN = "warn", "Warning"
    FAIL = "fail", "Failure"


class DicomStatus(IntEnum):
    """DIMSE status codes the platform's handlers return."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    CANCEL = 0xFE00
    UNABLE_TO_PROCESS = 0xC000
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    OUT_OF_RESOURCES = 0xA700
