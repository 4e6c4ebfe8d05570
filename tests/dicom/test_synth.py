"""dicom.synth and ``manage.py synth``: valid, consistent studies, each defect real, sent for real.

Sending goes to the real Orthanc of tests/orthanc_fixture.py over real DICOM associations.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    XRayRadiationDoseSRStorage,
)

from dicom.synth import (
    CODE_DLP,
    CODE_DLP_TOTAL,
    CODE_MEAN_CTDIVOL,
    HIGH_DOSE_FACTOR,
    Defect,
    SendError,
    StudySpec,
    iter_study,
    make_study,
    send_study,
    spec_from_order,
    to_bytes,
    upload_study_rest,
)
from tests.dicom.factories import OrderFactory

ROOT = Path(__file__).resolve().parents[2]
SOP = {"CT": CTImageStorage, "MR": MRImageStorage, "DX": DigitalXRayImageStorageForPresentation}


def _round_trip(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def _images(datasets: list[Dataset], series_number: int | None = None) -> list[Dataset]:
    return [
        ds
        for ds in datasets
        if ds.Modality != "SR" and (series_number is None or ds.SeriesNumber == series_number)
    ]


def _find_num(items, code: str) -> list[tuple[float, str]]:
    """(value, unit) of every NUM content item with this DCM concept code, at any depth."""
    found = []
    for item in items:
        concept = item.ConceptNameCodeSequence[0]
        if item.ValueType == "NUM" and concept.CodeValue == code and concept.CodingSchemeDesignator == "DCM":
            measured = item.MeasuredValueSequence[0]
            found.append((float(measured.NumericValue), measured.MeasurementUnitsCodeSequence[0].CodeValue))
        found += _find_num(item.get("ContentSequence", []), code)
    return found


def _positions(images: list[Dataset]) -> list[list[float]]:
    return [[float(v) for v in ds.ImagePositionPatient] for ds in images]


def _normal(ds: Dataset) -> list[float]:
    r, c = (
        [float(v) for v in ds.ImageOrientationPatient[:3]],
        [float(v) for v in ds.ImageOrientationPatient[3:]],
    )
    return [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]


def _steps(images: list[Dataset]) -> list[float]:
    """Distance between consecutive slices along the normal."""
    normal = _normal(images[0])
    along = [sum(p * n for p, n in zip(pos, normal, strict=True)) for pos in _positions(images)]
    return [round(b - a, 4) for a, b in zip(along, along[1:], strict=False)]


# --- valid studies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "body_part", "per_series"), [("CT", "HEAD", 40), ("MR", "LSPINE", 24), ("DX", "CHEST", 1)]
)
def test_each_modality_round_trips_with_its_sop_class(modality, body_part, per_series):
    spec = StudySpec(
        modality=modality, body_part=body_part, series_count=2, accession_number="ACC-SYN-1", patient_sex="F"
    )
    datasets = make_study(spec)

    assert len(datasets) == 2 * per_series
    assert {ds.StudyInstanceUID for ds in datasets} == {datasets[0].StudyInstanceUID}
    assert datasets[0].StudyInstanceUID.startswith(settings.DICOM_UID_ROOT)
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 2
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    for series_number in (1, 2):
        images = _images(datasets, series_number)
        assert [ds.InstanceNumber for ds in images] == list(range(1, per_series + 1))
    for ds in datasets:
        back = _round_trip(ds)
        assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert back.SOPClassUID == back.file_meta.MediaStorageSOPClassUID == SOP[modality]
        assert back.SOPInstanceUID == back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert back.file_meta.SourceApplicationEntityTitle == "VAN01"
        assert (back.Modality, back.BodyPartExamined) == (modality, body_part)
        assert (back.PatientID, back.PatientName, back.PatientSex) == ("CRV-SYN-0001", "SYNTH^PATIENT", "F")
        assert (back.AccessionNumber, back.PatientBirthDate) == ("ACC-SYN-1", "19700101")
        assert (back.Manufacturer, back.StationName) == ("Caravan Synthetic", "VAN01")
        assert back.InstitutionName and back.WindowCenter is not None and back.WindowWidth
        assert (back.BitsAllocated, back.PhotometricInterpretation) == (16, "MONOCHROME2")
        pixels = back.pixel_array
        assert pixels.shape == (256, 256) and str(pixels.dtype) == "uint16"
        assert pixels.std() > 50  # a phantom, not a flat field
    first = _round_trip(datasets[0])
    if modality == "CT":
        assert (first.RescaleIntercept, first.RescaleSlope, first.RescaleType) == (-1024, 1, "HU")
        assert first.KVP == 120 and first.ExposureTime > 0 and first.XRayTubeCurrent > 0
    elif modality == "MR":
        assert first.MagneticFieldStrength == 1.5 and first.RepetitionTime > first.EchoTime > 0
    else:
        assert first.PresentationIntentType == "FOR PRESENTATION"
        assert first.ImagerPixelSpacing and first.KVP and first.ExposureTime
        assert "ImagePositionPatient" not in first
        assert [ds.ViewPosition for ds in datasets] == ["PA", "LL"]


def test_accession_defaults_to_a_fresh_one_and_can_be_empty():
    first, second = make_study(StudySpec(modality="DX")), make_study(StudySpec(modality="DX"))
    assert first[0].AccessionNumber.startswith("SYN") and len(first[0].AccessionNumber) <= 16
    assert first[0].AccessionNumber != second[0].AccessionNumber
    assert make_study(StudySpec(modality="DX", accession_number=""))[0].AccessionNumber == ""


AXIAL, SAGITTAL = [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1]


@pytest.mark.parametrize(
    ("modality", "body_part", "orientation"),
    [("CT", "ABDOMEN", AXIAL), ("MR", "HEAD", AXIAL), ("MR", "KNEE", SAGITTAL)],
)
def test_geometry_steps_by_spacing_along_the_normal(modality, body_part, orientation):
    spec = StudySpec(
        modality=modality, body_part=body_part, slices_per_series=9, slice_thickness=2.0, spacing=2.5
    )
    images = make_study(spec)

    assert all([float(v) for v in ds.ImageOrientationPatient] == orientation for ds in images)
    assert _steps(images) == [2.5] * 8
    normal = _normal(images[0])
    for ds, pos in zip(images, _positions(images), strict=True):
        assert float(ds.SliceLocation) == pytest.approx(sum(p * n for p, n in zip(pos, normal, strict=True)))
        assert (float(ds.SliceThickness), float(ds.SpacingBetweenSlices)) == (2.0, 2.5)
        assert ds.PixelSpacing == images[0].PixelSpacing and float(ds.PixelSpacing[0]) > 0
        assert ds.FrameOfReferenceUID == images[0].FrameOfReferenceUID
    # In-plane: the first pixel sits half a field of view off centre along the row and column.
    centre = [
        p + (255 / 2) * float(images[0].PixelSpacing[0]) * (r + c)
        for p, r, c in zip(_positions(images)[4], orientation[:3], orientation[3:], strict=True)
    ]
    assert centre == pytest.approx([0.0, 0.0, 0.0], abs=1e-3)


def test_instances_share_no_mutable_values():
    first, second = make_study(StudySpec(modality="CT", slices_per_series=2))
    first.PixelSpacing[0] = 9.0
    first.ImageType[2] = "LOCALIZER"
    first.PatientName = "CHANGED^NAME"
    assert float(second.PixelSpacing[0]) != 9.0 and second.ImageType[2] == "AXIAL"
    assert second.PatientName == "SYNTH^PATIENT"


def test_default_ct_thickness_fits_the_typical_scan_length():
    thin = StudySpec(modality="CT", body_part="HEAD", slices_per_series=200)
    thick = StudySpec(modality="CT", body_part="HEAD", slices_per_series=40)
    assert (thin.thickness_mm, thick.thickness_mm) == (0.625, 3.0)
    assert StudySpec(modality="MR", body_part="CSPINE").thickness_mm == 3.0


def test_ct_images_carry_dose_and_one_irradiation_event():
    spec = StudySpec(modality="CT", body_part="CHEST", series_count=3, slices_per_series=10)
    images = make_study(spec)

    assert {float(ds.CTDIvol) for ds in images} == {7.0}
    assert len({ds.IrradiationEventUID for ds in images}) == 1
    assert [ds.ConvolutionKernel for ds in images[::10]] == ["STANDARD", "BONE", "SOFT"]
    assert all(_round_trip(ds).CTDIvol == 7.0 for ds in images[:2])


def test_dose_sr_has_the_codes_a_reader_looks_for():
    spec = StudySpec(modality="CT", body_part="HEAD", series_count=2, slices_per_series=20, with_dose_sr=True)
    datasets = make_study(spec)
    sr = _round_trip(datasets[-1])

    assert (sr.SOPClassUID, sr.Modality, sr.SeriesNumber) == (XRayRadiationDoseSRStorage, "SR", 990)
    assert sr.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert sr.SeriesInstanceUID not in {ds.SeriesInstanceUID for ds in datasets[:-1]}
    assert sr.ConceptNameCodeSequence[0].CodeValue == "113701"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "10011"
    assert (sr.PatientID, sr.AccessionNumber) == (datasets[0].PatientID, datasets[0].AccessionNumber)
    coverage_cm = 20 * spec.spacing_mm / 10
    assert _find_num(sr.ContentSequence, CODE_MEAN_CTDIVOL) == [(40.0, "mGy")]
    assert _find_num(sr.ContentSequence, CODE_DLP) == [(pytest.approx(40.0 * coverage_cm), "mGy.cm")]
    assert _find_num(sr.ContentSequence, CODE_DLP_TOTAL) == [(pytest.approx(40.0 * coverage_cm), "mGy.cm")]
    event_uids = [item.UID for item in _walk(sr.ContentSequence) if item.ValueType == "UIDREF"]
    assert datasets[0].IrradiationEventUID in event_uids


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def test_dose_values_can_be_given_and_non_ct_refuses_them():
    spec = StudySpec(modality="CT", body_part="ABDOMEN", ctdi_vol=12.5, dlp=610.0, with_dose_sr=True)
    sr = make_study(spec)[-1]
    assert _find_num(sr.ContentSequence, CODE_MEAN_CTDIVOL) == [(12.5, "mGy")]
    assert _find_num(sr.ContentSequence, CODE_DLP_TOTAL) == [(610.0, "mGy.cm")]
    with pytest.raises(ValueError, match="does not apply to MR"):
        StudySpec(modality="MR", with_dose_sr=True)
    with pytest.raises(ValueError, match="does not apply to DX"):
        StudySpec(modality="DX", defects={Defect.HIGH_DOSE})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modality": "US"}, "modality 'US'"),
        ({"modality": "DX", "defects": {Defect.SLICE_GAP}}, "need CT or MR"),
        ({"accession_number": "A" * 17}, "accession_number is longer than 16"),
        ({"series_count": 0}, "at least 1"),
        ({"slices_per_series": 2, "defects": {"slice_gap"}}, "at least 3 slices"),
        ({"spacing": -1.0}, "spacing must be positive"),
    ],
)
def test_spec_refuses_impossible_studies(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudySpec(**kwargs)


# --- defects: each is a specific difference from the clean study ---------------------------------


def _pair(defect: Defect, **kwargs) -> tuple[list[Dataset], list[Dataset]]:
    base = {"modality": "CT", "body_part": "HEAD", "series_count": 2, "slices_per_series": 10} | kwargs
    return make_study(StudySpec(**base)), make_study(StudySpec(**base, defects={defect}))


def test_defect_missing_tags():
    clean, bad = _pair(Defect.MISSING_TAGS)
    assert all("PatientID" in ds and "StudyDate" in ds and "SliceThickness" in ds for ds in clean)
    assert not any("PatientID" in ds or "StudyDate" in ds for ds in bad)
    assert not any("SliceThickness" in ds for ds in _images(bad, 1))
    assert all("SliceThickness" in ds for ds in _images(bad, 2))
    assert all("PatientName" in ds and "AccessionNumber" in ds for ds in bad)


def test_defect_wrong_patient():
    clean, bad = _pair(Defect.WRONG_PATIENT, patient_sex="M", with_dose_sr=True)
    for ds in bad:
        assert ds.PatientName != clean[0].PatientName
        assert ds.PatientID != clean[0].PatientID
        assert ds.PatientBirthDate != clean[0].PatientBirthDate
        assert (clean[0].PatientSex, ds.PatientSex) == ("M", "F")
    assert len({(ds.PatientID, ds.PatientName) for ds in bad}) == 1  # consistently the wrong one


def test_defect_wrong_modality():
    clean, bad = _pair(Defect.WRONG_MODALITY)
    assert {ds.Modality for ds in clean} == {"CT"} and {ds.SOPClassUID for ds in clean} == {CTImageStorage}
    assert {ds.Modality for ds in bad} == {"MR"} and {ds.SOPClassUID for ds in bad} == {MRImageStorage}
    dx = make_study(StudySpec(modality="DX", defects={Defect.WRONG_MODALITY}))
    assert {ds.Modality for ds in dx} == {"CT"}


def test_defect_wrong_body_part():
    clean, bad = _pair(Defect.WRONG_BODY_PART)
    assert {ds.BodyPartExamined for ds in clean} == {"HEAD"}
    assert {ds.BodyPartExamined for ds in bad} == {"CHEST"}
    knee = make_study(StudySpec(modality="MR", body_part="KNEE", defects={"wrong_body_part"}))
    assert {ds.BodyPartExamined for ds in knee} == {"HEAD"}


def test_defect_instance_gap():
    clean, bad = _pair(Defect.INSTANCE_GAP)
    assert [ds.InstanceNumber for ds in _images(clean, 1)] == list(range(1, 11))
    assert [ds.InstanceNumber for ds in _images(bad, 1)] == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert [ds.InstanceNumber for ds in _images(bad, 2)] == list(range(1, 11))
    assert _steps(_images(bad, 1)) == _steps(_images(clean, 1))  # only the numbering has the gap


def test_defect_slice_gap():
    clean, bad = _pair(Defect.SLICE_GAP, slice_thickness=2.5)
    assert _steps(_images(clean, 1)) == [2.5] * 9
    assert _steps(_images(bad, 1)) == [2.5] * 4 + [5.0] + [2.5] * 4  # one step > 1.5 x spacing
    assert _steps(_images(bad, 2)) == [2.5] * 9
    assert [ds.InstanceNumber for ds in _images(bad, 1)] == list(range(1, 11))


def test_defect_thickness_out_of_range():
    clean, bad = _pair(Defect.THICKNESS_OUT_OF_RANGE, slice_thickness=2.5)
    assert {float(ds.SliceThickness) for ds in clean} == {2.5}
    assert {float(ds.SliceThickness) for ds in bad} == {12.0}
    assert {float(ds.SpacingBetweenSlices) for ds in bad} == {2.5}


def test_defect_high_dose():
    clean, bad = _pair(Defect.HIGH_DOSE, with_dose_sr=True)
    assert {float(ds.CTDIvol) for ds in _images(clean)} == {40.0}
    assert {float(ds.CTDIvol) for ds in _images(bad)} == {40.0 * HIGH_DOSE_FACTOR}
    for code in (CODE_MEAN_CTDIVOL, CODE_DLP, CODE_DLP_TOTAL):
        [(clean_value, unit)] = _find_num(clean[-1].ContentSequence, code)
        [(bad_value, _)] = _find_num(bad[-1].ContentSequence, code)
        assert bad_value == pytest.approx(HIGH_DOSE_FACTOR * clean_value), code
    assert float(_images(bad)[0].CTDIvol) > 2 * 47  # twice the UK head DRL


def test_defect_undecodable_pixels():
    clean, bad = _pair(Defect.UNDECODABLE_PIXELS)
    for ds in _images(clean):
        assert _round_trip(ds).pixel_array.shape == (256, 256)
    for ds in _images(bad, 1):
        back = _round_trip(ds)
        assert len(back.PixelData) == 256 * 256  # half of 256 x 256 x 2 bytes
        with pytest.raises(ValueError):
            back.pixel_array  # noqa: B018
    assert _round_trip(_images(bad, 2)[0]).pixel_array.shape == (256, 256)


# --- orders and Django-less use --------------------------------------------------------------------


@pytest.mark.django_db
def test_spec_from_order_carries_the_booking():
    order = OrderFactory(modality="MR", body_part="KNEE", patient_sex="F", requested_procedure="MR KNEE LEFT")
    spec = spec_from_order(order, slices_per_series=5)
    datasets = make_study(spec)

    assert (spec.modality, spec.body_part, spec.station_aet) == ("MR", "KNEE", order.unit.ae_title)
    for ds in datasets:
        assert ds.StudyInstanceUID == order.study_instance_uid
        assert ds.AccessionNumber == order.accession_number
        assert (ds.PatientID, ds.PatientName, ds.PatientSex) == (order.patient_id, order.patient_name, "F")
        assert ds.PatientBirthDate == order.patient_birth_date.strftime("%Y%m%d")
        assert ds.StudyDate == order.scheduled_date.strftime("%Y%m%d")
        assert (ds.Modality, ds.BodyPartExamined, ds.StudyDescription) == ("MR", "KNEE", "MR KNEE LEFT")


def test_works_without_django_settings():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "from dicom.synth import StudySpec, make_study, to_bytes\n"
        "ds = make_study(StudySpec(modality='CT', slices_per_series=2, with_dose_sr=True))\n"
        "print(len(ds), ds[0].StudyInstanceUID, len(to_bytes(ds[0])) > 131072)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    count, uid, big = out.stdout.split()
    assert (count, big) == ("3", "True")
    assert uid.startswith("1.2.826.0.1.3680043.8.498.")  # pydicom's root


def test_generation_speed_smoke(capsys):
    spec = StudySpec(modality="CT", body_part="ABDOMEN", slices_per_series=200)
    started = time.perf_counter()
    datasets = make_study(spec)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    size = sum(len(to_bytes(ds)) for ds in datasets)
    encoded = time.perf_counter() - started
    assert len(datasets) == 200
    with capsys.disabled():
        print(
            f"\nsynth: 200 CT slices 256x256 generated at {200 / generated:.0f}/s, "
            f"encoded at {200 / encoded:.0f}/s ({size / 2**20:.1f} MiB)"
        )


# --- sending to a real Orthanc ---------------------------------------------------------------------


@pytest.mark.orthanc
def test_send_study_stores_every_instance(orthanc, capsys):
    spec = StudySpec(modality="CT", body_part="HEAD", series_count=2, slices_per_series=40, with_dose_sr=True)
    datasets = make_study(spec)

    result = send_study(
        datasets,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        calling_aet=orthanc.scu_aet,
        called_aet=orthanc.aet,
    )

    assert result.ok and result.stored == 81 and not result.failed
    assert [s.sop_instance_uid for s in result.statuses] == [ds.SOPInstanceUID for ds in datasets]
    assert {s.status for s in result.statuses} == {0x0000}
    assert result.bytes_sent > 80 * 256 * 256 * 2
    stats = orthanc.client.statistics()
    assert (stats["CountStudies"], stats["CountSeries"], stats["CountInstances"]) == (1, 3, 81)
    [match] = [m for m in orthanc.client.lookup(datasets[0].StudyInstanceUID) if m["Type"] == "Study"]
    study = orthanc.client.study(match["ID"])
    assert study["MainDicomTags"]["AccessionNumber"] == datasets[0].AccessionNumber
    numbers = [i["MainDicomTags"]["InstanceNumber"] for i in orthanc.client.study_instances(match["ID"])]
    assert sorted(numbers, key=int) == sorted([str(n) for n in range(1, 41)] * 2 + ["1"], key=int)
    with capsys.disabled():
        print(
            f"\nsynth: sent {len(datasets)} instances over one association at {result.rate:.0f}/s "
            f"({result.bytes_sent / 2**20:.1f} MiB)"
        )


@pytest.mark.orthanc
def test_send_a_lazy_study_and_upload_over_rest(orthanc):
    spec = StudySpec(modality="MR", body_part="HEAD", slices_per_series=6, series_count=2)
    result = send_study(
        iter_study(spec),
        host="127.0.0.1",
        port=orthanc.dicom_port,
        calling_aet=orthanc.scu_aet,
        called_aet=orthanc.aet,
    )
    assert result.stored == 12

    answers = upload_study_rest(orthanc.client, make_study(StudySpec(modality="DX", series_count=2)))
    assert [a["Status"] for a in answers] == ["Success", "Success"]
    assert orthanc.client.statistics()["CountInstances"] == 14


@pytest.mark.orthanc
def test_send_from_a_stranger_ae_is_refused_clearly(orthanc):
    datasets = make_study(StudySpec(modality="DX"))
    with pytest.raises(SendError) as refused:
        send_study(
            datasets,
            host="127.0.0.1",
            port=orthanc.dicom_port,
            calling_aet="ROGUE_VAN",
            called_aet=orthanc.aet,
        )
    message = str(refused.value)
    assert "rejected" in message and "'ROGUE_VAN'" in message and orthanc.aet in message
    assert refused.value.result.statuses == []
    assert orthanc.client.statistics()["CountInstances"] == 0


def test_send_to_a_closed_port_is_a_clear_error():
    from tests.orthanc_fixture import free_ports

    with pytest.raises(SendError, match="could not associate"):
        send_study(
            make_study(StudySpec(modality="DX")),
            host="127.0.0.1",
            port=free_ports(1)[0],
            calling_aet="VAN01",
            called_aet="NOBODY",
            timeout=2,
        )


# --- manage.py synth -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_command_writes_files(tmp_path):
    out = io.StringIO()
    call_command(
        "synth", "--modality", "CT", "--body-part", "CHEST", "--slices", "4", "--series", "2",
        "--dose-sr", "--defect", "instance_gap", "high_dose", "--accession", "NOSUCHORDER1",
        "--out", str(tmp_path), stdout=out,
    )  # fmt: skip
    files = sorted(tmp_path.rglob("*.dcm"))
    assert len(files) == 9
    read = [pydicom.dcmread(f) for f in files]
    assert {ds.AccessionNumber for ds in read} == {"NOSUCHORDER1"}
    assert sorted(ds.InstanceNumber for ds in read if ds.SeriesNumber == 1) == [1, 2, 4, 5]
    text = out.getvalue()
    assert "No order has accession NOSUCHORDER1" in text
    assert "9 instances generated" in text and "instances/s" in text and "high_dose, instance_gap" in text


@pytest.mark.django_db
@pytest.mark.orthanc
def test_command_sends_an_orders_study(orthanc):
    order = OrderFactory(modality="CT", body_part="HEAD")
    out = io.StringIO()
    call_command("synth", "--accession", order.accession_number, "--slices", "5", "--send", stdout=out)

    text = out.getvalue()
    assert f"Order {order.pk}" in text and "stored 5/5" in text
    assert f"sent to {orthanc.aet}@127.0.0.1:{orthanc.dicom_port}" in text
    [match] = [m for m in orthanc.client.lookup(order.study_instance_uid) if m["Type"] == "Study"]
    tags = orthanc.client.study(match["ID"])["PatientMainDicomTags"]
    assert (tags["PatientID"], tags["PatientName"]) == (order.patient_id, order.patient_name)


@pytest.mark.orthanc
def test_command_uploads_over_rest(orthanc):
    out = io.StringIO()
    call_command("synth", "--modality", "DX", "--body-part", "CHEST", "--series", "2", "--rest", stdout=out)
    assert f"2 instances uploaded to {orthanc.url}" in out.getvalue() and "stored 2/2" in out.getvalue()
    assert orthanc.client.statistics()["CountInstances"] == 2


@pytest.mark.django_db
def test_command_refuses_bad_input(settings):
    order = OrderFactory(modality="CT")
    with pytest.raises(CommandError, match="no order with id 987654"):
        call_command("synth", "--order-id", "987654")
    with pytest.raises(CommandError, match="booked as CT, not MR"):
        call_command("synth", "--order-id", str(order.pk), "--modality", "MR")
    with pytest.raises(CommandError, match="need CT or MR"):
        call_command("synth", "--modality", "DX", "--defect", "slice_gap")
    with pytest.raises(CommandError, match="longer than 16"):
        call_command("synth", "--accession", "X" * 17)
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("synth", "--defect", "coffee_stain")
    settings.ORTHANC_ALLOWED_MODALITIES = []
    with pytest.raises(CommandError, match="ORTHANC_ALLOWED_MODALITIES is empty"):
        call_command("synth", "--send")
