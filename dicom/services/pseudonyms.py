"""Project pseudonyms for de-identified exports: one stable replacement per original value.

Patient pseudonyms are random (they reveal nothing and two projects' pseudonyms of one patient
cannot be linked); UID replacements are derived, keyed by SECRET_KEY, so concurrent exports
agree without coordination. Each new pseudonym is audited.
"""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from core.exceptions import Conflict, InvalidInput
from core.models import User
from core.services import audit_record
from dicom.models import Pseudonym, PseudonymKind, Study
from dicom.uids import new_uid

PSEUDONYM_PREFIX = "DEID-"


def patient_issuer(study: Study) -> str:
    # Hospitals number their patients independently: the same ID at two hospitals is two people.
    return f"hospital:{study.hospital_id}" if study.hospital_id else ""


def _derived_uid(project: str, original: str) -> str:
    # Deterministic per (project, original) so concurrent or repeated exports agree without
    # coordination, and keyed (SECRET_KEY) so that someone holding an original UID and the
    # project name cannot recompute its replacement and so confirm a match. The stored map
    # wins over recomputation, so rotating the key changes only UIDs minted afterwards.
    key = salted_hmac("caravan.dicom.deid.uid", f"{project}\x1f{original}", algorithm="sha256").hexdigest()
    return new_uid(entropy=[project, original, key])


def _random_patient_pseudonym() -> str:
    # Random, not derived: a pseudonym must reveal nothing of the ID, and two projects' pseudonyms
    # of one patient must not be linkable.
    return PSEUDONYM_PREFIX + secrets.token_hex(6).upper()


def pseudonym_get_or_create(
    *,
    actor: User,
    project: str,
    kind: str,
    issuer: str,
    original: str,
    patient_id: str,
    study: Study,
    request: HttpRequest | None,
) -> Pseudonym:
    """The project's pseudonym for ``original``, created (and audited) on first use."""
    if not original:
        raise InvalidInput(f"The study has an empty {PseudonymKind(kind).label}")
    lookup = {"project": project, "kind": kind, "issuer": issuer, "original": original}
    for _attempt in range(5):
        found = Pseudonym.objects.filter(**lookup).first()
        if found is not None:
            return found
        value = (
            _random_patient_pseudonym() if kind == PseudonymKind.PATIENT else _derived_uid(project, original)
        )
        try:
            with transaction.atomic():
                created = Pseudonym.objects.create(**lookup, pseudonym=value)
                audit_record(
                    actor=actor,
                    action="pseudonym.create",
                    obj=created,
                    patient_data=True,
                    patient_id=patient_id,
                    details={"project": project, "kind": kind, "study": study.pk},
                    request=request,
                )
                return created
        except IntegrityError:
            # Either a concurrent export created this original's pseudonym (found next time
            # round), or a random patient pseudonym collided with another's (drawn again).
            continue
    raise Conflict("Could not allocate a unique pseudonym; try again")
