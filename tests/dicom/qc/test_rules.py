"""QC rules and engine on hand-built headers (Orthanc's simplified-tags shape): fast, no Orthanc.

Each rule has a passing and a failing case; the engine's aggregation, crash handling and
skipping of order comparisons are pinned; no message may quote patient identifiers.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from pydicom.uid import JPEGLSLossless, generate_uid

from dicom.choices import QCOutcome, QCSeverity
from dicom.models import Order
from dicom.orthanc_client import OrthancError
from dicom.qc import QCContext, Rule, StudyHeaders, get_protocols, run_rules
from dicom.qc.base import Finding
from dicom.qc.headers import GROUPING_TAGS, INDEX_INSTANCE_TAGS, InstanceHeaders, sample_positions
from dicom.qc.rules import (
    BodyPartMatchRule,
    CtDoseRule,
    ModalityMatchRule,
    PatientMatchRule,
    PixelDataRule,
    RequiredTagsRule,
    SeriesCompleteRule,
    SliceThicknessRule,
)
from dicom.qc.rules.identity import normalise_person_name
from tests.dicom.qc import ct_dataset, to_bytes

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
CT_SERIES = "1.2.826.0.1.3680043.8.498.1.1"
CT_SERIES_2 = "1.2.826.0.1.3680043.8.498.1.2"
CT_SERIES_3 = "1.2.826.0.1.3680043.8.498.1.3"
SR_SERIES = "1.2.826.0.1.3680043.8.498.1.9"
DOSE_SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.67"

PATIENT_ID = "P-000123"
PATIENT_NAME = "ZHANG^SAN"
BIRTH_DATE = "19610314"


def make_order(**changes: Any) -> Order:
    """An unsaved order: the rules only read its fields."""
    fields: dict[str, Any] = {
        "accession_number": "ACC1",
        "patient_id": PATIENT_ID,
        "patient_name": PATIENT_NAME,
        "patient_sex": "M",
        "patient_birth_date": datetime.date(1961, 3, 14),
        "modality": "CT",
        "body_part": "HEAD",
    }
    fields.update(changes)
    return Order(**fields)


def base_tags(series_uid: str, modality: str, number: int, **extra: Any) -> dict[str, Any]:
    tags: dict[str, Any] = {
        "PatientID": PATIENT_ID,
        "PatientName": PATIENT_NAME,
        "PatientBirthDate": BIRTH_DATE,
        "PatientSex": "M",
        "StudyInstanceUID": STUDY_UID,
        "SeriesInstanceUID": series_uid,
        "SOPInstanceUID": f"{series_uid}.{number}",
        "Modality": modality,
        "StudyDate": "20250101",
        "AccessionNumber": "ACC1",
        "InstanceNumber": str(number),
    }
    tags.update(extra)
    return {key: value for key, value in tags.items() if value is not ...}


def ct_slices(
    count: int,
    *,
    series_uid: str = CT_SERIES,
    spacing: float = 2.5,
    thickness: float = 2.5,
    body_part: str | None = "HEAD",
    modality: str = "CT",
    start: float = 0.0,
    **extra: Any,
) -> list[dict[str, Any]]:
    slices = []
    for n in range(1, count + 1):
        fields: dict[str, Any] = {
            "SeriesNumber": "1",
            "ImageType": "ORIGINAL\\PRIMARY\\AXIAL",
            "Rows": "512",
            "Columns": "512",
            "PixelData": None,
            "SliceThickness": f"{thickness:g}",
            "ImagePositionPatient": f"-125.0\\-125.0\\{start + (n - 1) * spacing:g}",
            "ImageOrientationPatient": "1\\0\\0\\0\\1\\0",
            "PixelSpacing": "0.488\\0.488",
        }
        tags = base_tags(series_uid, modality, n, **{**fields, **extra})
        if body_part:
            tags["BodyPartExamined"] = body_part
        slices.append(tags)
    return slices


def code_item(value: str, meaning: str) -> dict[str, str]:
    return {"CodeValue": value, "CodingSchemeDesignator": "DCM", "CodeMeaning": meaning}


def num_item(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "RelationshipType": "CONTAINS",
        "ValueType": "NUM",
        "ConceptNameCodeSequence": [code_item(code, code)],
        "MeasuredValueSequence": [
            {
                "NumericValue": f"{value:g}",
                "MeasurementUnitsCodeSequence": [{"CodeValue": unit, "CodingSchemeDesignator": "UCUM"}],
            }
        ],
    }


def container(code: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "RelationshipType": "CONTAINS",
        "ValueType": "CONTAINER",
        "ConceptNameCodeSequence": [code_item(code, code)],
        "ContentSequence": children,
    }


def dose_sr(events: list[tuple[float, float]], total: float | None, unit: str = "mGy") -> dict[str, Any]:
    content = [container("113811", [num_item("113813", total, f"{unit}.cm")])] if total is not None else []
    for ctdivol, dlp in events:
        dose = container("113829", [num_item("113830", ctdivol, unit), num_item("113838", dlp, f"{unit}.cm")])
        content.append(container("113819", [dose]))
    return base_tags(
        SR_SERIES,
        "SR",
        1,
        SeriesNumber="990",
        SOPClassUID=DOSE_SR_CLASS,
        ValueType="CONTAINER",
        ConceptNameCodeSequence=[code_item("113701", "X-Ray Radiation Dose Report")],
        ContentSequence=content,
    )


def headers(*instances: dict[str, Any]) -> StudyHeaders:
    return StudyHeaders.from_instance_tags(
        {f"{n:08x}-00000000-00000000-00000000-00000000": tags for n, tags in enumerate(instances)},
        orthanc_id="0000abcd-00000000-00000000-00000000-00000000",
    )


def context(*instances: dict[str, Any], order: Order | None = None, **kwargs: Any) -> QCContext:
    return QCContext(headers(*instances), order=order, protocols=get_protocols({}), **kwargs)


def messages(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return [(f["severity"], f["message"], f["series"]) for f in findings]


# --- headers -------------------------------------------------------------------------------------


def test_headers_group_by_series_in_dicom_order():
    study = headers(*reversed(ct_slices(3)), dose_sr([(10, 100)], 100), *ct_slices(2, series_uid=CT_SERIES_2))

    assert [s.series_instance_uid for s in study.series] == [CT_SERIES, CT_SERIES_2, SR_SERIES]
    assert [i.instance_number for i in study.series[0].instances] == [1, 2, 3]
    assert study.number_of_instances == 6
    assert [s.series_instance_uid for s in study.image_series] == [CT_SERIES, CT_SERIES_2]
    assert [s.series_instance_uid for s in study.dose_sr_series] == [SR_SERIES]
    assert study.series[0].representative().instance_number == 2


# --- required tags -------------------------------------------------------------------------------


def test_required_tags_pass():
    assert RequiredTagsRule().check(context(*ct_slices(3), dose_sr([(10, 100)], 100))) == []


def test_required_tags_fail_names_tag_and_count():
    slices = ct_slices(3)
    del slices[0]["SliceThickness"]
    slices[1]["SliceThickness"] = ""
    slices[2]["AccessionNumber"] = "  "
    sr = dose_sr([(10, 100)], 100)
    del sr["StudyDate"]

    findings = RequiredTagsRule().check(context(*slices, sr))

    assert messages(findings) == [
        ("fail", "SliceThickness is missing or empty in 2 of 3 instances", CT_SERIES),
        ("fail", "AccessionNumber is missing or empty in 1 of 3 instances", CT_SERIES),
        ("fail", "StudyDate is missing or empty in 1 of 1 instance", SR_SERIES),
    ]


def _sampled(slices: list[dict[str, Any]], read: set[int]) -> StudyHeaders:
    """Headers as the sampling loader builds them: complete for ``read``, index tags elsewhere."""
    instances = []
    like = None
    for n, tags in enumerate(slices):
        if n in read:
            like = like or InstanceHeaders(f"{n:08x}", tags)
            instances.append(InstanceHeaders(f"{n:08x}", tags))
    assert like is not None
    for n, tags in enumerate(slices):
        if n not in read:
            index = {k: v for k, v in tags.items() if k in INDEX_INSTANCE_TAGS or k in GROUPING_TAGS}
            instances.append(InstanceHeaders(f"{n:08x}", index, complete=False, like=like))
    return StudyHeaders.from_instances(instances, orthanc_id="0000abcd-00000000-00000000-00000000-00000000")


def test_required_tags_on_sampled_headers_counts_what_each_instance_could_show():
    slices = ct_slices(6)
    del slices[0]["SliceThickness"]  # read: counted among the instances read
    del slices[2]["SliceThickness"]  # not read: Orthanc's index does not keep it
    del slices[3]["ImagePositionPatient"]  # not read, but indexed: counted over every instance
    study = _sampled(slices, read={0, 5})
    ctx = QCContext(study, order=None, protocols=get_protocols({}))

    findings = RequiredTagsRule().check(ctx)

    assert messages(findings) == [
        ("fail", "SliceThickness is missing or empty in 1 of the 2 instances read (of 6)", CT_SERIES),
        ("fail", "ImagePositionPatient is missing or empty in 1 of 6 instances", CT_SERIES),
    ]
    assert (
        ctx.notes["required_tags"]
        == "complete headers read for 2 of 6 instances; Orthanc's index tags for all"
    )
    # An index-only instance is an image of its series' modality, like the instance read.
    listed = study.series[0].instances[1]
    assert not listed.complete and listed.is_image and listed.modality == "CT"
    assert study.series[0].representative().orthanc_id == f"{5:08x}"


@pytest.mark.parametrize(
    ("count", "size", "expected"),
    [
        (3, 5, [0, 1, 2]),
        (200, 5, [0, 50, 100, 149, 199]),
        (12, 3, [0, 6, 11]),
        (7, 1, [3]),
        (4, 0, [0, 1, 2, 3]),
    ],
)
def test_sample_positions_spread_first_to_last(count, size, expected):
    assert sample_positions(count, size) == expected


def test_required_tags_geometry_only_for_single_frame_ct_mr_images():
    dx = base_tags(CT_SERIES, "DX", 1, Rows="2000", Columns="2000", PixelData=None)
    enhanced_mr = base_tags(CT_SERIES_2, "MR", 1, Rows="256", NumberOfFrames="40")
    assert RequiredTagsRule().check(context(dx, enhanced_mr)) == []


# --- patient -------------------------------------------------------------------------------------


def test_patient_match_pass():
    assert PatientMatchRule().check(context(*ct_slices(2), order=make_order())) == []


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (
            "zhang^san",
            ("warn", "patient name is written differently from the order (case, separators or spacing)"),
        ),
        (
            "ZHANG^SAN^^^",
            ("warn", "patient name is written differently from the order (case, separators or spacing)"),
        ),
        (
            "Zhang San",
            ("warn", "patient name is written differently from the order (case, separators or spacing)"),
        ),
        ("ZHANG^SI", ("fail", "patient name differs from the order")),
        ("SAN^ZHANG", ("fail", "patient name differs from the order")),
    ],
)
def test_patient_name_formatting_warns_different_name_fails(found, expected):
    findings = PatientMatchRule().check(context(*ct_slices(2, PatientName=found), order=make_order()))
    assert messages(findings) == [(*expected, None)]


def test_patient_id_birth_date_and_sex_mismatch_fail_without_quoting_values():
    slices = ct_slices(2, PatientID="P-999999", PatientBirthDate="19620314", PatientSex="F")

    findings = PatientMatchRule().check(context(*slices, order=make_order()))

    assert messages(findings) == [
        ("fail", "patient ID differs from the order", None),
        ("fail", "patient birth date differs from the order", None),
        ("fail", "patient sex differs from the order", None),
    ]
    text = json.dumps(findings)
    for value in ("P-999999", PATIENT_ID, "1962", "1961", "ZHANG"):
        assert value not in text


def test_patient_mismatch_in_one_series_is_reported_on_that_series():
    slices = ct_slices(2) + ct_slices(
        2, series_uid=CT_SERIES_2, PatientBirthDate="not-a-date", PatientSex=...
    )

    findings = PatientMatchRule().check(context(*slices, order=make_order()))

    assert messages(findings) == [
        ("fail", "patient birth date in the images is not a valid DICOM date", CT_SERIES_2),
        ("warn", "patient sex is missing from the images", CT_SERIES_2),
    ]


def test_person_name_normalisation():
    assert normalise_person_name("Müller^Hans^^^=ミュラー") == "muller hans"
    assert normalise_person_name(" DOE ^ JOHN ") == "doe john"


# --- modality ------------------------------------------------------------------------------------


def test_modality_match_pass_ignores_dose_sr():
    assert (
        ModalityMatchRule().check(context(*ct_slices(2), dose_sr([(10, 100)], 100), order=make_order())) == []
    )


def test_modality_mismatch_fails_per_series():
    slices = ct_slices(2) + ct_slices(2, series_uid=CT_SERIES_2, modality="MR")

    findings = ModalityMatchRule().check(context(*slices, order=make_order()))

    assert messages(findings) == [("fail", "series modality MR is not the booked CT", CT_SERIES_2)]


def test_modality_fails_when_no_image_series_has_the_booked_modality():
    findings = ModalityMatchRule().check(context(dose_sr([(10, 100)], 100), order=make_order()))
    assert messages(findings) == [("fail", "the study has no CT image series", None)]


# --- body part -----------------------------------------------------------------------------------


def test_body_part_match_pass_with_alias():
    slices = ct_slices(2) + ct_slices(2, series_uid=CT_SERIES_2, body_part="Brain")
    assert BodyPartMatchRule().check(context(*slices, order=make_order())) == []


def test_body_part_mismatch_fails_and_missing_warns():
    slices = ct_slices(2, body_part="CHEST") + ct_slices(2, series_uid=CT_SERIES_2, body_part=None)

    findings = BodyPartMatchRule().check(context(*slices, dose_sr([(1, 1)], 1), order=make_order()))

    assert messages(findings) == [
        ("fail", "body part CHEST does not match the booked HEAD", CT_SERIES),
        ("warn", "Body Part Examined is missing", CT_SERIES_2),
    ]


# --- series completeness -------------------------------------------------------------------------


def test_series_complete_pass():
    # Multi-echo: two images per position is not a gap; a two-view localizer (one image per
    # orientation) has no stack to judge.
    echoes = ct_slices(6, series_uid=CT_SERIES_2, modality="MR")
    for n, tags in enumerate(echoes):
        tags["ImagePositionPatient"] = f"0\\0\\{(n // 2) * 4:g}"
    scout = ct_slices(2, series_uid=CT_SERIES_3, ImageType="ORIGINAL\\PRIMARY\\LOCALIZER")
    scout[1]["ImageOrientationPatient"] = "0\\1\\0\\0\\0\\-1"

    assert SeriesCompleteRule().check(context(*ct_slices(20), *echoes, *scout)) == []


def test_series_complete_fails_on_missing_and_repeated_instance_numbers():
    slices = ct_slices(6)
    del slices[2]  # number 3 missing
    slices[4]["InstanceNumber"] = "5"  # 6 becomes a second 5
    unnumbered = ct_slices(1, series_uid=CT_SERIES_2, InstanceNumber=...)

    findings = SeriesCompleteRule().check(context(*slices, *unnumbered))

    assert messages(findings) == [
        ("fail", "instance numbers repeat: 5", CT_SERIES),
        ("fail", "instance numbers are not 1..5: missing 3", CT_SERIES),
        # Slice 3 is gone, so is its position: 5 mm where the others are 2.5 mm apart.
        ("fail", "1 gap in slice positions, largest 5.0 mm where the median spacing is 2.50 mm", CT_SERIES),
        ("fail", "1 instance without an instance number", CT_SERIES_2),
        ("fail", "instance numbers are not 1..1: missing 1", CT_SERIES_2),
    ]


def test_series_complete_fails_on_a_slice_gap():
    slices = ct_slices(10)
    for n, tags in enumerate(slices[5:], start=5):
        tags["ImagePositionPatient"] = f"-125.0\\-125.0\\{n * 2.5 + 7.5:g}"

    findings = SeriesCompleteRule().check(context(*slices))

    assert messages(findings) == [
        ("fail", "1 gap in slice positions, largest 10.0 mm where the median spacing is 2.50 mm", CT_SERIES)
    ]


def test_series_complete_skips_projection_series():
    views = [base_tags(CT_SERIES, "DX", 1, Rows="2000", PixelData=None) for _ in range(2)]
    assert SeriesCompleteRule().check(context(*views)) == []


# --- slice thickness -----------------------------------------------------------------------------


def test_slice_thickness_pass():
    assert SliceThicknessRule().check(context(*ct_slices(3, thickness=5.0), order=make_order())) == []


def test_slice_thickness_outside_protocol_warns():
    slices = ct_slices(3, thickness=10.0) + ct_slices(
        3, series_uid=CT_SERIES_2, modality="MR", body_part="KNEE", thickness=5.0
    )

    # No order: the body part comes from each series' header.
    findings = SliceThicknessRule().check(context(*slices))

    assert messages(findings) == [
        ("warn", "slice thickness 10 mm outside the protocol range 0.5-5 mm for CT HEAD", CT_SERIES),
        ("warn", "slice thickness 5 mm outside the protocol range 0.5-4 mm for MR KNEE", CT_SERIES_2),
    ]


def test_slice_thickness_protocol_overridable_from_settings(settings):
    settings.QC_PROTOCOLS = {"slice_thickness_mm": {"CT": {"HEAD": [3, 6]}}}
    ctx = QCContext(headers(*ct_slices(3, thickness=2.5)), order=make_order())

    findings = SliceThicknessRule().check(ctx)

    assert messages(findings) == [
        ("warn", "slice thickness 2.5 mm outside the protocol range 3-6 mm for CT HEAD", CT_SERIES)
    ]
    assert ctx.protocols.thickness_range("CT", "CHEST") == get_protocols({}).thickness_range("CT", "CHEST")


@pytest.mark.parametrize(
    "overrides",
    [
        {"slice_thickness": {}},
        {"slice_thickness_mm": {"CT": {"HEAD": [6, 3]}}},
        {"ct_drl": {"HEAD": {"ctdivol_mgy": 60}}},
        {"ct_drl": {"HEAD": {"ctdivol_mgy": -1, "dlp_mgy_cm": 1000}}},
        {"slice_gap_factor": 1},
        {"body_part_aliases": {"HEAD": "BRAIN"}},
    ],
)
def test_bad_protocol_settings_fail_loudly(overrides):
    with pytest.raises(ImproperlyConfigured):
        get_protocols(overrides)


# --- CT dose -------------------------------------------------------------------------------------


def test_ct_dose_from_sr_under_drl_passes_and_says_its_source():
    ctx = context(*ct_slices(3, CTDIvol="200"), dose_sr([(30, 300), (40, 400)], 700), order=make_order())

    assert CtDoseRule().check(ctx) == []
    assert ctx.notes["ct_dose"] == "source: dose SR, CTDIvol 40.0 mGy, DLP 700 mGy.cm"


def test_ct_dose_from_sr_above_drl_warns_and_above_twice_fails():
    ctx = context(*ct_slices(3), dose_sr([(20, 300), (50, 500)], 1600), order=make_order())

    findings = CtDoseRule().check(ctx)

    assert messages(findings) == [
        ("warn", "CTDIvol 50.0 mGy is above the HEAD DRL (47 mGy); source: dose SR", None),
        ("fail", "DLP 1600.0 mGy.cm is above 2 x the HEAD DRL (1580 mGy.cm); source: dose SR", None),
    ]


def test_ct_dose_sr_without_total_sums_event_dlps_and_converts_gy():
    ctx = context(*ct_slices(3), dose_sr([(0.005, 0.25), (0.006, 0.3)], None, unit="Gy"), order=make_order())

    findings = CtDoseRule().check(ctx)

    assert findings == []
    assert ctx.notes["ct_dose"] == "source: dose SR, CTDIvol 6.0 mGy, DLP 550 mGy.cm"


def test_ct_dose_from_image_headers_estimates_dlp_once_per_acquisition():
    # 40 slices 5 mm apart, 5 mm thick: 200 mm irradiated; a bone-kernel reconstruction of the
    # same acquisition must not double it; a second, separate acquisition adds to it.
    soft = ct_slices(40, spacing=5, thickness=5, CTDIvol="50")
    bone = ct_slices(80, series_uid=CT_SERIES_2, spacing=2.5, thickness=2.5, start=1.25, CTDIvol="50")
    ctx = context(*soft, *bone, order=make_order())

    findings = CtDoseRule().check(ctx)

    assert ctx.notes["ct_dose"] == "source: image headers, CTDIvol 50.0 mGy, DLP 1000 mGy.cm (estimated)"
    assert messages(findings) == [
        ("warn", "CTDIvol 50.0 mGy is above the HEAD DRL (47 mGy); source: image headers", None),
        (
            "warn",
            "estimated DLP 1000.0 mGy.cm is above the HEAD DRL (790 mGy.cm); source: image headers",
            None,
        ),
    ]

    post = ct_slices(40, series_uid=CT_SERIES_3, spacing=5, thickness=5, start=400, CTDIvol="10")
    ctx = context(*ct_slices(40, spacing=5, thickness=5, CTDIvol="10"), *post, order=make_order())
    assert CtDoseRule().check(ctx) == []
    assert ctx.notes["ct_dose"] == "source: image headers, CTDIvol 10.0 mGy, DLP 400 mGy.cm (estimated)"


def test_ct_dose_missing_warns_and_non_ct_is_skipped():
    findings = CtDoseRule().check(context(*ct_slices(3), order=make_order()))
    assert messages(findings) == [
        ("warn", "no dose information: no dose SR and no CTDIvol in the CT image headers", None)
    ]

    report = run_rules(context(*ct_slices(3, modality="MR"), order=make_order(modality="MR")), [CtDoseRule()])
    assert report.rules_run[0]["status"] == "skipped"
    assert report.rules_run[0]["note"] == "no CT images or dose report in the study"


def test_ct_dose_without_order_uses_the_header_body_part():
    ctx = context(*ct_slices(3, body_part="THORAX"), dose_sr([(25, 300)], 300))

    findings = CtDoseRule().check(ctx)

    assert messages(findings) == [
        ("fail", "CTDIvol 25.0 mGy is above 2 x the CHEST DRL (17 mGy); source: dose SR", None),
        ("warn", "DLP 300.0 mGy.cm is above the CHEST DRL (290 mGy.cm); source: dose SR", None),
    ]


# --- pixel data ----------------------------------------------------------------------------------


def _fetcher(files: dict[str, bytes]):
    calls: list[str] = []

    def fetch(orthanc_id: str) -> bytes:
        calls.append(orthanc_id)
        if orthanc_id not in files:
            raise OrthancError("not found", status_code=404)
        return files[orthanc_id]

    return fetch, calls


def _good_file() -> bytes:
    return to_bytes(ct_dataset(study_uid=generate_uid(), series_uid=generate_uid(), instance_number=1))


def test_pixel_data_pass_fetches_one_instance_per_image_series():
    ctx = context(*ct_slices(5), *ct_slices(3, series_uid=CT_SERIES_2), dose_sr([(1, 1)], 1))
    files = {series.representative().orthanc_id: _good_file() for series in ctx.headers.image_series}
    ctx.fetch_instance, calls = _fetcher(files)

    assert PixelDataRule().check(ctx) == []
    assert sorted(calls) == sorted(files)


def test_pixel_data_truncated_fails_with_the_decoder_message():
    ds = ct_dataset(study_uid=generate_uid(), series_uid=generate_uid(), instance_number=1)
    ds.PixelData = ds.PixelData[:-32]
    ctx = context(*ct_slices(1))
    ctx.fetch_instance, _ = _fetcher({ctx.headers.series[0].representative().orthanc_id: to_bytes(ds)})

    (finding,) = PixelDataRule().check(ctx)

    assert finding["severity"] == "fail"
    assert finding["series"] == CT_SERIES
    assert finding["message"].startswith("pixel data cannot be decoded: ")
    assert "96 vs 128 bytes" in finding["message"]


def test_pixel_data_unreadable_or_unfetchable_fails_and_undecodable_syntax_warns():
    ctx = context(*ct_slices(1), *ct_slices(1, series_uid=CT_SERIES_2), *ct_slices(1, series_uid=CT_SERIES_3))
    jpeg = ct_dataset(study_uid=generate_uid(), series_uid=generate_uid(), instance_number=1)
    # JPEG-LS: pydicom needs pyjpegls or pylibjpeg for it, neither of which the project installs
    # (Pillow, pulled in by the PDF library, decodes JPEG Baseline and JPEG 2000).
    jpeg.file_meta.TransferSyntaxUID = JPEGLSLossless
    # Encapsulated: an empty basic offset table, one fragment holding an empty JPEG, the delimiter.
    jpeg.PixelData = (
        b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
        + b"\xfe\xff\x00\xe0\x04\x00\x00\x00\xff\xd8\xff\xd9"
        + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    )
    jpeg["PixelData"].VR = "OB"
    jpeg["PixelData"].is_undefined_length = True
    first, second, _third = (s.representative().orthanc_id for s in ctx.headers.series)
    ctx.fetch_instance, _ = _fetcher({first: b"not dicom at all", second: to_bytes(jpeg)})

    findings = PixelDataRule().check(ctx)

    assert [(f["severity"], f["series"]) for f in findings] == [
        ("fail", CT_SERIES),
        ("warn", CT_SERIES_2),
        ("fail", CT_SERIES_3),
    ]
    assert findings[0]["message"].startswith("the instance is not readable as DICOM: ")
    assert findings[1]["message"] == (
        "pixel data not verified: no decoder plugin installed for JPEG-LS Lossless Image Compression"
    )
    assert findings[2]["message"] == "could not fetch an instance from Orthanc (HTTP 404)"


# --- engine --------------------------------------------------------------------------------------


class _Fixed(Rule):
    severity = QCSeverity.FAIL
    description = "returns the findings it was given"

    def __init__(self, rule_id: str, findings: list[tuple[str, str]]):
        self.id = rule_id  # type: ignore[misc]
        self._findings = findings

    def check(self, context: QCContext) -> list[Finding]:
        return [Finding(rule=self.id, severity=s, message=m, series=None) for s, m in self._findings]


class _Boom(Rule):
    id = "boom"
    severity = QCSeverity.FAIL
    description = "always crashes"

    def check(self, context: QCContext) -> list[Finding]:
        raise ValueError(f"bad value {PATIENT_ID}")


@pytest.mark.parametrize(
    ("severities", "outcome"),
    [([], QCOutcome.PASS), (["warn"], QCOutcome.WARN), (["warn", "fail", "warn"], QCOutcome.FAIL)],
)
def test_outcome_is_the_worst_finding(severities, outcome):
    rules = [_Fixed(f"r{n}", [(s, f"finding {n}")]) for n, s in enumerate(severities)] + [_Fixed("quiet", [])]

    report = run_rules(context(*ct_slices(1)), rules)

    assert report.outcome == outcome
    assert [f["severity"] for f in report.findings] == severities
    assert [r["status"] for r in report.rules_run] == ["ran"] * (len(severities) + 1)


def test_a_crashing_rule_becomes_a_failure_and_the_others_still_run(caplog):
    with caplog.at_level(logging.INFO, logger="dicom.qc.engine"):
        report = run_rules(context(*ct_slices(1)), [_Boom(), _Fixed("after", [("warn", "still ran")])])

    assert report.outcome == QCOutcome.FAIL
    assert messages(report.findings) == [  # type: ignore[arg-type]
        ("fail", "rule boom could not run: ValueError", None),
        ("warn", "still ran", None),
    ]
    assert [(r["rule"], r["status"], r["findings"]) for r in report.rules_run] == [
        ("boom", "error", 1),
        ("after", "ran", 1),
    ]
    assert "QC rule boom crashed" in caplog.text
    assert PATIENT_ID not in caplog.text


def test_unmatched_study_skips_order_comparisons_and_says_so():
    report = run_rules(context(*ct_slices(3, CTDIvol="10")))

    skipped = {r["rule"]: r["note"] for r in report.rules_run if r["status"] == "skipped"}
    assert skipped == {
        "patient_match": "no order matched: nothing to compare with",
        "modality_match": "no order matched: nothing to compare with",
        "body_part_match": "no order matched: nothing to compare with",
        "pixel_data": "no instance fetcher given",
    }
    assert report.outcome == QCOutcome.PASS
    assert [r["rule"] for r in report.rules_run] == [
        "required_tags",
        "patient_match",
        "modality_match",
        "body_part_match",
        "series_complete",
        "slice_thickness",
        "ct_dose",
        "pixel_data",
    ]


def test_full_run_is_json_serialisable_and_quotes_no_patient_data():
    slices = ct_slices(
        4,
        PatientID="OTHER-ID-77",
        PatientName="DOE^JANE",
        PatientBirthDate="20010203",
        PatientSex="F",
        body_part="KNEE",
        thickness=9,
    )
    del slices[1]
    order = make_order(modality="MR")

    report = run_rules(context(*slices, dose_sr([(100, 3000)], 3000), order=order))

    assert report.outcome == QCOutcome.FAIL
    assert {f["rule"] for f in report.findings} == {
        "patient_match",
        "modality_match",
        "body_part_match",
        "series_complete",
        "slice_thickness",
        "ct_dose",
    }
    text = json.dumps(report.as_dict())
    for value in ("OTHER-ID-77", "DOE", "JANE", "2001", "0203", PATIENT_ID, "ZHANG", "1961"):
        assert value not in text
