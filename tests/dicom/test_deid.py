"""De-identification (dicom/services/deid.py) against the real Orthanc of tests/orthanc_fixture.py.

A small two-series CT study full of identifying values goes in; the de-identified copy Orthanc
stores is read back file by file and walked tag by tag.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pydicom
import pytest
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from core.choices import OrganisationKind, Role
from core.exceptions import AccessDenied, Conflict, InvalidInput, NotFound, Unavailable
from core.models import AuditEntry
from dicom.models import DeidExport, DeidExportStatus, Pseudonym, PseudonymKind
from dicom.orthanc_client import OrthancClient, OrthancError
from dicom.services.deid import DEIDENTIFICATION_METHOD, study_deidentify
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.dicom_factory import ct_series, to_bytes
from tests.dicom.factories import HospitalFactory, StudyFactory
from tests.fleet.factories import UnitFactory

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]

PATIENT_ID = "MRN-77341-ZX"
PATIENT_NAME = "QUARTERMAINE^ELOISE^JUNE"
# Every value the copy must not contain anywhere, in any tag or byte of the file.
IDENTIFYING = {
    "PatientID": PATIENT_ID,
    "PatientName": PATIENT_NAME,
    "PatientNameFamily": "QUARTERMAINE",
    "PatientNameGiven": "ELOISE",
    "PatientBirthDate": "19610314",
    "OtherPatientIDs": "OLDMRN-55120",
    "InstitutionName": "Ningxia County Hospital No. 3",
    "InstitutionAddress": "17 Riverside Road, Guyuan",
    "ReferringPhysicianName": "HARTWELL^BENEDICT",
    "PerformingPhysicianName": "OKONKWO^ADAEZE",
    "StationName": "VANCT07",
    "OperatorsName": "LINDQVIST^TOMAS",
    "DeviceSerialNumber": "SN-4471-CT",
    "AccessionNumber": "ACCX90817",
    "StudyDate": "20240102",
    "StudyDescription": "CT head: Mrs Quartermaine fell at home, query bleed",
    "SeriesDescription": "Axial for Dr Hartwell",
    "ImageComments": "patient anxious, daughter Priya present",
    "PrivateValue": "VENDOR-PRIVATE-TRACE-88",
}
KEPT = ("Modality", "BodyPartExamined", "SliceThickness", "PixelSpacing", "ImagePositionPatient")
KEPT += ("ImageOrientationPatient", "KVP", "CTDIvol", "Rows", "Columns", "BitsStored")


def _identified_study(
    orthanc, *, patient_id: str = PATIENT_ID, series: int = 2, per_series: int = 3, burned_in: str = "NO"
) -> tuple[str, list[Dataset]]:
    """Upload a CT study whose instances carry every value of IDENTIFYING; (Orthanc id, datasets)."""
    study_uid = generate_uid()
    frame_of_reference = generate_uid()  # both series share one, as a localizer and its axials do
    datasets: list[Dataset] = []
    for number in range(1, series + 1):
        for ds in ct_series(
            per_series,
            study_uid=study_uid,
            patient_id=patient_id,
            patient_name=PATIENT_NAME,
            accession_number=IDENTIFYING["AccessionNumber"],
            study_description=IDENTIFYING["StudyDescription"],
        ):
            ds.SeriesNumber = number
            ds.FrameOfReferenceUID = frame_of_reference
            ds.PatientBirthDate = IDENTIFYING["PatientBirthDate"]
            ds.OtherPatientIDs = IDENTIFYING["OtherPatientIDs"]
            ds.InstitutionName = IDENTIFYING["InstitutionName"]
            ds.InstitutionAddress = IDENTIFYING["InstitutionAddress"]
            ds.ReferringPhysicianName = IDENTIFYING["ReferringPhysicianName"]
            ds.PerformingPhysicianName = IDENTIFYING["PerformingPhysicianName"]
            ds.StationName = IDENTIFYING["StationName"]
            ds.OperatorsName = IDENTIFYING["OperatorsName"]
            ds.DeviceSerialNumber = IDENTIFYING["DeviceSerialNumber"]
            ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = IDENTIFYING["StudyDate"]
            ds.SeriesDescription = IDENTIFYING["SeriesDescription"]
            ds.ImageComments = IDENTIFYING["ImageComments"]
            ds.BodyPartExamined = "HEAD"
            ds.CTDIvol = 41.5
            ds.BurnedInAnnotation = burned_in
            ds.add_new(0x00091010, "LO", "CARAVAN TEST VENDOR")  # private creator
            ds.add_new(0x00091001, "LO", IDENTIFYING["PrivateValue"])
            datasets.append(ds)
    # The second series refers to the first's instances (as a dose SR or a reformat refers to
    # its source images): one level deep and nested two levels, with the series UID.
    first = [ds for ds in datasets if ds.SeriesNumber == 1]
    for ds in datasets:
        if ds.SeriesNumber != 2:
            continue
        ds.ReferencedImageSequence = [_reference(source) for source in first]
        referenced_series = Dataset()
        referenced_series.SeriesInstanceUID = first[0].SeriesInstanceUID
        referenced_series.ReferencedInstanceSequence = [_reference(source) for source in first]
        ds.ReferencedSeriesSequence = [referenced_series]
    for ds in datasets:
        answer = orthanc.client.upload_instance(to_bytes(ds))
    return answer["ParentStudy"], datasets


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _operator():
    """The one operator of this module: its QC officers export the studies its van acquired."""
    return OrganisationFactory._meta.model.objects.get_or_create(
        name="Deid Operator", defaults={"kind": OrganisationKind.OPERATOR, "region_code": "HB-01"}
    )[0]


def _study_row(orthanc_id: str, datasets: list[Dataset], **kwargs):
    kwargs.setdefault("unit", UnitFactory(operator=_operator()))
    return StudyFactory(
        orthanc_id=orthanc_id,
        study_instance_uid=datasets[0].StudyInstanceUID,
        patient_id=datasets[0].PatientID,
        **kwargs,
    )


def _user(*roles: str, kind: str = OrganisationKind.OPERATOR):
    org = _operator() if kind == OrganisationKind.OPERATOR else OrganisationFactory(kind=kind)
    return UserFactory(roles=list(roles), organisation=org)


def _copy_files(orthanc, export: DeidExport) -> list[tuple[bytes, Dataset]]:
    client = orthanc.client
    files = [client.instance_file(i["ID"]) for i in client.study_instances(export.deid_orthanc_id)]
    return [(raw, pydicom.dcmread(io.BytesIO(raw))) for raw in files]


def _all_values(ds: Dataset) -> list[tuple[str, str]]:
    """(keyword or tag, text) of every element, file meta and nested sequences included."""
    values = []
    for elem in [*ds.file_meta.iterall(), *ds.iterall()]:
        if elem.tag == 0x7FE00010 or elem.VR == "SQ":
            continue
        value = elem.value
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        values.append((elem.keyword or str(elem.tag), text))
    return values


def _pseudonym(project: str, kind: str, original: str) -> str:
    return Pseudonym.objects.get(project=project, kind=kind, original=original).pseudonym


def test_copy_is_de_identified_consistent_and_keeps_clinical_content(orthanc):
    orthanc_id, originals = _identified_study(orthanc)
    study = _study_row(orthanc_id, originals)
    qc = _user(Role.QC_OFFICER)

    export = study_deidentify(actor=qc, study=study, project="teaching-neuro")

    assert export.status == DeidExportStatus.DONE
    assert (export.series_count, export.instance_count) == (2, 6)
    assert export.error == ""
    patient = _pseudonym("teaching-neuro", PseudonymKind.PATIENT, PATIENT_ID)
    assert patient.startswith("DEID-") and PATIENT_ID not in patient
    copies = _copy_files(orthanc, export)
    assert len(copies) == 6

    # Nothing identifying anywhere: not in any tag (nested or private), not in any byte.
    original_uids = {ds.StudyInstanceUID for ds in originals} | {ds.SeriesInstanceUID for ds in originals}
    original_uids |= {ds.SOPInstanceUID for ds in originals} | {originals[0].FrameOfReferenceUID}
    needles = [*IDENTIFYING.values(), *original_uids]
    for raw, ds in copies:
        for keyword, text in _all_values(ds):
            for needle in needles:
                assert needle.lower() not in text.lower(), f"{keyword} still holds an original value"
        for needle in needles:
            assert needle.encode() not in raw
        assert not [elem for elem in ds if elem.tag.is_private]
        assert ds.PatientID == patient and str(ds.PatientName) == patient
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod == DEIDENTIFICATION_METHOD
        (code,) = ds.DeidentificationMethodCodeSequence
        assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
        # Basic profile, no Retain Longitudinal Temporal Information option: dates are emptied.
        assert [(e.keyword, e.value) for e in ds.iterall() if e.VR in ("DA", "DT", "TM") and e.value] == []
        assert not ds.get("StudyDescription") and "SeriesDescription" not in ds

    # UIDs: all new, one study, two series, each consistent across its instances.
    datasets = [ds for _raw, ds in copies]
    assert {ds.StudyInstanceUID for ds in datasets} == {export.deid_study_instance_uid}
    assert export.deid_study_instance_uid == _pseudonym(
        "teaching-neuro", PseudonymKind.UID, originals[0].StudyInstanceUID
    )
    by_number: dict[int, set[str]] = {}
    for ds in datasets:
        by_number.setdefault(int(ds.SeriesNumber), set()).add(ds.SeriesInstanceUID)
    assert sorted(by_number) == [1, 2] and all(len(uids) == 1 for uids in by_number.values())
    assert by_number[1] != by_number[2]
    for original in originals:
        (new_series_uid,) = by_number[int(original.SeriesNumber)]
        assert export.series_uids[original.SeriesInstanceUID] == new_series_uid
    assert len(export.series_uids) == 2
    assert len({ds.SOPInstanceUID for ds in datasets}) == 6
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in datasets)
    # The shared frame of reference is still shared, under a new UID.
    assert {ds.FrameOfReferenceUID for ds in datasets} == {
        export.frame_of_reference_uids[originals[0].FrameOfReferenceUID]
    }
    assert all(uid.startswith("1.2.") and uid not in original_uids for uid in by_number[1] | by_number[2])

    # References from the second series to the first still resolve, nested ones too.
    (series_one_uid,) = by_number[1]
    series_one = {ds.SOPInstanceUID for ds in datasets if ds.SeriesNumber == 1}
    for ds in (ds for ds in datasets if ds.SeriesNumber == 2):
        assert {item.ReferencedSOPInstanceUID for item in ds.ReferencedImageSequence} == series_one
        (referenced,) = ds.ReferencedSeriesSequence
        assert referenced.SeriesInstanceUID == series_one_uid
        assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == series_one

    # Clinical content kept: the tags and the pixels, instance for instance.
    assert set(export.instance_uids) == {ds.SOPInstanceUID for ds in originals}
    copy_by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for original in originals:
        copy = copy_by_uid[export.instance_uids[original.SOPInstanceUID]]
        for keyword in KEPT:
            assert copy[keyword].value == original[keyword].value, keyword
        assert copy.PixelData == original.PixelData

    # The source study is untouched and the export is audited, each pseudonym too.
    source_tags = orthanc.client.get_json(f"studies/{orthanc_id}/shared-tags", params={"simplify": "true"})
    assert source_tags["PatientID"] == PATIENT_ID and source_tags["InstitutionName"]
    entries = list(AuditEntry.objects.order_by("id"))
    assert [e.action for e in entries] == ["pseudonym.create"] * 2 + ["deid_export.create"]
    assert all(e.patient_data and e.patient_id == PATIENT_ID and e.actor_id == qc.pk for e in entries)
    assert Pseudonym.objects.count() == 2  # the patient and the study: stable across copies
    final = entries[-1]
    assert (final.object_type, final.object_id) == ("dicom.deidexport", str(export.pk))
    assert json.loads(final.details)["instances"] == 6
    for entry in entries:
        assert PATIENT_NAME not in entry.details and "QUARTERMAINE" not in entry.details


def test_pseudonyms_are_stable_within_a_project_and_unrelated_across_projects(orthanc):
    hospital = HospitalFactory()
    first_id, first = _identified_study(orthanc, series=1, per_series=2)
    second_id, second = _identified_study(orthanc, series=1, per_series=2)
    first_study = _study_row(first_id, first, hospital=hospital)
    second_study = _study_row(second_id, second, hospital=hospital)
    qc = _user(Role.QC_OFFICER)

    a = study_deidentify(actor=qc, study=first_study, project="teaching")
    b = study_deidentify(actor=qc, study=second_study, project="teaching")
    c = study_deidentify(actor=qc, study=first_study, project="research-2025")

    teaching = Pseudonym.objects.get(project="teaching", kind=PseudonymKind.PATIENT)
    research = Pseudonym.objects.get(project="research-2025", kind=PseudonymKind.PATIENT)
    assert teaching.original == research.original == PATIENT_ID
    assert teaching.issuer == research.issuer == f"hospital:{hospital.pk}"
    assert teaching.pseudonym != research.pseudonym
    copies = {export.pk: _copy_files(orthanc, export) for export in (a, b, c)}
    assert {ds.PatientID for _raw, ds in copies[a.pk] + copies[b.pk]} == {teaching.pseudonym}
    assert {ds.PatientID for _raw, ds in copies[c.pk]} == {research.pseudonym}
    # One patient in Orthanc for the project's two studies, a different one for the other project.
    parents = {orthanc.client.study(e.deid_orthanc_id)["ParentPatient"] for e in (a, b)}
    assert len(parents) == 1
    assert orthanc.client.study(c.deid_orthanc_id)["ParentPatient"] not in parents
    # The same study gets unrelated UIDs in the two projects.
    assert a.deid_study_instance_uid != c.deid_study_instance_uid
    assert len({a.deid_study_instance_uid, b.deid_study_instance_uid}) == 2
    # The second study of the same patient reused the patient pseudonym: no new one audited.
    actions = [e.action for e in AuditEntry.objects.order_by("id")]
    assert actions.count("deid_export.create") == 3
    assert Pseudonym.objects.filter(kind=PseudonymKind.PATIENT).count() == 2


def test_same_patient_id_at_another_hospital_is_another_patient(orthanc):
    first_id, first = _identified_study(orthanc, series=1, per_series=1)
    second_id, second = _identified_study(orthanc, series=1, per_series=1)
    qc = _user(Role.QC_OFFICER)
    a = study_deidentify(
        actor=qc, study=_study_row(first_id, first, hospital=HospitalFactory()), project="p1"
    )
    b = study_deidentify(
        actor=qc, study=_study_row(second_id, second, hospital=HospitalFactory()), project="p1"
    )
    (pa,) = {ds.PatientID for _raw, ds in _copy_files(orthanc, a)}
    (pb,) = {ds.PatientID for _raw, ds in _copy_files(orthanc, b)}
    assert pa != pb


@pytest.mark.parametrize(
    ("roles", "kind"),
    [
        ([Role.HOSPITAL_USER], OrganisationKind.HOSPITAL),
        ([Role.RADIOLOGIST], OrganisationKind.READING_GROUP),
        ([Role.DISPATCHER, Role.TECHNOLOGIST], OrganisationKind.OPERATOR),
        ([], OrganisationKind.OPERATOR),
    ],
)
def test_refused_for_other_roles_and_nothing_is_created(orthanc, roles, kind):
    orthanc_id, originals = _identified_study(orthanc, series=1, per_series=1)
    study = _study_row(orthanc_id, originals)
    user = _user(*roles, kind=kind)

    with pytest.raises(AccessDenied):
        study_deidentify(actor=user, study=study, project="teaching")

    assert DeidExport.objects.count() == 0
    assert Pseudonym.objects.count() == 0
    assert AuditEntry.objects.count() == 0
    assert orthanc.client.studies() == [orthanc_id]


def test_second_call_returns_the_existing_export_and_changes_nothing(orthanc):
    orthanc_id, originals = _identified_study(orthanc, series=1, per_series=2)
    study = _study_row(orthanc_id, originals)
    admin = _user(Role.ADMIN)
    first = study_deidentify(actor=admin, study=study, project="teaching")
    audit_count, studies = AuditEntry.objects.count(), sorted(orthanc.client.studies())

    again = study_deidentify(actor=_user(Role.QC_OFFICER), study=study, project="teaching")

    assert again.pk == first.pk and again.requested_by_id == admin.pk
    assert (again.status, again.deid_orthanc_id, again.updated_at) == (
        DeidExportStatus.DONE,
        first.deid_orthanc_id,
        first.updated_at,
    )
    assert AuditEntry.objects.count() == audit_count
    assert sorted(orthanc.client.studies()) == studies and len(studies) == 2
    assert DeidExport.objects.count() == 1


def test_deleted_copy_is_made_again_with_the_same_pseudonyms(orthanc):
    orthanc_id, originals = _identified_study(orthanc)
    study = _study_row(orthanc_id, originals)
    qc = _user(Role.QC_OFFICER)
    first = study_deidentify(actor=qc, study=study, project="teaching")
    before = {(ds.PatientID, ds.StudyInstanceUID) for _r, ds in _copy_files(orthanc, first)}
    orthanc.client.delete(f"studies/{first.deid_orthanc_id}")
    pseudonyms = set(Pseudonym.objects.values_list("pk", "pseudonym"))

    again = study_deidentify(actor=qc, study=study, project="teaching")

    assert again.pk == first.pk and again.status == DeidExportStatus.DONE
    assert again.instance_count == 6 and set(again.instance_uids) == set(first.instance_uids)
    copies = _copy_files(orthanc, again)
    assert {(ds.PatientID, ds.StudyInstanceUID) for _r, ds in copies} == before  # the same pseudonyms
    # Series and instance UIDs are Orthanc's, new with each copy, and the export maps the new ones.
    assert set(again.series_uids) == set(first.series_uids)
    assert {ds.SeriesInstanceUID for _r, ds in copies} == set(again.series_uids.values())
    assert {ds.SOPInstanceUID for _r, ds in copies} == set(again.instance_uids.values())
    assert set(Pseudonym.objects.values_list("pk", "pseudonym")) == pseudonyms
    last = AuditEntry.objects.order_by("-id").first()
    assert last.action == "deid_export.create" and json.loads(last.details)["recreated"] is True
    assert len(orthanc.client.studies()) == 2


def test_burned_in_annotation_is_refused_and_nothing_is_created(orthanc):
    orthanc_id, originals = _identified_study(orthanc, series=1, per_series=2, burned_in="YES")
    study = _study_row(orthanc_id, originals)

    with pytest.raises(InvalidInput) as excinfo:
        study_deidentify(actor=_user(Role.QC_OFFICER), study=study, project="teaching")

    assert excinfo.value.code == "deid_burned_in"
    assert (DeidExport.objects.count(), Pseudonym.objects.count(), AuditEntry.objects.count()) == (0, 0, 0)
    assert orthanc.client.studies() == [orthanc_id]


def test_an_export_already_running_is_not_started_twice(orthanc):
    orthanc_id, originals = _identified_study(orthanc, series=1, per_series=1)
    study = _study_row(orthanc_id, originals)
    qc = _user(Role.QC_OFFICER)
    running = DeidExport.objects.create(study=study, project="teaching", requested_by=qc)

    with pytest.raises(Conflict):
        study_deidentify(actor=qc, study=study, project="teaching")

    running.refresh_from_db()
    assert running.status == DeidExportStatus.RUNNING
    assert Pseudonym.objects.count() == 0 and AuditEntry.objects.count() == 0
    assert orthanc.client.studies() == [orthanc_id]

    # A run abandoned long ago (its worker died) is taken over.
    DeidExport.objects.filter(pk=running.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    export = study_deidentify(actor=qc, study=study, project="teaching")
    assert export.pk == running.pk and export.status == DeidExportStatus.DONE


def test_failure_half_way_leaves_no_copy_is_recorded_and_retried(orthanc, monkeypatch):
    orthanc_id, originals = _identified_study(orthanc)
    study = _study_row(orthanc_id, originals)
    qc = _user(Role.QC_OFFICER)
    real_request = OrthancClient.request
    calls = []

    def reading_the_copy_fails(self, method, path, **kwargs):
        # The copy is really made; Orthanc "fails" while its instances are read back.
        if path.startswith("series/") and path.endswith("/instances"):
            calls.append(path)
            raise OrthancError(f"Orthanc {method} /{path} returned HTTP 500", status_code=500)
        return real_request(self, method, path, **kwargs)

    monkeypatch.setattr(OrthancClient, "request", reading_the_copy_fails)
    with pytest.raises(Unavailable):
        study_deidentify(actor=qc, study=study, project="teaching")

    export = DeidExport.objects.get()
    assert export.status == DeidExportStatus.FAILED and "HTTP 500" in export.error
    assert calls, "the copy was made before the failure"
    assert orthanc.client.studies() == [orthanc_id]  # the half-made copy was deleted
    assert AuditEntry.objects.order_by("-id").first().action == "deid_export.fail"

    monkeypatch.setattr(OrthancClient, "request", real_request)
    again = study_deidentify(actor=qc, study=study, project="teaching")
    assert again.pk == export.pk and again.status == DeidExportStatus.DONE
    assert (again.instance_count, again.error) == (6, "")
    assert len(orthanc.client.studies()) == 2
    assert len(_copy_files(orthanc, again)) == 6
    assert Pseudonym.objects.count() == 2  # the failed attempt's pseudonyms were reused


@pytest.mark.parametrize("project", ["", "has space", "x" * 65, "../etc", "-leading"])
def test_bad_project_is_refused(orthanc, project):
    orthanc_id, originals = _identified_study(orthanc, series=1, per_series=1)
    with pytest.raises(InvalidInput):
        study_deidentify(
            actor=_user(Role.QC_OFFICER), study=_study_row(orthanc_id, originals), project=project
        )
    assert DeidExport.objects.count() == 0


@pytest.mark.django_db
def test_another_operators_qc_officer_cannot_export_through_the_service():
    """The API checks tenancy first; the task and ``manage.py deidentify --as`` call the service."""
    study = StudyFactory(unit=UnitFactory(operator=_operator()), patient_id="MRN-DEID-X")
    outsider = UserFactory(
        roles=[Role.QC_OFFICER], organisation=OrganisationFactory(kind=OrganisationKind.OPERATOR)
    )
    with pytest.raises(NotFound):
        study_deidentify(actor=outsider, study=study, project="teaching")
    assert DeidExport.objects.count() == 0
