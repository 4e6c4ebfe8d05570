"""The QC header loader and the Orthanc-backed checks against a real Orthanc (no mocks).

Instances are built with pydicom (tests/dicom/qc/__init__.py), uploaded over REST, and read
back through ``load_study_headers``: series, instances and tags as stored (every header, or a
sample of complete headers with every instance listed from Orthanc's index), a dose SR's nested
content, the pixel check on a good and a truncated instance, and a whole QC run.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom.choices import QCOutcome
from dicom.models import Order
from dicom.qc import QCContext, get_protocols, load_study_headers, run_rules
from dicom.qc.headers import tag_floats, tag_text
from dicom.qc.rules import CtDoseRule, PixelDataRule
from dicom.qc.rules.dose import DoseEstimate, dose_from_reports
from tests.dicom.qc import PATIENT, ct_dataset, dose_sr_dataset, to_bytes

pytestmark = pytest.mark.orthanc


def _order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "accession_number": "QCACC0001",
        "patient_id": PATIENT["PatientID"],
        "patient_name": PATIENT["PatientName"],
        "patient_sex": PATIENT["PatientSex"],
        "patient_birth_date": datetime.date(1961, 3, 14),
        "modality": "CT",
        "body_part": "HEAD",
    }
    fields.update(changes)
    return Order(**fields)


def _series(study_uid: str, count: int, series_number: int, **kwargs: Any) -> list[Dataset]:
    series_uid = generate_uid()
    return [
        ct_dataset(
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=n,
            series_number=series_number,
            **kwargs,
        )
        for n in range(1, count + 1)
    ]


def _upload(client, datasets: list[Dataset]) -> tuple[str, dict[str, dict[str, Any]]]:
    """Upload in a shuffled order; return the study's Orthanc id and the answers by SOP UID."""
    shuffled = list(datasets)
    random.Random(7).shuffle(shuffled)
    answers = {ds.SOPInstanceUID: client.upload_instance(to_bytes(ds)) for ds in shuffled}
    assert {a["Status"] for a in answers.values()} == {"Success"}
    (study_id,) = {a["ParentStudy"] for a in answers.values()}
    return study_id, answers


def _ct_with_dose_report(client, *, ctdivol: float, dlp: float, images: list[Dataset] | None = None):
    """12 CT slices (or ``images``) and a one-event dose SR, uploaded: (study id, answers, images)."""
    study_uid = images[0].StudyInstanceUID if images else generate_uid()
    images = images or _series(study_uid, 12, series_number=1, ctdivol=ctdivol)
    report = dose_sr_dataset(study_uid=study_uid, events=[(ctdivol, dlp)], dlp_total=dlp)
    study_id, answers = _upload(client, [*images, report])
    return study_id, answers, images


