"""Small, valid DICOM instances for tests (pydicom only, no numpy).

``ct_instance()`` builds one CT Image Storage instance with file meta and real 16-bit pixel
data; ``ct_series()`` builds several slices of one series; ``to_bytes()`` gives the Part 10
file. All identifiers are synthetic. ``storage_scu()`` and ``associate()`` open real DICOM
associations with pynetdicom, TCP_NODELAY on (the handler lives in dicom.synth). For bigger,
realistic studies (numpy phantoms, dose SR, QC defects) use ``dicom.synth``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from dicom.synth import NODELAY_HANDLERS, set_tcp_nodelay  # noqa: F401  (re-exported for tests)

# Made-up but well-formed demographics; tests assert they never reach a log.
PATIENT_NAME = "CARAVAN^TESTPATIENT"
PATIENT_ID = "CRV-TEST-0001"


def _pixels(rows: int, columns: int, seed: int) -> bytes:
    # A deterministic gradient: different per slice, so a byte-equality check means something.
    values = ((r * columns + c + seed * 37) % 4096 for r in range(rows) for c in range(columns))
    return struct.pack(f"<{rows * columns}H", *values)


def ct_instance(
    *,
    patient_id: str = PATIENT_ID,
    patient_name: str = PATIENT_NAME,
    accession_number: str = "ACC0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int = 1,
    rows: int = 16,
    columns: int = 16,
    slice_thickness: float = 2.5,
    study_description: str = "CT HEAD W/O CONTRAST",
    modality: str = "CT",
) -> Dataset:
    """One CT Image Storage instance (Explicit VR Little Endian), ready for C-STORE or upload."""
    sop_uid = sop_uid or generate_uid()
    now = datetime.now()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.AccessionNumber = accession_number
    ds.Modality = modality
    ds.Manufacturer = "Caravan Test Factory"
    ds.StudyDescription = study_description
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.FrameOfReferenceUID = generate_uid()
    ds.ImagePositionPatient = [0.0, 0.0, float(instance_number - 1) * slice_thickness]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceThickness = slice_thickness
    ds.KVP = 120
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.PixelSpacing = [0.5, 0.5]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = _pixels(rows, columns, instance_number)
    ds["PixelData"].VR = "OW"
    return ds


def ct_series(count: int, **kwargs) -> list[Dataset]:
    """``count`` slices of one series of one study (shared UIDs, instance numbers 1..count)."""
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    series_uid = kwargs.pop("series_uid", None) or generate_uid()
    return [
        ct_instance(study_uid=study_uid, series_uid=series_uid, instance_number=n, **kwargs)
        for n in range(1, count + 1)
    ]


def to_bytes(ds: Dataset) -> bytes:
    """The DICOM Part 10 file (preamble, DICM, file meta, dataset)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def iter_bytes(datasets: list[Dataset]) -> Iterator[bytes]:
    for ds in datasets:
        yield to_bytes(ds)


# --- DICOM associations ---------------------------------------------------------------------


def storage_scu(calling_aet: str, timeout: float = 10) -> AE:
    """An AE that proposes CT Image Storage and Verification."""
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.add_requested_context(Verification)
    return ae


def associate(
    port: int,
    *,
    calling_aet: str,
    called_aet: str,
    host: str = "127.0.0.1",
    bind_host: str = "127.0.0.1",
) -> Association:
    """Open an association from ``bind_host`` (any 127.x address works on Linux)."""
    return storage_scu(calling_aet).associate(
        host, port, ae_title=called_aet, bind_address=(bind_host, 0), evt_handlers=NODELAY_HANDLERS
    )


def send_synthetic(orthanc, datasets: list[Dataset]) -> str:
    """C-STORE ``datasets`` (one study) from the fixture's van AE as dicom.synth sends them; the
    Orthanc study id."""
    from dicom.synth import send_study

    result = send_study(
        datasets,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        calling_aet=orthanc.scu_aet,
        called_aet=orthanc.aet,
    )
    assert result.ok, result.failed
    (match,) = [r for r in orthanc.client.lookup(datasets[0].StudyInstanceUID) if r["Type"] == "Study"]
    return match["ID"]
