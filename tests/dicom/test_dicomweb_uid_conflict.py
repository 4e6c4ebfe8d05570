"""Two patients under one Study Instance UID: the DICOMweb proxy serves only the granted copy.

Orthanc keeps one study per (PatientID, StudyInstanceUID); the platform ingests the second
patient's copy as ``uid_conflict`` (docs/ingest.md). Through ``/dicom-web/`` the reader who
claimed the first study and its hospital must see that study, all of it, and nothing of the
second patient (docs/viewer.md, "One Study Instance UID, two studies in Orthanc").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.test import AsyncClient
from pydicom.uid import generate_uid

from core.choices import Role
from core.models import AuditEntry
from dicom.choices import IngestStatus
from dicom.models import Study
from dicom.services.ingest import study_ingest
from telerad.services.claims import task_claim
from tests.core.factories import UserFactory
from tests.dicom.dcmtk import storescu_datasets
from tests.dicom.dicom_factory import ct_series
from tests.dicom.factories import OrderFactory
from tests.fleet.factories import UnitFactory
from tests.telerad.factories import RadiologistFactory, ReadingTaskFactory

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]

SECOND_NAME = "INTRUDER^SECOND"
SECOND_ID = "CRV-OTHER-9999"


@pytest.fixture(autouse=True)
def _fresh_cache():
    if cache.__class__.__name__ == "LocMemCache":
        cache.clear()


def orthanc_study_ids(orthanc, study_uid: str) -> set[str]:
    return {r["ID"] for r in orthanc.client.lookup(study_uid) if r["Type"] == "Study"}


@dataclass
class Conflict:
    uid: str
    held: Study
    conflict: Study
    first_series: str
    first_sops: set[str]
    second_series: str
    second_sops: set[str]
    reader: object
    hospital_user: object
    first_patient_id: str


@pytest.fixture
def conflict_world(orthanc, tmp_path) -> Conflict:
    unit = UnitFactory(ae_title=orthanc.scu_aet)
    order = OrderFactory(unit=unit, patient_birth_date="1970-01-01", patient_sex="O")
    first = ct_series(
        6,
        patient_id=order.patient_id,
        patient_name=order.patient_name,
        accession_number=order.accession_number,
        study_uid=order.study_instance_uid,
    )
    (tmp_path / "first").mkdir()
    storescu_datasets(orthanc, first, tmp_path / "first")
    (first_id,) = orthanc_study_ids(orthanc, order.study_instance_uid)
    orthanc.nudges.wait_for_study(first_id, timeout=orthanc.stable_age + 20)
    held = study_ingest(orthanc_id=first_id).study
    assert held.ingest_status == IngestStatus.MATCHED

    reader = RadiologistFactory()
    task = ReadingTaskFactory(study=held, eligible=[reader])
    task_claim(actor=reader.user, task=task)
    hospital_user = UserFactory(organisation=order.hospital, roles=[Role.HOSPITAL_USER])

    orthanc.nudges.clear()
    second = ct_series(
        3,
        patient_id=SECOND_ID,
        patient_name=SECOND_NAME,
        accession_number="OTHERACC",
        study_uid=order.study_instance_uid,
        series_uid=generate_uid(),
    )
    (tmp_path / "second").mkdir()
    storescu_datasets(orthanc, second, tmp_path / "second")
    (second_id,) = orthanc_study_ids(orthanc, order.study_instance_uid) - {first_id}
    orthanc.nudges.wait_for_study(second_id, timeout=orthanc.stable_age + 20)
    conflict = study_ingest(orthanc_id=second_id).study
    assert (conflict.ingest_status, conflict.uid_conflict_with_id) == (IngestStatus.UID_CONFLICT, held.pk)
    return Conflict(
        uid=order.study_instance_uid,
        held=held,
        conflict=conflict,
        first_series=first[0].SeriesInstanceUID,
        first_sops={ds.SOPInstanceUID for ds in first},
        second_series=second[0].SeriesInstanceUID,
        second_sops={ds.SOPInstanceUID for ds in second},
        reader=reader.user,
        hospital_user=hospital_user,
        first_patient_id=order.patient_id,
    )


def get(user, url: str, **headers: str):
    client = AsyncClient()
    client.force_login(user)

    async def go():
        response = await client.get(url, headers=headers)
        if response.streaming:
            return response, b"".join([chunk async for chunk in response.streaming_content])
        return response, response.content

    return async_to_sync(go)()


FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def sop_uids(body: bytes) -> set[str]:
    return {item["00080018"]["Value"][0] for item in json.loads(body)}


def series_uids(body: bytes) -> list[str]:
    return [item["0020000E"]["Value"][0] for item in json.loads(body)]


def assert_no_second_patient(body: bytes, url: str) -> None:
    for marker in (SECOND_NAME, SECOND_ID, "OTHERACC"):
        assert marker.encode() not in body, (marker, url)


@pytest.mark.parametrize("who", ["reader", "hospital_user", "operator_qc_officer", "superuser"])
def test_every_route_serves_only_the_granted_copy(conflict_world, who):
    w = conflict_world
    user = {
        "reader": w.reader,
        "hospital_user": w.hospital_user,
        "operator_qc_officer": UserFactory(organisation=w.held.unit.operator, roles=[Role.QC_OFFICER]),
        "superuser": UserFactory(is_superuser=True, is_staff=True),
    }[who]
    uid, first, second = w.uid, w.first_series, w.second_series
    first_sop, second_sop = sorted(w.first_sops)[0], sorted(w.second_sops)[0]
    served = {}

    def check(url: str, status: int = 200, **headers: str) -> bytes:
        response, body = get(user, url, **headers)
        assert response.status_code == status, (url, response.status_code, body[:300])
        assert_no_second_patient(body, url)
        served[url] = response.status_code
        return body

    body = check(f"/dicom-web/studies?StudyInstanceUID={uid}")
    [study] = json.loads(body)
    assert study["0020000D"]["Value"] == [uid]
    assert study["00100020"]["Value"] == [w.first_patient_id]
    assert study["00201208"]["Value"] == [6]  # Orthanc's count for the granted copy
    assert series_uids(check(f"/dicom-web/series?StudyInstanceUID={uid}")) == [first]
    assert sop_uids(check(f"/dicom-web/instances?StudyInstanceUID={uid}")) == w.first_sops
    assert series_uids(check(f"/dicom-web/studies/{uid}/series")) == [first]
    assert sop_uids(check(f"/dicom-web/studies/{uid}/instances")) == w.first_sops
    assert sop_uids(check(f"/dicom-web/studies/{uid}/series/{first}/instances")) == w.first_sops
    study_metadata = check(f"/dicom-web/studies/{uid}/metadata")
    assert sop_uids(study_metadata) == w.first_sops
    # Built from the granted series, it still points bulk data at the proxy, and they open.
    bulk = [v["BulkDataURI"] for m in json.loads(study_metadata) for v in m.values() if "BulkDataURI" in v]
    assert len(bulk) == 6 and all(f"/dicom-web/studies/{uid}/series/{first}/" in uri for uri in bulk)
    check(bulk[0].removeprefix("http://testserver"))
    assert sop_uids(check(f"/dicom-web/studies/{uid}/series/{first}/metadata")) == w.first_sops
    metadata = check(f"/dicom-web/studies/{uid}/series/{first}/instances/{first_sop}/metadata")
    assert sop_uids(metadata) == {first_sop}
    check(f"/dicom-web/studies/{uid}/series/{first}/instances/{first_sop}/frames/1", accept=FRAMES)
    check(f"/dicom-web/studies/{uid}/series/{first}/instances/{first_sop}/rendered", accept="image/png")

    check(f"/dicom-web/studies/{uid}/series/{first}", accept="multipart/related; type=application/dicom")
    # A whole-study retrieve of a UID held twice: Orthanc refuses it (404), nothing leaks.
    check(f"/dicom-web/studies/{uid}", 404, accept="multipart/related; type=application/dicom")
    # The second patient's series, instances and frames under the study's path: 404.
    for url in (
        f"/dicom-web/studies/{uid}/series/{second}",
        f"/dicom-web/studies/{uid}/series/{second}/metadata",
        f"/dicom-web/studies/{uid}/series/{second}/instances",
        f"/dicom-web/studies/{uid}/series/{second}/instances/{second_sop}",
        f"/dicom-web/studies/{uid}/series/{second}/instances/{second_sop}/metadata",
        f"/dicom-web/studies/{uid}/series/{second}/instances/{second_sop}/frames/1",
        f"/dicom-web/studies/{uid}/series/{second}/instances/{second_sop}/rendered",
        f"/dicom-web/studies/{uid}/series/{second}/rendered",
        # ...nor under the first series' UID.
        f"/dicom-web/studies/{uid}/series/{first}/instances/{second_sop}/frames/1",
        f"/dicom-web/studies/{uid}/series/{first}/instances/{second_sop}/metadata",
    ):
        check(url, 404, accept=FRAMES if "frames" in url else "*/*")
    # Searches that name the second patient find nothing of them.
    assert json.loads(check(f"/dicom-web/studies?PatientID={SECOND_ID}")) == []
    assert series_uids(check(f"/dicom-web/series?StudyInstanceUID={uid}&SeriesInstanceUID={second}")) == []
    assert sop_uids(check(f"/dicom-web/instances?SOPInstanceUID={second_sop}")) == set()
    assert len(served) == 27

    # Audited as before: one study.open, on the granted (held) study, never on the conflict.
    opened = AuditEntry.objects.filter(action="study.open", actor_id=user.pk)
    assert list(opened.values_list("object_id", flat=True)) == [str(w.held.pk)]


def test_the_conflict_copy_alone_is_never_served(conflict_world, orthanc):
    """A user who may see only the uid_conflict row (an operator QC officer of its van, when
    the held study came from another operator's van) gets nothing through DICOMweb."""
    w = conflict_world
    other_van = UnitFactory()
    Study.objects.filter(pk=w.held.pk).update(unit=other_van)
    qc = UserFactory(organisation=w.conflict.unit.operator, roles=[Role.QC_OFFICER])
    for url, status in (
        (f"/dicom-web/studies?StudyInstanceUID={w.uid}", 200),
        (f"/dicom-web/studies?PatientID={SECOND_ID}", 200),
        (f"/dicom-web/series?StudyInstanceUID={w.uid}", 200),
        (f"/dicom-web/studies/{w.uid}/metadata", 404),
        (f"/dicom-web/studies/{w.uid}/series/{w.second_series}/metadata", 404),
        (f"/dicom-web/studies/{w.uid}/series", 404),
    ):
        response, body = get(qc, url)
        assert response.status_code == status, url
        if status == 200:
            assert json.loads(body) == [], url
    assert not AuditEntry.objects.filter(action="study.open", actor_id=qc.pk).exists()


def test_a_late_series_of_the_granted_study_is_served_at_once(conflict_world, orthanc, tmp_path):
    """The granted study's scope is cached; a series UID it lacks is looked up again first."""
    w = conflict_world
    response, _ = get(w.reader, f"/dicom-web/studies/{w.uid}/series")
    assert response.status_code == 200  # the scope is now cached
    late = ct_series(2, patient_id=w.first_patient_id, patient_name=w.held.patient_name, study_uid=w.uid)
    storescu_datasets(orthanc, late, tmp_path)
    late_sop = late[0].SOPInstanceUID
    response, body = get(w.reader, f"/dicom-web/studies/{w.uid}/series/{late[0].SeriesInstanceUID}/metadata")
    assert response.status_code == 200
    assert sop_uids(body) == {ds.SOPInstanceUID for ds in late}
    url = f"/dicom-web/studies/{w.uid}/series/{late[0].SeriesInstanceUID}/instances/{late_sop}/frames/1"
    response, _ = get(w.reader, url, accept=FRAMES)
    assert response.status_code == 200
