"""``iter_study`` / ``make_study``: the instances of a synthetic study, defects injected.

Per series, the attributes every instance shares are built once (with pydicom's validation) and
each instance starts from a shallow copy of those elements; only UIDs, numbers, geometry and
pixels are made per instance.
"""

from __future__ import annotations

import copy
import datetime as dt
import gc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
)

from dicom.synth.dose_sr import DoseEvent, make_dose_sr
from dicom.synth.pixels import PhantomGenerator, profile_for
from dicom.synth.spec import Defect, StudySpec, uid_factory

SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage, "DX": DigitalXRayImageStorageForPresentation}
# MISSING_TAGS drops the study-level ones from every instance (a PatientID missing from only some
# instances would split the study in two in Orthanc, whose study id hashes PatientID) and
# SliceThickness from every instance of the first series.
MISSING_STUDY_TAGS = ("PatientID", "StudyDate")
MISSING_SERIES_TAGS = ("SliceThickness",)
THICKNESS_OUT_OF_RANGE_MM = 12.0
SAGITTAL_BODY_PARTS = {"SPINE", "CSPINE", "LSPINE", "KNEE"}
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
# (description suffix, kernel or sequence, TR ms, TE ms, TI ms or None, flip angle)
_MR_SEQUENCES = (("T1 SE", "SE", 500.0, 12.0, None, 90.0), ("T2 TSE", "SE", 4000.0, 100.0, None, 90.0),
                 ("T2 FLAIR", "IR", 9000.0, 120.0, 2500.0, 150.0))  # fmt: skip
_CT_KERNELS = (("STANDARD", 40, 80), ("BONE", 500, 2500), ("SOFT", 40, 400))  # kernel, WC, WW
_DX_VIEWS = (("PA", ["L", "F"]), ("LL", ["P", "F"]))  # ViewPosition, PatientOrientation


@dataclass
class _Study:
    spec: StudySpec
    uid: Callable[[], str]
    study_uid: str
    when: dt.datetime
    modality: str  # the one generated (WRONG_MODALITY applied)
    body_part: str
    frame_of_reference_uid: str
    accession_number: str
    irradiation_event_uid: str  # CT: the series are reconstructions of one acquisition


def make_study(spec: StudySpec) -> list[Dataset]:
    """All instances of the study: image series 1..n, then the dose SR if asked for."""
    # Tens of thousands of small objects survive the loop: the cyclic GC would rescan them
    # over and over (about a third of the time) without ever finding garbage.
    paused = gc.isenabled()
    gc.disable()
    try:
        return list(iter_study(spec))
    finally:
        if paused:
            gc.enable()


def iter_study(spec: StudySpec) -> Iterator[Dataset]:
    """Like ``make_study`` but one instance at a time (a 200-slice CT is ~26 MB in memory)."""
    spec.validate()
    uid = uid_factory()
    study = _Study(
        spec=spec,
        uid=uid,
        study_uid=spec.study_instance_uid or uid(),
        when=(spec.study_datetime or dt.datetime.now()).replace(microsecond=0),
        modality=spec.actual_modality,
        body_part=spec.actual_body_part,
        frame_of_reference_uid=uid(),
        accession_number=(
            spec.accession_number
            if spec.accession_number is not None
            else f"SYN{uuid.uuid4().hex[:12].upper()}"
        ),
        irradiation_event_uid=uid(),
    )
    phantom = PhantomGenerator(
        spec.rows,
        spec.columns,
        study.modality,
        profile_for(study.modality, study.body_part, 0),
        seed=spec.seed,
        elliptic=study.body_part not in ("HEAD", "KNEE", "HAND", "EXTREMITY"),
    )
    events: list[DoseEvent] = []
    for index in range(spec.series_count):
        phantom.set_profile(profile_for(study.modality, study.body_part, index))
        template = _series_template(study, index)
        if study.modality == "CT" and not events:
            events.append(_dose_event(study, template))
        yield from _series_instances(study, index, template, phantom)
    if spec.with_dose_sr:
        sr = make_dose_sr(
            _patient_study_module(study), events, uid=uid, when=study.when, body_part=study.body_part
        )
        sr.file_meta = _file_meta(str(sr.SOPClassUID), str(sr.SOPInstanceUID), spec.station_aet)
        yield sr