def _counting(client, monkeypatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    request = client.request

    def counting_request(method: str, path: str, **kwargs: Any):
        calls.append((method, path))
        return request(method, path, **kwargs)

    monkeypatch.setattr(client, "request", counting_request)
    return calls


@pytest.mark.parametrize("per_series", [0, 5], ids=["every-header-in-one-call", "small-series-read-whole"])
def test_loader_reads_every_series_instance_and_tag(orthanc, monkeypatch, per_series):
    client = orthanc.client
    study_uid = generate_uid()
    soft = _series(study_uid, 4, series_number=2, ctdivol=31.5)
    bone = _series(study_uid, 2, series_number=3, thickness=1.0)
    report = dose_sr_dataset(study_uid=study_uid, events=[(30.0, 300.0), (31.5, 320.0)], dlp_total=620.0)
    study_id, answers = _upload(client, [*soft, *bone, report])
    calls = _counting(client, monkeypatch)

    headers = load_study_headers(client, study_id, per_series=per_series)

    if per_series == 0:
        assert calls == [("GET", f"studies/{study_id}/series"), ("GET", f"studies/{study_id}/instances-tags")]
    else:
        # Series of at most 5 instances are read whole: one call per instance after the listings.
        assert calls[:2] == [("GET", f"studies/{study_id}/series"), ("GET", f"studies/{study_id}/instances")]
        assert sorted(calls[2:]) == sorted(
            ("GET", f"instances/{answer['ID']}/simplified-tags") for answer in answers.values()
        )
    assert headers.orthanc_id == study_id
    assert headers.number_of_instances == headers.number_read == 7
    expected = [soft, bone, [report]]
    assert [s.series_instance_uid for s in headers.series] == [
        group[0].SeriesInstanceUID for group in expected
    ]
    for series, datasets in zip(headers.series, expected, strict=True):
        assert [i.tags["SOPInstanceUID"] for i in series.instances] == [ds.SOPInstanceUID for ds in datasets]
        assert [i.orthanc_id for i in series.instances] == [
            answers[ds.SOPInstanceUID]["ID"] for ds in datasets
        ]
        assert series.orthanc_id == answers[datasets[0].SOPInstanceUID]["ParentSeries"]
    first = headers.series[0].instances[0].tags
    assert tag_text(first, "PatientID") == PATIENT["PatientID"]
    assert tag_text(first, "Modality") == "CT"
    assert tag_text(first, "BodyPartExamined") == "HEAD"
    assert tag_floats(first, "ImagePositionPatient") == [0.0, 0.0, 0.0]
    assert tag_floats(headers.series[0].instances[3].tags, "ImagePositionPatient") == [0.0, 0.0, 7.5]
    assert tag_floats(first, "CTDIvol") == [31.5]
    assert tag_floats(headers.series[1].instances[0].tags, "SliceThickness") == [1.0]
    assert [s.uid for s in headers.image_series] == [soft[0].SeriesInstanceUID, bone[0].SeriesInstanceUID]
    assert [s.uid for s in headers.dose_sr_series] == [report.SeriesInstanceUID]
    # Simplified tags keep the SR's nested ContentSequence in full: no second call is needed.
    assert dose_from_reports(headers) == DoseEstimate(ctdivol_mgy=31.5, dlp_mgy_cm=620.0, source="dose SR")


def test_loader_samples_complete_headers_and_lists_every_instance_from_the_index(orthanc, monkeypatch):
    client = orthanc.client
    study_id, answers, images = _ct_with_dose_report(client, ctdivol=20.0, dlp=300.0)
    calls = _counting(client, monkeypatch)

    headers = load_study_headers(client, study_id, per_series=3)

    series, sr = headers.series
    # First, middle and last by instance number (positions 0, 6, 11 of 12); the dose SR whole.
    read = [int(i.tags["InstanceNumber"]) for i in series.instances if i.complete]
    assert read == [1, 7, 12]
    assert len(calls) == 2 + 3 + 1
    assert headers.number_of_instances == 13 and headers.number_read == 4
    assert [i.orthanc_id for i in series.instances] == [answers[ds.SOPInstanceUID]["ID"] for ds in images]
    listed = series.instances[1]
    assert not listed.complete
    # What Orthanc indexes for each instance, and the identity its series guarantees; no more.
    assert tag_text(listed.tags, "SOPInstanceUID") == images[1].SOPInstanceUID
    assert tag_floats(listed.tags, "ImagePositionPatient") == [0.0, 0.0, 2.5]
    assert tag_text(listed.tags, "PatientID") == PATIENT["PatientID"]
    assert tag_text(listed.tags, "SeriesInstanceUID") == images[0].SeriesInstanceUID
    assert "SliceThickness" not in listed.tags and "PatientName" not in listed.tags
    assert listed.is_image and listed.modality == "CT" and not listed.is_multiframe
    assert series.representative().tags["InstanceNumber"] in ("7", 7)
    assert sr.is_dose_sr and all(i.complete for i in sr.instances)


def test_sampled_qc_still_sees_every_instance_geometry_and_says_what_it_read(orthanc):
    client = orthanc.client
    images = _series(generate_uid(), 12, series_number=1, ctdivol=40.0)
    del images[4].ImagePositionPatient  # not a sampled instance: found through the index
    images[5].ImagePositionPatient = [0.0, 0.0, 40.0]  # a gap, also between the samples
    study_id, _, _ = _ct_with_dose_report(client, ctdivol=40.0, dlp=480.0, images=images)
    headers = load_study_headers(client, study_id, per_series=3)

    result = run_rules(QCContext(headers, order=_order(), fetch_instance=client.instance_file))

    messages = [(f["rule"], f["message"]) for f in result.findings]
    assert ("required_tags", "ImagePositionPatient is missing or empty in 1 of 12 instances") in messages
    assert any(rule == "series_complete" and "gap" in message for rule, message in messages)
    assert result.rules_run[0]["note"] == (
        "complete headers read for 4 of 13 instances; Orthanc's index tags for all"
    )


def test_pixel_check_passes_on_a_good_instance_and_fails_on_truncated_pixel_data(orthanc):
    client = orthanc.client
    study_uid = generate_uid()
    good = _series(study_uid, 3, series_number=1)
    truncated = _series(study_uid, 3, series_number=2)
    for ds in truncated:
        ds.PixelData = ds.PixelData[:-32]  # 96 of the 128 bytes an 8 x 8 x 16-bit frame needs
    study_id, _ = _upload(client, good + truncated)
    headers = load_study_headers(client, study_id)
    context = QCContext(headers, order=None, protocols=get_protocols({}), fetch_instance=client.instance_file)

    findings = PixelDataRule().check(context)

    assert len(findings) == 1
    assert findings[0]["severity"] == "fail"
    assert findings[0]["series"] == truncated[0].SeriesInstanceUID
    assert findings[0]["message"].startswith("pixel data cannot be decoded: ")
    assert "96 vs 128 bytes" in findings[0]["message"]


def test_dose_check_reads_ctdivol_and_dlp_from_a_stored_dose_sr(orthanc):
    client = orthanc.client
    study_uid = generate_uid()
    # The images claim a low CTDIvol; the dose SR, the authoritative source, wins.
    images = _series(study_uid, 3, series_number=1, ctdivol=5.0)
    report = dose_sr_dataset(study_uid=study_uid, events=[(20.0, 400.0), (55.0, 500.0)], dlp_total=None)
    study_id, _ = _upload(client, [*images, report])
    context = QCContext(load_study_headers(client, study_id), order=_order(), protocols=get_protocols({}))

    findings = CtDoseRule().check(context)

    assert [(f["severity"], f["message"]) for f in findings] == [
        ("warn", "CTDIvol 55.0 mGy is above the HEAD DRL (47 mGy); source: dose SR"),
        ("warn", "DLP 900.0 mGy.cm is above the HEAD DRL (790 mGy.cm); source: dose SR"),
    ]
    assert context.notes["ct_dose"] == "source: dose SR, CTDIvol 55.0 mGy, DLP 900 mGy.cm"


def test_whole_qc_run_over_orthanc(orthanc):
    client = orthanc.client
    study_id, _, _ = _ct_with_dose_report(client, ctdivol=40.0, dlp=480.0)
    headers = load_study_headers(client, study_id)

    clean = run_rules(QCContext(headers, order=_order(), fetch_instance=client.instance_file))

    assert clean.outcome == QCOutcome.PASS, clean.findings
    assert clean.findings == []
    assert [(r["rule"], r["status"]) for r in clean.rules_run] == [
        ("required_tags", "ran"),
        ("patient_match", "ran"),
        ("modality_match", "ran"),
        ("body_part_match", "ran"),
        ("series_complete", "ran"),
        ("slice_thickness", "ran"),
        ("ct_dose", "ran"),
        ("pixel_data", "ran"),
    ]

    # The same study against an order for someone else's MR knee.
    wrong = run_rules(
        QCContext(
            headers,
            order=_order(patient_birth_date=datetime.date(1971, 3, 14), modality="MR", body_part="KNEE"),
            fetch_instance=client.instance_file,
        )
    )

    assert wrong.outcome == QCOutcome.FAIL
    assert [(f["rule"], f["severity"], f["message"]) for f in wrong.findings] == [
        ("patient_match", "fail", "patient birth date differs from the order"),
        ("modality_match", "fail", "series modality CT is not the booked MR"),
        ("modality_match", "fail", "the study has no MR image series"),
        ("body_part_match", "fail", "body part HEAD does not match the booked KNEE"),
    ]
    # The dose is compared with the booked body part, for which no DRL is configured.
    assert (
        wrong.rules_run[6]["note"]
        == "source: dose SR, CTDIvol 40.0 mGy, DLP 480 mGy.cm; no DRL configured for body part KNEE"
    )
