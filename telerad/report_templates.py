"""Structured report templates per modality and body part, and the validation of their fields.

A template is data: the editor page renders its form from it, the services validate against it
and the renderers label the stored values with it. A report stores the template's key, so a
later change of the catalogue never reinterprets a signed report (keys are never reused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.exceptions import InvalidInput

TEXT = "text"
CHOICE = "choice"
BOOLEAN = "boolean"
FIELD_TYPES = (TEXT, CHOICE, BOOLEAN)

# Long enough for any dictated findings; bounded so one request cannot store megabytes.
MAX_TEXT_LENGTH = 20_000


@dataclass(frozen=True)
class TemplateField:
    """One structured field of a report template."""

    name: str
    label: str
    type: str = TEXT
    required: bool = False
    choices: tuple[str, ...] = ()
    help_text: str = ""

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")
        if (self.type == CHOICE) != bool(self.choices):
            raise ValueError(f"field {self.name}: choices go with (and only with) type 'choice'")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "required": self.required,
            "choices": list(self.choices),
            "help_text": self.help_text,
        }


@dataclass(frozen=True)
class ReportTemplate:
    """A report form for a modality and body part: its structured fields (free text always follows)."""

    key: str
    title: str
    modality: str  # "" for the generic fallback
    body_parts: tuple[str, ...]
    fields: tuple[TemplateField, ...] = field(default=())

    def field(self, name: str) -> TemplateField | None:
        for item in self.fields:
            if item.name == name:
                return item
        return None

    @property
    def required_fields(self) -> tuple[TemplateField, ...]:
        return tuple(f for f in self.fields if f.required)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "modality": self.modality,
            "body_parts": list(self.body_parts),
            "fields": [f.as_dict() for f in self.fields],
        }


def _findings(help_text: str = "") -> TemplateField:
    return TemplateField("findings", "Findings", TEXT, required=True, help_text=help_text)


IMPRESSION = TemplateField(
    "impression", "Impression", TEXT, required=True, help_text="The conclusion the referrer acts on."
)
_SIDES = ("none", "left", "right", "bilateral")

TEMPLATES: tuple[ReportTemplate, ...] = (
    ReportTemplate(
        key="ct_head",
        title="CT head",
        modality="CT",
        body_parts=("HEAD", "BRAIN", "SKULL"),
        fields=(
            _findings(),
            TemplateField(
                "haemorrhage",
                "Intracranial haemorrhage",
                CHOICE,
                required=True,
                choices=(
                    "none",
                    "intraparenchymal",
                    "subarachnoid",
                    "subdural",
                    "extradural",
                    "intraventricular",
                ),
            ),
            TemplateField("acute_infarct", "Acute infarct", BOOLEAN, required=True),
            TemplateField("midline_shift", "Midline shift", BOOLEAN),
            TemplateField("fracture", "Skull fracture", BOOLEAN),
            IMPRESSION,
        ),
    ),
    ReportTemplate(
        key="ct_chest",
        title="CT chest",
        modality="CT",
        body_parts=("CHEST", "THORAX", "LUNG"),
        fields=(
            _findings(),
            TemplateField(
                "lung_rads",
                "Lung-RADS category",
                CHOICE,
                required=True,
                choices=("0", "1", "2", "3", "4A", "4B", "4X"),
                help_text="ACR Lung-RADS v2022 assessment category.",
            ),
            TemplateField("nodules", "Pulmonary nodules", BOOLEAN),
            TemplateField("pleural_effusion", "Pleural effusion", CHOICE, choices=_SIDES),
            TemplateField("pulmonary_embolism", "Pulmonary embolism", BOOLEAN),
            IMPRESSION,
        ),
    ),
    ReportTemplate(
        key="ct_abdomen",
        title="CT abdomen",
        modality="CT",
        body_parts=("ABDOMEN", "PELVIS", "ABDOMENPELVIS"),
        fields=(
            _findings(),
            TemplateField("free_fluid", "Free fluid", BOOLEAN, required=True),
            TemplateField("free_air", "Free air", BOOLEAN),
            TemplateField("appendix", "Appendix", CHOICE, choices=("normal", "inflamed", "not seen")),
            IMPRESSION,
        ),
    ),
    ReportTemplate(
        key="mr_brain",
        title="MR brain",
        modality="MR",
        body_parts=("HEAD", "BRAIN"),
        fields=(
            _findings(),
            TemplateField("diffusion_restriction", "Diffusion restriction", BOOLEAN, required=True),
            TemplateField("enhancing_lesion", "Enhancing lesion", BOOLEAN),
            TemplateField(
                "white_matter", "White matter changes (Fazekas)", CHOICE, choices=("0", "1", "2", "3")
            ),
            IMPRESSION,
        ),
    ),
    ReportTemplate(
        key="dx_chest",
        title="Chest radiograph",
        modality="DX",
        body_parts=("CHEST", "THORAX"),
        fields=(
            _findings(),
            TemplateField("cardiomegaly", "Cardiomegaly", BOOLEAN, required=True),
            TemplateField("consolidation", "Consolidation", BOOLEAN),
            TemplateField("pneumothorax", "Pneumothorax", CHOICE, required=True, choices=_SIDES),
            TemplateField("pleural_effusion", "Pleural effusion", CHOICE, choices=_SIDES),
            IMPRESSION,
        ),
    ),
)

GENERIC = ReportTemplate(
    key="generic", title="General report", modality="", body_parts=(), fields=(_findings(), IMPRESSION)
)

_BY_KEY = {t.key: t for t in (*TEMPLATES, GENERIC)}
# Equivalent modality codes: computed and digital radiography use the same template.
_MODALITY_ALIASES = {"CR": "DX", "DR": "DX", "MRI": "MR"}


def template_for(modality: str, body_part: str) -> ReportTemplate:
    """The template for an exam; the generic one when none is specific to it.

    ``modality`` may be a study's multi-valued "CT\\SR": its first value counts.
    """
    first = (modality or "").replace("\\", "/").split("/")[0].strip().upper()
    first = _MODALITY_ALIASES.get(first, first)
    part = (body_part or "").strip().upper()
    for template in TEMPLATES:
        if template.modality == first and part in template.body_parts:
            return template
    return GENERIC


def template_get(key: str) -> ReportTemplate:
    """The template a report was written with (a stored key); the generic one if it is unknown."""
    return _BY_KEY.get(key, GENERIC)


def _field_error(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{name}: {message}", code="invalid_field", extra={"field": name})


def _clean_value(spec: TemplateField, value: Any) -> Any:
    if spec.type == TEXT:
        if not isinstance(value, str):
            raise _field_error(spec.name, "must be text")
        value = value.strip()
        if len(value) > MAX_TEXT_LENGTH:
            raise _field_error(spec.name, f"at most {MAX_TEXT_LENGTH} characters")
        return value
    if spec.type == CHOICE:
        # JSON clients may send a numeric category (lung_rads: 2) for "2".
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or value.strip() not in spec.choices:
            raise _field_error(spec.name, f"{value!r} is not one of {', '.join(spec.choices)}")
        return value.strip()
    if not isinstance(value, bool):  # BOOLEAN: no truthy strings, "false" would read as True
        raise _field_error(spec.name, "must be true or false")
    return value


def validate_fields(
    template: ReportTemplate, fields: Mapping[str, Any], *, require_complete: bool = True
) -> dict[str, Any]:
    """The cleaned structured fields, or ``InvalidInput`` naming the first bad field.

    Unknown names, wrong types and values outside a choice list are always refused; a missing
    required field only when ``require_complete`` (a draft may be incomplete). Empty values
    (``None``, blank text) count as missing and are left out of the result.
    """
    if not isinstance(fields, Mapping):
        raise InvalidInput("fields must be an object of field name -> value", code="invalid_field")
    unknown = sorted(set(fields) - {f.name for f in template.fields})
    if unknown:
        raise _field_error(unknown[0], f"is not a field of the {template.title} template")
    cleaned: dict[str, Any] = {}
    for spec in template.fields:
        value = fields.get(spec.name)
        if isinstance(value, str) and not value.strip():
            value = None
        if value is not None:
            value = _clean_value(spec, value)
        if value is None or value == "":
            if spec.required and require_complete:
                raise _field_error(spec.name, "is required")
            continue
        cleaned[spec.name] = value
    return cleaned


def display_value(spec: TemplateField | None, value: Any) -> str:
    """How a stored value reads in a rendered report."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if value is None or value == "":
        return "—"
    return str(value)