def _patient_study_module(study: _Study) -> Dataset:
    """Patient, study and equipment attributes shared by every instance (SR included)."""
    spec, ds = study.spec, Dataset()
    name, pid, birth, sex = spec.patient_name, spec.patient_id, spec.patient_birth_date, spec.patient_sex
    if Defect.WRONG_PATIENT in spec.defects:
        name = "OTHER^PATIENT" if name != "OTHER^PATIENT" else "ANOTHER^PATIENT"
        pid = (pid[:58] + "-OTHER") if pid else "OTHER"
        birth = birth - dt.timedelta(days=3 * 365 + 17)
        sex = {"M": "F", "F": "M"}.get(sex, "M")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = study.when.strftime("%Y%m%d")
    ds.StudyTime = study.when.strftime("%H%M%S")
    ds.AccessionNumber = study.accession_number
    ds.Manufacturer = spec.manufacturer
    ds.InstitutionName = spec.institution_name
    ds.ReferringPhysicianName = ""
    ds.StationName = spec.station_aet
    ds.StudyDescription = spec.description
    ds.ManufacturerModelName = f"Synth {study.modality} 1000"
    ds.DeviceSerialNumber = f"SYN-{study.modality}-0001"
    ds.SoftwareVersions = "caravan-synth 1.0"
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = birth.strftime("%Y%m%d")
    ds.PatientSex = sex
    age = (study.when.date() - birth).days // 365
    ds.PatientAge = f"{max(0, min(age, 999)):03d}Y"
    ds.StudyInstanceUID = study.study_uid
    ds.StudyID = "1"
    if Defect.MISSING_TAGS in spec.defects:
        for keyword in MISSING_STUDY_TAGS:
            delattr(ds, keyword)
    return ds


def _series_template(study: _Study, index: int) -> Dataset:
    spec, modality = study.spec, study.modality
    ds = _patient_study_module(study)
    series_time = (study.when + dt.timedelta(minutes=2 * index)).strftime("%H%M%S")
    ds.SOPClassUID = SOP_CLASS[modality]
    ds.Modality = modality
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.when.strftime("%Y%m%d")
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series_time
    ds.BodyPartExamined = study.body_part
    ds.SeriesInstanceUID = study.uid()
    ds.SeriesNumber = index + 1
    ds.AcquisitionNumber = index + 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    if modality == "DX":
        _dx_attributes(ds, study, index)
    else:
        _cross_section_attributes(ds, study, index)
    if index == 0 and Defect.MISSING_TAGS in spec.defects:
        for keyword in MISSING_SERIES_TAGS:
            if keyword in ds:
                delattr(ds, keyword)
    return ds


def _cross_section_attributes(ds: Dataset, study: _Study, index: int) -> None:
    spec = study.spec
    thickness = spec.thickness_mm
    if Defect.THICKNESS_OUT_OF_RANGE in spec.defects:
        thickness = max(THICKNESS_OUT_OF_RANGE_MM, 4 * thickness)
    plane = "SAGITTAL" if study.body_part in SAGITTAL_BODY_PARTS and study.modality == "MR" else "AXIAL"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if plane == "AXIAL" else "OTHER"]
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "FFS" if study.body_part == "KNEE" else "HFS"
    ds.ImageOrientationPatient = list(SAGITTAL if plane == "SAGITTAL" else AXIAL)
    ds.PixelSpacing = [spec.pixel_spacing_mm, spec.pixel_spacing_mm]
    ds.SliceThickness = round(thickness, 4)
    ds.SpacingBetweenSlices = round(spec.spacing_mm, 4)
    if study.modality == "CT":
        kernel, center, width = _CT_KERNELS[index % len(_CT_KERNELS)]
        ds.SeriesDescription = f"{study.body_part} AX {thickness:g}mm {kernel}"
        ds.ProtocolName = f"{study.body_part} ROUTINE"
        ds.ScanOptions = "HELICAL MODE"
        ds.KVP = 120
        ds.ExposureTime = 1000
        ds.XRayTubeCurrent = 250 if study.body_part == "HEAD" else 180
        ds.Exposure = ds.XRayTubeCurrent
        ds.ConvolutionKernel = kernel
        ds.DataCollectionDiameter = 500
        ds.ReconstructionDiameter = round(spec.pixel_spacing_mm * max(spec.rows, spec.columns), 2)
        ds.GantryDetectorTilt = 0
        ds.TableHeight = 150
        ds.RotationDirection = "CW"
        ds.FilterType = "BODY FILTER"
        ds.GeneratorPower = 30
        ds.FocalSpots = 0.7
        ds.SpiralPitchFactor = 0.9
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = center, width
        ds.CTDIvol = spec.ctdi_vol_mgy
        ds.IrradiationEventUID = study.irradiation_event_uid
    else:
        label, scanning, tr, te, ti, flip = _MR_SEQUENCES[index % len(_MR_SEQUENCES)]
        ds.SeriesDescription = f"{study.body_part} {plane[:3]} {label}"
        ds.ProtocolName = f"{study.body_part} ROUTINE"
        ds.ScanningSequence = scanning
        ds.SequenceVariant = "SK"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime, ds.EchoTime = tr, te
        if ti is not None:
            ds.InversionTime = ti
        ds.EchoTrainLength = 1 if label.startswith("T1") else 16
        ds.NumberOfAverages = 2
        ds.FlipAngle = flip
        ds.MagneticFieldStrength = 1.5
        ds.ImagingFrequency = 63.87
        ds.ImagedNucleus = "1H"
        ds.ReceiveCoilName = "HEAD" if study.body_part == "HEAD" else "BODY"
        ds.WindowCenter, ds.WindowWidth = 700, 1400


