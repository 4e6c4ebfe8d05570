"""The exam list of a service request: checked when filed, so that booking it later succeeds.

Each exam becomes a dicom ``Order`` once the request is scheduled, so it is held to the same
DICOM rules (Latin-1 worklist text, PN names, defined body parts) at filing time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.exceptions import InvalidInput
from dicom.choices import BodyPart, PatientSex
from dicom.services.orders import LO_MAX, MWL_ENCODING, clean_patient_name

EXAM_FIELDS = ("procedure", "body_part", "patient_id", "patient_name", "sex", "birth_date")


def _bad(where: str, message: str) -> InvalidInput:
    return InvalidInput(f"{where}: {message}", code="invalid_exams", extra={"field": where})


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(where, "is required text")
    text = value.strip()
    if len(text) > LO_MAX:
        raise _bad(where, f"is at most {LO_MAX} characters")
    if "\\" in text or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise _bad(where, "must not contain a backslash or control characters")
    try:
        text.encode(MWL_ENCODING)
    except UnicodeEncodeError:
        raise _bad(where, "may only use Latin characters (the scanner worklist is Latin-1)") from None
    return text


def _exam(raw: Any, index: int, today: dt.date) -> dict[str, str]:
    where = f"exams[{index}]"
    if not isinstance(raw, dict):
        raise _bad(where, f"must be an object with {', '.join(EXAM_FIELDS)}")
    missing = [name for name in EXAM_FIELDS if name not in raw]
    unknown = sorted(set(raw) - set(EXAM_FIELDS))
    if missing:
        raise _bad(f"{where}.{missing[0]}", "is required")
    if unknown:
        raise _bad(f"{where}.{unknown[0]}", f"is not an exam field; fields: {', '.join(EXAM_FIELDS)}")
    if raw["body_part"] not in BodyPart.values:
        raise _bad(f"{where}.body_part", f"unknown {raw['body_part']!r}; valid: {', '.join(BodyPart.values)}")
    if raw["sex"] not in PatientSex.values:
        raise _bad(f"{where}.sex", f"unknown {raw['sex']!r}; valid: {', '.join(PatientSex.values)}")
    try:
        born = dt.date.fromisoformat(raw["birth_date"]) if isinstance(raw["birth_date"], str) else None
    except ValueError:
        born = None
    if born is None:
        raise _bad(f"{where}.birth_date", "must be a date YYYY-MM-DD")
    if born > today:
        raise _bad(f"{where}.birth_date", "is in the future")
    try:
        name = clean_patient_name(raw["patient_name"])
    except InvalidInput as exc:
        raise _bad(f"{where}.patient_name", exc.message.removeprefix("patient_name ")) from None
    return {
        "procedure": _text(raw["procedure"], f"{where}.procedure"),
        "body_part": raw["body_part"],
        "patient_id": _text(raw["patient_id"], f"{where}.patient_id"),
        "patient_name": name,
        "sex": raw["sex"],
        "birth_date": born.isoformat(),
    }


def clean_exams(exams: Any, *, patients: int, today: dt.date) -> list[dict[str, str]]:
    """The exam list normalised for storage, or ``InvalidInput`` naming the exam and field."""
    if not isinstance(exams, list):
        raise _bad("exams", "must be a list")
    if len(exams) > patients:
        raise _bad("exams", f"{len(exams)} exams for {patients} patients; at most one exam per patient")
    # One patient may have two exams (head and chest): patient ids may repeat.
    return [_exam(raw, index, today) for index, raw in enumerate(exams)]
