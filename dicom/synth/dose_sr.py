"""An X-Ray Radiation Dose SR (TID 10011 "CT Radiation Dose") for a synthetic CT study.

Readers find, anywhere in the nested ContentSequence, NUM items whose ConceptNameCodeSequence is
(113830, DCM, "Mean CTDIvol") [mGy] and (113838, DCM, "DLP") [mGy.cm] per irradiation event
(TID 10013 "CT Irradiation Event Data"), and (113813, DCM, "CT Dose Length Product Total")
[mGy.cm] in the accumulated dose data (TID 10012).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import XRayRadiationDoseSRStorage

CODE_MEAN_CTDIVOL = "113830"
CODE_DLP = "113838"
CODE_DLP_TOTAL = "113813"
DOSE_SR_SERIES_NUMBER = 990

# CID 4031 "Common Anatomic Regions" (SNOMED CT) for TID 10013's Target Region.
TARGET_REGION = {
    "HEAD": ("69536005", "Head"),
    "NECK": ("45048000", "Neck"),
    "CHEST": ("51185008", "Chest"),
    "ABDOMEN": ("818981001", "Abdomen"),
    "PELVIS": ("816092008", "Pelvis"),
    "SPINE": ("421060004", "Spine"),
    "CSPINE": ("122494005", "Cervical spine"),
    "LSPINE": ("122496007", "Lumbar spine"),
    "EXTREMITY": ("66019005", "Limb"),
    "KNEE": ("72696002", "Knee"),
    "HAND": ("85562004", "Hand"),
}


@dataclass(frozen=True)
class DoseEvent:
    """One CT irradiation event (one helical acquisition; every CT series is reconstructed from it)."""

    uid: str
    protocol: str
    ctdi_vol: float  # mGy
    dlp: float  # mGy.cm
    scan_length_mm: float
    kvp: float
    tube_current_ma: float
    exposure_time_s: float
    head_phantom: bool


def code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    ds = Dataset()
    ds.CodeValue = value
    ds.CodingSchemeDesignator = scheme
    ds.CodeMeaning = meaning
    return ds


def _item(relationship: str, value_type: str, concept: Dataset) -> Dataset:
    ds = Dataset()
    ds.RelationshipType = relationship
    ds.ValueType = value_type
    ds.ConceptNameCodeSequence = Sequence([concept])
    return ds


def _num(concept: Dataset, value: float, unit: str, relationship: str = "CONTAINS") -> Dataset:
    ds = _item(relationship, "NUM", concept)
    measured = Dataset()
    measured.NumericValue = f"{value:.6g}"
    measured.MeasurementUnitsCodeSequence = Sequence([code(unit, unit, "UCUM")])
    ds.MeasuredValueSequence = Sequence([measured])
    return ds


def _text(concept: Dataset, text: str, relationship: str = "CONTAINS") -> Dataset:
    ds = _item(relationship, "TEXT", concept)
    ds.TextValue = text
    return ds


def _code_item(concept: Dataset, value: Dataset, relationship: str = "CONTAINS") -> Dataset:
    ds = _item(relationship, "CODE", concept)
    ds.ConceptCodeSequence = Sequence([value])
    return ds


def _uidref(concept: Dataset, uid: str, relationship: str = "CONTAINS") -> Dataset:
    ds = _item(relationship, "UIDREF", concept)
    ds.UID = uid
    return ds


def _datetime(concept: Dataset, when: dt.datetime) -> Dataset:
    ds = _item("CONTAINS", "DATETIME", concept)
    ds.DateTime = when.strftime("%Y%m%d%H%M%S")
    return ds


def _container(concept: Dataset, children: list[Dataset], relationship: str = "CONTAINS") -> Dataset:
    ds = _item(relationship, "CONTAINER", concept)
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = Sequence(children)
    return ds


def _event(event: DoseEvent, target_region: tuple[str, str]) -> Dataset:
    source = _container(
        code("113831", "CT X-Ray Source Parameters"),
        [
            _text(code("113832", "Identification of the X-Ray Source"), "A"),
            _num(code("113733", "KVP"), event.kvp, "kV"),
            _num(code("113833", "Maximum X-Ray Tube Current"), event.tube_current_ma, "mA"),
            _num(code("113734", "X-Ray Tube Current"), event.tube_current_ma, "mA"),
            _num(code("113834", "Exposure Time per Rotation"), 0.5, "s"),
        ],
    )
    parameters = _container(
        code("113822", "CT Acquisition Parameters"),
        [
            _num(code("113824", "Exposure Time"), event.exposure_time_s, "s"),
            _num(code("113825", "Scanning Length"), event.scan_length_mm, "mm"),
            _num(code("113826", "Nominal Single Collimation Width"), 0.625, "mm"),
            _num(code("113827", "Nominal Total Collimation Width"), 40, "mm"),
            _num(code("113828", "Pitch Factor"), 0.9, "{ratio}"),
            _num(code("113823", "Number of X-Ray Sources"), 1, "{X-Ray sources}"),
            source,
        ],
    )
    phantom = (
        code("113690", "IEC Head Dosimetry Phantom")
        if event.head_phantom
        else code("113691", "IEC Body Dosimetry Phantom")
    )
    dose = _container(
        code("113829", "CT Dose"),
        [
            _num(code(CODE_MEAN_CTDIVOL, "Mean CTDIvol"), event.ctdi_vol, "mGy"),
            _code_item(code("113835", "CTDIw Phantom Type"), phantom),
            _num(code(CODE_DLP, "DLP"), event.dlp, "mGy.cm"),
        ],
    )
    return _container(
        code("113819", "CT Acquisition"),
        [
            _text(code("125203", "Acquisition Protocol"), event.protocol),
            _code_item(code("123014", "Target Region"), code(*target_region, scheme="SCT")),
            _code_item(code("113820", "CT Acquisition Type"), code("116152004", "Spiral Acquisition", "SCT")),
            _uidref(code("113769", "Irradiation Event UID"), event.uid),
            parameters,
            dose,
        ],
    )


def make_dose_sr(
    header: Dataset, events: list[DoseEvent], *, uid: Callable[[], str], when: dt.datetime, body_part: str
) -> Dataset:
    """The dose SR instance: ``header`` carries the patient/study/equipment attributes."""
    ds = header
    sop_uid = uid()
    ds.SOPClassUID = XRayRadiationDoseSRStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "SR"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = DOSE_SR_SERIES_NUMBER
    ds.SeriesDescription = "Dose Report"
    ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = (when + dt.timedelta(minutes=2 * len(events))).strftime("%H%M%S")
    ds.InstanceNumber = 1
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([code("113701", "X-Ray Radiation Dose Report")])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "10011"
    ds.ContentTemplateSequence = Sequence([template])
    region = TARGET_REGION.get(body_part, (body_part, body_part.title()))
    end = when + dt.timedelta(minutes=2 * max(1, len(events)))
    scope = _code_item(code("113705", "Scope of Accumulation"), code("113014", "Study"))
    scope.ContentSequence = Sequence(
        [_uidref(code("110180", "Study Instance UID"), str(ds.StudyInstanceUID), "HAS PROPERTIES")]
    )
    ds.ContentSequence = Sequence(
        [
            _code_item(
                code("121058", "Procedure reported"),
                code("77477000", "Computed Tomography X-Ray", "SCT"),
                relationship="HAS CONCEPT MOD",
            ),
            _code_item(code("121005", "Observer Type"), code("121007", "Device"), "HAS OBS CONTEXT"),
            _uidref(code("121012", "Device Observer UID"), uid(), "HAS OBS CONTEXT"),
            _text(code("121013", "Device Observer Name"), str(ds.get("StationName", "")), "HAS OBS CONTEXT"),
            _text(code("121014", "Device Observer Manufacturer"), str(ds.Manufacturer), "HAS OBS CONTEXT"),
            _datetime(code("113809", "Start of X-Ray Irradiation"), when),
            _datetime(code("113810", "End of X-Ray Irradiation"), end),
            scope,
            _container(
                code("113811", "CT Accumulated Dose Data"),
                [
                    _num(code("113812", "Total Number of Irradiation Events"), len(events), "{events}"),
                    _num(
                        code(CODE_DLP_TOTAL, "CT Dose Length Product Total"),
                        round(sum(e.dlp for e in events), 2),
                        "mGy.cm",
                    ),
                ],
            ),
            *(_event(event, region) for event in events),
        ]
    )
    return ds
