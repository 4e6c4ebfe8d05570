"""Tests of the acquisition QC rules (dicom/qc/).

The builders below make small pydicom datasets for the pixel and Orthanc tests: a CT slice with
real 16-bit pixels, and a minimal X-Ray Radiation Dose SR (TID 10011-like: a CONTAINER tree with
NUM items for Mean CTDIvol, DLP and the DLP total). They use pydicom only, so these tests do not
depend on the synthetic study generator.
"""

from __future__ import annotations

import io
import struct

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

X_RAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
PATIENT = {
    "PatientID": "QC-TEST-0001",
    "PatientName": "QCTEST^PATIENT",
    "PatientBirthDate": "19610314",
    "PatientSex": "M",
}


def _meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _common(ds: Dataset, *, study_uid: str, series_uid: str, modality: str, accession: str) -> None:
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = "20250101"
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = modality


def ct_dataset(
    *,
    study_uid: str,
    series_uid: str,
    instance_number: int,
    series_number: int = 1,
    z: float | None = None,
    thickness: float = 2.5,
    body_part: str = "HEAD",
    accession: str = "QCACC0001",
    ctdivol: float | None = None,
    rows: int = 8,
    columns: int = 8,
) -> Dataset:
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(CTImageStorage, sop_uid)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    _common(ds, study_uid=study_uid, series_uid=series_uid, modality="CT", accession=accession)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BodyPartExamined = body_part
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, (instance_number - 1) * thickness if z is None else z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceThickness = thickness
    ds.PixelSpacing = [0.5, 0.5]
    if ctdivol is not None:
        ds.CTDIvol = ctdivol
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = struct.pack(
        f"<{rows * columns}H", *((i * 7 + instance_number) % 4096 for i in range(rows * columns))
    )
    ds["PixelData"].VR = "OW"
    return ds


def _code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _num(code: str, meaning: str, value: float, unit: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "NUM"
    item.ConceptNameCodeSequence = [_code(code, meaning)]
    measured = Dataset()
    measured.NumericValue = f"{value:g}"
    measured.MeasurementUnitsCodeSequence = [_code(unit, unit, "UCUM")]
    item.MeasuredValueSequence = [measured]
    return item


def _container(code: str, meaning: str, children: list[Dataset]) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType, item.ContinuityOfContent = "CONTAINS", "CONTAINER", "SEPARATE"
    item.ConceptNameCodeSequence = [_code(code, meaning)]
    item.ContentSequence = children
    return item


def dose_sr_dataset(
    *,
    study_uid: str,
    events: list[tuple[float, float]],
    dlp_total: float | None,
    accession: str = "QCACC0001",
) -> Dataset:
    """A dose SR: one CT Acquisition container per (CTDIvol mGy, DLP mGy.cm) event, and the total."""
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(X_RAY_RADIATION_DOSE_SR, sop_uid)
    ds.SOPClassUID = X_RAY_RADIATION_DOSE_SR
    ds.SOPInstanceUID = sop_uid
    _common(ds, study_uid=study_uid, series_uid=generate_uid(), modality="SR", accession=accession)
    ds.SeriesNumber = 990
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("113701", "X-Ray Radiation Dose Report")]
    content = []
    if dlp_total is not None:
        content.append(
            _container(
                "113811",
                "CT Accumulated Dose Data",
                [_num("113813", "CT Dose Length Product Total", dlp_total, "mGy.cm")],
            )
        )
    for ctdivol, dlp in events:
        dose = _container(
            "113829",
            "CT Dose",
            [_num("113830", "Mean CTDIvol", ctdivol, "mGy"), _num("113838", "DLP", dlp, "mGy.cm")],
        )
        content.append(_container("113819", "CT Acquisition", [dose]))
    ds.ContentSequence = content
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
