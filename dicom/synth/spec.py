"""What a synthetic study looks like: ``StudySpec``, the ``Defect`` switches, and defaults."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from pydicom.uid import generate_uid

if TYPE_CHECKING:
    from dicom.models import Order

MODALITIES = ("CT", "MR", "DX")


class Defect(StrEnum):
    """Acquisition faults ``make_study`` can inject, one per QC rule (see synth/__init__.py)."""

    MISSING_TAGS = "missing_tags"
    WRONG_PATIENT = "wrong_patient"
    WRONG_MODALITY = "wrong_modality"
    WRONG_BODY_PART = "wrong_body_part"
    INSTANCE_GAP = "instance_gap"
    SLICE_GAP = "slice_gap"
    THICKNESS_OUT_OF_RANGE = "thickness_out_of_range"
    HIGH_DOSE = "high_dose"
    UNDECODABLE_PIXELS = "undecodable_pixels"


# Defects that need cross-sectional geometry or CT dose; checked against the modality actually
# generated (WRONG_MODALITY turns a CT into an MR and a DX or MR into a CT).
_NEEDS_SLICES = {Defect.SLICE_GAP, Defect.THICKNESS_OUT_OF_RANGE}
WRONG_MODALITY_OF = {"CT": "MR", "MR": "CT", "DX": "CT"}
WRONG_BODY_PART_OF = {"HEAD": "CHEST"}  # anything else becomes HEAD

# Per body part: (typical CTDIvol in mGy, typical scan length in cm). CTDIvol and CTDIvol x
# length stay under the UK 2022 national DRLs (head 47 mGy / 790 mGy.cm, c-spine 16 / 400, chest
# 8.5 / 290, abdomen-pelvis 10 / 530), so a clean study passes a dose check; HIGH_DOSE
# multiplies both by 4, beyond twice any of those levels.
CT_DOSE: dict[str, tuple[float, float]] = {
    "HEAD": (40.0, 16.0),
    "NECK": (14.0, 20.0),
    "CHEST": (7.0, 32.0),
    "ABDOMEN": (9.0, 40.0),
    "PELVIS": (9.0, 25.0),
    "SPINE": (14.0, 30.0),
    "CSPINE": (13.0, 15.0),
    "LSPINE": (14.0, 18.0),
}
_CT_DOSE_OTHER = (5.0, 20.0)
HIGH_DOSE_FACTOR = 4.0
# Reconstruction thicknesses a CT offers; the default is the largest that fits the typical
# scan length into the requested number of slices (200 head slices: 0.625 mm, 40: 3 mm).
CT_THICKNESSES_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
MR_THICKNESS_MM = {"CSPINE": 3.0, "KNEE": 3.0, "HAND": 2.0, "EXTREMITY": 3.0, "SPINE": 4.0, "LSPINE": 4.0}
_MR_THICKNESS_OTHER = 5.0
FIELD_OF_VIEW_MM = {"HEAD": 240.0, "NECK": 250.0, "CSPINE": 200.0, "KNEE": 160.0, "HAND": 160.0}
_FOV_BODY_MM = 380.0
DX_FIELD_MM = 430.0  # a 43 cm flat-panel detector


def ct_dose_defaults(body_part: str) -> tuple[float, float]:
    return CT_DOSE.get(body_part, _CT_DOSE_OTHER)


@dataclass
class StudySpec:
    """Everything ``make_study`` needs; ``None`` fields take a modality/body-part default."""

    modality: str = "CT"
    body_part: str = "HEAD"
    patient_id: str = "CRV-SYN-0001"
    patient_name: str = "SYNTH^PATIENT"  # DICOM PN: FAMILY^GIVEN
    patient_sex: str = "O"
    patient_birth_date: dt.date = dt.date(1970, 1, 1)
    accession_number: str | None = None  # None: a fresh "SYN..." one; "" leaves the tag empty
    study_instance_uid: str | None = None
    study_datetime: dt.datetime | None = None  # default: now
    study_description: str | None = None
    series_count: int = 1
    slices_per_series: int | None = None  # CT 40, MR 24, DX 1 (images per series)
    rows: int = 256
    columns: int = 256
    slice_thickness: float | None = None  # mm; default: see CT_THICKNESSES_MM, MR_THICKNESS_MM
    spacing: float | None = None  # SpacingBetweenSlices, mm; default = slice thickness
    station_aet: str = "VAN01"
    manufacturer: str = "Caravan Synthetic"
    institution_name: str = "Caravan Mobile Imaging"
    ctdi_vol: float | None = None  # mGy
    # mGy.cm; default CTDIvol x the slices' coverage. The CT series are reconstructions of ONE
    # helical acquisition (kernels STANDARD, BONE, SOFT): one irradiation event, one DLP.
    dlp: float | None = None
    with_dose_sr: bool = False
    defects: frozenset[Defect] = field(default_factory=frozenset)
    seed: int = 0  # pixel noise; UIDs are always fresh

    def __post_init__(self) -> None:
        self.modality = self.modality.upper()
        self.body_part = self.body_part.upper()
        self.defects = frozenset(Defect(d) for d in self.defects)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on anything that would make an invalid or impossible study."""
        errors = []
        if self.modality not in MODALITIES:
            errors.append(f"modality {self.modality!r} is not one of {', '.join(MODALITIES)}")
        if not self.body_part or len(self.body_part) > 16:
            errors.append("body_part must be 1-16 characters (DICOM CS)")
        for name, limit in (("accession_number", 16), ("station_aet", 16), ("patient_id", 64)):
            if len(getattr(self, name) or "") > limit:
                errors.append(f"{name} is longer than {limit} characters")
        if not self.station_aet.strip():
            errors.append("station_aet is empty")
        if self.patient_sex not in ("M", "F", "O", ""):
            errors.append("patient_sex must be M, F, O or empty")
        if self.series_count < 1 or (self.slices_per_series is not None and self.slices_per_series < 1):
            errors.append("series_count and slices_per_series must be at least 1")
        if not (8 <= self.rows <= 4096 and 8 <= self.columns <= 4096):
            errors.append("rows and columns must be within 8..4096")
        for name in ("slice_thickness", "spacing", "ctdi_vol", "dlp"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                errors.append(f"{name} must be positive")
        actual = self.actual_modality if self.modality in MODALITIES else self.modality
        if actual == "DX" and self.defects & _NEEDS_SLICES:
            errors.append("slice_gap and thickness_out_of_range need CT or MR images, not DX")
        if actual != "CT" and (Defect.HIGH_DOSE in self.defects or self.ctdi_vol or self.dlp):
            errors.append(f"CT dose (ctdi_vol, dlp, high_dose) does not apply to {actual}")
        if self.with_dose_sr and actual != "CT":
            errors.append(f"a CT dose SR does not apply to {actual}")
        if Defect.INSTANCE_GAP in self.defects and self.images_per_series < 2:
            errors.append("instance_gap needs at least 2 images per series")
        if Defect.SLICE_GAP in self.defects and self.images_per_series < 3:
            errors.append("slice_gap needs at least 3 slices per series")
        if errors:
            raise ValueError("invalid StudySpec: " + "; ".join(errors))

    # --- derived values -----------------------------------------------------------------------

    @property
    def actual_modality(self) -> str:
        """The modality generated: the spec's, unless WRONG_MODALITY swaps it."""
        if Defect.WRONG_MODALITY in self.defects:
            return WRONG_MODALITY_OF[self.modality]
        return self.modality

    @property
    def actual_body_part(self) -> str:
        if Defect.WRONG_BODY_PART in self.defects:
            return WRONG_BODY_PART_OF.get(self.body_part, "HEAD")
        return self.body_part

    @property
    def images_per_series(self) -> int:
        if self.slices_per_series is not None:
            return self.slices_per_series
        return {"CT": 40, "MR": 24, "DX": 1}[self.actual_modality]

    @property
    def thickness_mm(self) -> float:
        if self.slice_thickness is not None:
            return self.slice_thickness
        if self.actual_modality == "MR":
            return MR_THICKNESS_MM.get(self.actual_body_part, _MR_THICKNESS_OTHER)
        per_slice = 10 * ct_dose_defaults(self.actual_body_part)[1] / self.images_per_series
        return max([t for t in CT_THICKNESSES_MM if t <= per_slice], default=CT_THICKNESSES_MM[0])

    @property
    def spacing_mm(self) -> float:
        return self.spacing if self.spacing is not None else self.thickness_mm

    @property
    def pixel_spacing_mm(self) -> float:
        if self.actual_modality == "DX":
            return round(DX_FIELD_MM / max(self.rows, self.columns), 4)
        fov = FIELD_OF_VIEW_MM.get(self.actual_body_part, _FOV_BODY_MM)
        return round(fov / max(self.rows, self.columns), 4)

    @property
    def ctdi_vol_mgy(self) -> float:
        """CTDIvol as written in images and dose SR (HIGH_DOSE applied)."""
        value = self.ctdi_vol if self.ctdi_vol is not None else ct_dose_defaults(self.actual_body_part)[0]
        return value * (HIGH_DOSE_FACTOR if Defect.HIGH_DOSE in self.defects else 1.0)

    @property
    def coverage_mm(self) -> float:
        """Length the slices of one series cover (count x spacing)."""
        return self.images_per_series * self.spacing_mm

    @property
    def dlp_mgycm(self) -> float:
        """Study DLP as written (HIGH_DOSE applied): ``dlp``, or CTDIvol x coverage."""
        if self.dlp is not None:
            return self.dlp * (HIGH_DOSE_FACTOR if Defect.HIGH_DOSE in self.defects else 1.0)
        return round(self.ctdi_vol_mgy * self.coverage_mm / 10, 2)

    @property
    def description(self) -> str:
        if self.study_description is not None:
            return self.study_description
        contrast = " W/O CONTRAST" if self.modality in ("CT", "MR") else ""
        return f"{self.modality} {self.body_part}{contrast}"


def uid_factory() -> Callable[[], str]:
    """The UID generator for one study: ``dicom.uids.new_uid`` (our root) when Django settings
    are configured, else pydicom's ``generate_uid``; decided once so a study never mixes roots."""
    try:
        from dicom.uids import new_uid

        new_uid()
        return new_uid
    except Exception:  # ImproperlyConfigured, or Django not importable/set up
        return lambda: str(generate_uid())


def spec_from_order(order: Order, **overrides: object) -> StudySpec:
    """A spec for the study the van would acquire for ``order`` (same accession, UID, patient)."""
    scheduled = order.scheduled_date
    now = dt.datetime.now()
    values: dict[str, object] = {
        "modality": order.modality,
        "body_part": order.body_part,
        "patient_id": order.patient_id,
        "patient_name": order.patient_name,
        "patient_sex": order.patient_sex,
        "patient_birth_date": order.patient_birth_date,
        "accession_number": order.accession_number,
        "study_instance_uid": order.study_instance_uid,
        "study_datetime": dt.datetime.combine(scheduled, now.time().replace(microsecond=0)),
        "study_description": order.requested_procedure or None,
        "station_aet": order.unit.ae_title,
    }
    values.update(overrides)
    return StudySpec(**values)  # type: ignore[arg-type]
