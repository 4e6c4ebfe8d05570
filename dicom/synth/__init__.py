"""Synthetic, realistic DICOM studies for the demo, the tests and the ingest benchmark.

    spec = StudySpec(modality="CT", body_part="HEAD", slices_per_series=200, with_dose_sr=True)
    datasets = make_study(spec)                  # or iter_study(spec), one at a time
    send_study(datasets, host=..., port=..., calling_aet="VAN01", called_aet="CARAVAN")

Defects (``StudySpec.defects``), each a difference from the clean study of the same spec:

* MISSING_TAGS: PatientID and StudyDate absent from every instance, SliceThickness from every
  instance of series 1.
* WRONG_PATIENT: PatientName, PatientID, PatientBirthDate and PatientSex all differ from the spec.
* WRONG_MODALITY: CT is generated as MR, MR and DX as CT (consistent SOP class and tags).
* WRONG_BODY_PART: BodyPartExamined HEAD becomes CHEST, anything else HEAD.
* INSTANCE_GAP: in series 1, InstanceNumber skips ``n // 2 + 1`` (positions stay contiguous).
* SLICE_GAP: in series 1, slices from ``n // 2`` on move one extra spacing along the normal,
  so one step is 2 x spacing (instance numbers stay contiguous).
* THICKNESS_OUT_OF_RANGE: SliceThickness max(12 mm, 4 x the spec's) in every series.
* HIGH_DOSE: CTDIvol and DLP x4 (images and dose SR); the defaults sit under common DRLs.
* UNDECODABLE_PIXELS: PixelData of every instance of series 1 cut to half its length.
"""

from dicom.synth.dose_sr import CODE_DLP, CODE_DLP_TOTAL, CODE_MEAN_CTDIVOL, DOSE_SR_SERIES_NUMBER
from dicom.synth.images import MISSING_SERIES_TAGS, MISSING_STUDY_TAGS, SOP_CLASS, iter_study, make_study
from dicom.synth.send import (
    NODELAY_HANDLERS,
    InstanceStatus,
    SendError,
    SendResult,
    send_study,
    set_tcp_nodelay,
    to_bytes,
    upload_study_rest,
)
from dicom.synth.spec import HIGH_DOSE_FACTOR, Defect, StudySpec, spec_from_order

__all__ = [
    "CODE_DLP",
    "CODE_DLP_TOTAL",
    "CODE_MEAN_CTDIVOL",
    "DOSE_SR_SERIES_NUMBER",
    "HIGH_DOSE_FACTOR",
    "MISSING_SERIES_TAGS",
    "MISSING_STUDY_TAGS",
    "NODELAY_HANDLERS",
    "SOP_CLASS",
    "Defect",
    "InstanceStatus",
    "SendError",
    "SendResult",
    "StudySpec",
    "iter_study",
    "make_study",
    "send_study",
    "set_tcp_nodelay",
    "spec_from_order",
    "to_bytes",
    "upload_study_rest",
]
