"""The acquisition QC rules, in the order they run."""

from dicom.qc.base import Rule
from dicom.qc.rules.dose import CtDoseRule
from dicom.qc.rules.geometry import SeriesCompleteRule, SliceThicknessRule
from dicom.qc.rules.identity import BodyPartMatchRule, ModalityMatchRule, PatientMatchRule, RequiredTagsRule
from dicom.qc.rules.pixels import PixelDataRule

DEFAULT_RULES: tuple[Rule, ...] = (
    RequiredTagsRule(),
    PatientMatchRule(),
    ModalityMatchRule(),
    BodyPartMatchRule(),
    SeriesCompleteRule(),
    SliceThicknessRule(),
    CtDoseRule(),
    PixelDataRule(),
)

__all__ = [
    "DEFAULT_RULES",
    "BodyPartMatchRule",
    "CtDoseRule",
    "ModalityMatchRule",
    "PatientMatchRule",
    "PixelDataRule",
    "RequiredTagsRule",
    "SeriesCompleteRule",
    "SliceThicknessRule",
]