def _dx_attributes(ds: Dataset, study: _Study, index: int) -> None:
    view, orientation = _DX_VIEWS[index % len(_DX_VIEWS)]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.SeriesDescription = f"{study.body_part} {view}"
    ds.ProtocolName = f"{study.body_part} {view}"
    ds.ViewPosition = view
    ds.PatientOrientation = orientation
    ds.ImageLaterality = "U"
    ds.DetectorType = "SCINTILLATOR"
    ds.ImagerPixelSpacing = [study.spec.pixel_spacing_mm, study.spec.pixel_spacing_mm]
    ds.KVP = 120 if study.body_part == "CHEST" else 70
    ds.ExposureTime = 10
    ds.XRayTubeCurrent = 320
    ds.Exposure = 3
    ds.DistanceSourceToDetector = 1800
    ds.DistanceSourceToPatient = 1650
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.WindowCenter, ds.WindowWidth = 2048, 4096


def _dose_event(study: _Study, template: Dataset) -> DoseEvent:
    spec = study.spec
    return DoseEvent(
        uid=study.irradiation_event_uid,
        protocol=str(template.ProtocolName),
        ctdi_vol=spec.ctdi_vol_mgy,
        dlp=spec.dlp_mgycm,
        scan_length_mm=round(spec.coverage_mm, 2),
        kvp=float(template.KVP),
        tube_current_ma=float(template.XRayTubeCurrent),
        exposure_time_s=float(template.ExposureTime) / 1000,
        head_phantom=study.body_part == "HEAD",
    )


def _series_instances(
    study: _Study, index: int, template: Dataset, phantom: PhantomGenerator
) -> Iterator[Dataset]:
    spec, count = study.spec, study.spec.images_per_series
    first = index == 0
    instance_gap = first and Defect.INSTANCE_GAP in spec.defects
    slice_gap = first and Defect.SLICE_GAP in spec.defects
    undecodable = first and Defect.UNDECODABLE_PIXELS in spec.defects
    elements = list(template.values())
    # Shallow element copies would share these lists between instances: give each its own.
    multi_valued = [elem.tag for elem in elements if isinstance(elem.value, MultiValue)]
    geometry = "ImageOrientationPatient" in template
    if geometry:
        row_dir, col_dir = _directions(template)
        normal = _cross(row_dir, col_dir)
        ps = spec.pixel_spacing_mm
        half_w, half_h = (spec.columns - 1) / 2 * ps, (spec.rows - 1) / 2 * ps
        corner = [-half_w * r - half_h * c for r, c in zip(row_dir, col_dir, strict=True)]
    for i in range(count):
        ds = Dataset({elem.tag: copy.copy(elem) for elem in elements})
        for tag in multi_valued:
            ds[tag].value = list(ds[tag].value)
        sop_uid = study.uid()
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = i + 2 if instance_gap and i >= count // 2 else i + 1
        ds.file_meta = _file_meta(str(ds.SOPClassUID), sop_uid, spec.station_aet)
        step = i + 1 if slice_gap and i >= count // 2 else i
        position = (2 * step / (count - 1) - 1) if count > 1 else 0.0
        if geometry:
            offset = (step - (count - 1) / 2) * spec.spacing_mm
            ipp = [round(c + offset * n, 4) for c, n in zip(corner, normal, strict=True)]
            ds.ImagePositionPatient = ipp
            ds.SliceLocation = round(sum(p * n for p, n in zip(ipp, normal, strict=True)), 4)
        pixels = phantom.slice(max(-1.0, min(1.0, position)))
        if undecodable:
            pixels = pixels[: (len(pixels) // 4) * 2]
        ds.PixelData = pixels
        ds["PixelData"].VR = "OW"
        yield ds


def _directions(ds: Dataset) -> tuple[list[float], list[float]]:
    """Row and column direction cosines from ImageOrientationPatient."""
    iop = [float(v) for v in ds.ImageOrientationPatient]
    return iop[:3], iop[3:]


def _cross(a: list[float], b: list[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _file_meta(sop_class: str, sop_uid: str, source_aet: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.SourceApplicationEntityTitle = source_aet
    return meta
