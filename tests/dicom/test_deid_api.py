"""Asking for a de-identified export (dicom/api/deid.py, the task, the ``deidentify`` command).

The copy is made for real by the Orthanc of tests/orthanc_fixture.py; refusals are checked
without it, since they must be answered before anything reaches Orthanc.
"""

from __future__ import annotations

import logging

import pytest
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from core.choices import OrganisationKind, Role
from core.models import AuditEntry
from dicom.models import DeidExport, DeidExportStatus
from dicom.tasks import deidentify_study_task
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.dicom_factory import ct_series, to_bytes
from tests.dicom.factories import StudyFactory
from tests.fleet.factories import OperatorFactory, UnitFactory

pytestmark = pytest.mark.django_db

PATIENT_ID = "MRN-API-58213"
PATIENT_NAME = "FAIRWEATHER^ODALYS"
PROJECT = "teaching-ct.2025"


def _user(*roles: str, kind: str = OrganisationKind.OPERATOR, organisation=None):
    return UserFactory(roles=list(roles), organisation=organisation or OrganisationFactory(kind=kind))


def _staff(role: str, study):
    """A user with ``role`` at the operator whose van acquired ``study`` (who may export it)."""
    return _user(role, organisation=study.unit.operator)


def _study(operator=None, **fields):
    """A study acquired by a van of ``operator`` (a new operator unless given)."""
    return StudyFactory(unit=UnitFactory(operator=operator or OperatorFactory()), **fields)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _study_in_orthanc(orthanc, *, series: int = 2, per_series: int = 2) -> tuple[object, list[Dataset]]:
    """A CT study uploaded to Orthanc and mirrored as a Study row; (study, datasets)."""
    study_uid = generate_uid()
    datasets = []
    for number in range(1, series + 1):
        for ds in ct_series(
            per_series, study_uid=study_uid, patient_id=PATIENT_ID, patient_name=PATIENT_NAME
        ):
            ds.SeriesNumber = number
            datasets.append(ds)
    for ds in datasets:
        answer = orthanc.client.upload_instance(to_bytes(ds))
    study = _study(
        orthanc_id=answer["ParentStudy"],
        study_instance_uid=study_uid,
        patient_id=PATIENT_ID,
        patient_name=PATIENT_NAME,
    )
    return study, datasets


def _identifying(datasets: list[Dataset]) -> set[str]:
    values = {PATIENT_ID, PATIENT_NAME, "FAIRWEATHER", "ODALYS"}
    values |= {ds.StudyInstanceUID for ds in datasets} | {ds.SeriesInstanceUID for ds in datasets}
    return values | {ds.SOPInstanceUID for ds in datasets}


def _export(study, project: str = PROJECT, **fields) -> DeidExport:
    """An export row as the service leaves it (for tests of reading, which need no Orthanc)."""
    fields.setdefault("requested_by", _user(Role.QC_OFFICER))
    return DeidExport.objects.create(study=study, project=project, **fields)


# --- asking for an export --------------------------------------------------------------------------


@pytest.mark.orthanc
@pytest.mark.parametrize("role", [Role.QC_OFFICER, Role.ADMIN])
def test_request_is_queued_after_commit_and_the_export_can_be_followed(
    orthanc, role, django_capture_on_commit_callbacks
):
    study, datasets = _study_in_orthanc(orthanc)
    user = _staff(role, study)
    client = _client(user)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": PROJECT}, format="json"
        )

    assert response.status_code == 202, response.json()
    body = response.json()
    status_url = f"/api/dicom/deid-exports/?study={study.pk}&project={PROJECT}"
    assert body == {"study": study.pk, "project": PROJECT, "status_url": status_url}
    # Nothing is done in the request: the worker starts once the request's transaction commits.
    assert len(callbacks) == 1
    assert DeidExport.objects.count() == 0 and len(orthanc.client.studies()) == 1
    asked = AuditEntry.objects.get(action="deid_export.request")
    assert (asked.actor_id, asked.object_type, asked.object_id) == (user.pk, "dicom.study", str(study.pk))
    assert asked.patient_data and asked.details_data == {"project": PROJECT}

    callbacks[0]()  # Celery is eager in tests (as without REDIS_URL): the task runs here

    export = DeidExport.objects.get()
    assert (export.study_id, export.project, export.status) == (study.pk, PROJECT, DeidExportStatus.DONE)
    assert export.requested_by_id == user.pk
    assert len(orthanc.client.studies()) == 2

    listed = client.get(status_url)
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [export.pk]

    detail = client.get(f"/api/dicom/deid-exports/{export.pk}/")
    assert detail.status_code == 200
    row = detail.json()
    assert row == listed.json()["results"][0]
    assert {k: row[k] for k in ("study", "project", "status", "series_count", "instance_count", "error")} == {
        "study": study.pk,
        "project": PROJECT,
        "status": "done",
        "series_count": 2,
        "instance_count": 4,
        "error": "",
    }
    assert row["deid_study_instance_uid"] == export.deid_study_instance_uid != datasets[0].StudyInstanceUID
    assert row["deid_orthanc_id"] == export.deid_orthanc_id in orthanc.client.studies()
    assert row["requested_by"] == user.username
    assert row["created_at"] and row["updated_at"] and row["completed_at"]
    # Neither the patient nor any original UID (the keys of instance_uids) is in what is served.
    assert "instance_uids" not in row
    for response in (listed, detail):
        text = response.content.decode()
        for needle in _identifying(datasets):
            assert needle not in text, "an identifying value is in the response"
    assert set(export.instance_uids) == {ds.SOPInstanceUID for ds in datasets}


@pytest.mark.orthanc
def test_asking_again_returns_the_same_export(orthanc, django_capture_on_commit_callbacks):
    study, _datasets = _study_in_orthanc(orthanc, series=1)
    client = _client(_staff(Role.QC_OFFICER, study))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": PROJECT}, format="json"
            )
        assert response.status_code == 202
    export = DeidExport.objects.get()
    assert (export.status, export.series_count, export.instance_count) == ("done", 1, 2)
    assert len(orthanc.client.studies()) == 2
    assert AuditEntry.objects.filter(action="deid_export.create").count() == 1


@pytest.mark.parametrize(
    ("roles", "kind"),
    [
        ([Role.HOSPITAL_USER], OrganisationKind.HOSPITAL),
        ([Role.RADIOLOGIST], OrganisationKind.READING_GROUP),
        ([Role.TECHNOLOGIST], OrganisationKind.OPERATOR),
        ([Role.DISPATCHER], OrganisationKind.OPERATOR),
        ([], OrganisationKind.OPERATOR),
    ],
)
def test_other_roles_are_refused_and_nothing_is_queued(roles, kind, django_capture_on_commit_callbacks):
    study = StudyFactory()
    existing = _export(study, project="other", status=DeidExportStatus.DONE)
    client = _client(_user(*roles, kind=kind))
    audit_count = AuditEntry.objects.count()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        posted = client.post(
            f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": PROJECT}, format="json"
        )
        listed = client.get("/api/dicom/deid-exports/")
        detail = client.get(f"/api/dicom/deid-exports/{existing.pk}/")

    assert [posted.status_code, listed.status_code, detail.status_code] == [403, 403, 403]
    assert posted.json()["detail"] == "De-identified exports are for QC officers and administrators."
    assert callbacks == []
    assert list(DeidExport.objects.values_list("pk", flat=True)) == [existing.pk]
    assert AuditEntry.objects.count() == audit_count


def test_anonymous_is_refused():
    study = StudyFactory()
    response = APIClient().post(f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": PROJECT})
    assert response.status_code in (401, 403)
    assert DeidExport.objects.count() == 0


def test_bad_requests_are_answered_at_once_and_queue_nothing(django_capture_on_commit_callbacks):
    study = _study()
    not_in_orthanc = _study(operator=study.unit.operator, orthanc_id="")
    client = _client(_staff(Role.QC_OFFICER, study))
    cases = [
        (study.pk, {}, 400),
        (study.pk, {"project": ""}, 400),
        (study.pk, {"project": "-leading-dash"}, 400),
        (study.pk, {"project": "has space"}, 400),
        (study.pk, {"project": "x" * 65}, 400),
        (study.pk, {"project": "nested/path"}, 400),
        (study.pk, {"project": ["teaching"]}, 400),
        (not_in_orthanc.pk, {"project": PROJECT}, 400),
        (999999, {"project": PROJECT}, 404),
    ]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for study_id, payload, status in cases:
            response = client.post(f"/api/dicom/studies/{study_id}/deid-exports/", payload, format="json")
            assert response.status_code == status, (study_id, payload, response.json())
            assert response.json()["detail"]
    assert callbacks == []
    assert DeidExport.objects.count() == 0
    bad = client.post(
        f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": "a b"}, format="json"
    ).json()
    assert bad["code"] == "invalid" and "project" in bad["errors"]


def test_a_qc_officer_of_a_reading_group_sees_no_study_to_export(django_capture_on_commit_callbacks):
    # The role passes, but reading groups see only studies they read, and QC officers read none.
    study = StudyFactory()
    _export(study, status=DeidExportStatus.DONE)
    client = _client(_user(Role.QC_OFFICER, kind=OrganisationKind.READING_GROUP))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": "x"}, format="json"
        )
    assert response.status_code == 404
    assert callbacks == []
    assert client.get("/api/dicom/deid-exports/").json()["results"] == []
    assert client.get(f"/api/dicom/deid-exports/{DeidExport.objects.get().pk}/").status_code == 404


@pytest.mark.parametrize("role", [Role.QC_OFFICER, Role.ADMIN])
def test_another_operators_staff_see_no_study_to_export(role, django_capture_on_commit_callbacks):
    # Operators are isolated: the role passes, but the study was acquired by another operator's van.
    study = _study()
    existing = _export(study, status=DeidExportStatus.DONE)
    client = _client(_user(role))  # staff of a different operator
    audit_count = AuditEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            f"/api/dicom/studies/{study.pk}/deid-exports/", {"project": PROJECT}, format="json"
        )
    assert response.status_code == 404
    assert callbacks == []
    assert client.get("/api/dicom/deid-exports/").json()["results"] == []
    assert client.get(f"/api/dicom/deid-exports/?study={study.pk}").json()["results"] == []
    assert client.get(f"/api/dicom/deid-exports/{existing.pk}/").status_code == 404
    assert list(DeidExport.objects.values_list("pk", flat=True)) == [existing.pk]
    assert AuditEntry.objects.count() == audit_count


# --- following exports -----------------------------------------------------------------------------


def test_list_filters_by_study_and_project_newest_first(django_assert_num_queries):
    operator = OperatorFactory()
    first, second = _study(operator), _study(operator)
    a = _export(first, project="alpha", status=DeidExportStatus.DONE, instance_count=3)
    b = _export(first, project="beta", status=DeidExportStatus.FAILED, error="Orthanc said no")
    c = _export(second, project="alpha")
    client = _client(_user(Role.ADMIN, organisation=operator))

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/dicom/deid-exports/{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [c.pk, b.pk, a.pk]
    assert ids(f"?study={first.pk}") == [b.pk, a.pk]
    assert ids("?project=alpha") == [c.pk, a.pk]
    assert ids(f"?study={first.pk}&project=beta") == [b.pk]
    assert ids("?study=999999") == []
    assert client.get("/api/dicom/deid-exports/?study=abc").status_code == 400
    failed = client.get(f"/api/dicom/deid-exports/{b.pk}/").json()
    assert (failed["status"], failed["error"], failed["completed_at"]) == ("failed", "Orthanc said no", None)
    assert client.get("/api/dicom/deid-exports/999999/").status_code == 404

    for n in range(5):
        _export(_study(operator), project=f"p{n}")
    _export(_study(), project="elsewhere")  # another operator's van's study: never listed here
    # Authentication is forced; one count and one page with the requester joined, however many rows.
    with django_assert_num_queries(2):
        response = client.get("/api/dicom/deid-exports/")
    assert response.json()["count"] == 8


def test_original_instance_uids_are_never_served():
    study = _study(patient_id=PATIENT_ID, patient_name=PATIENT_NAME)
    originals = [generate_uid() for _ in range(3)]
    export = _export(
        study,
        status=DeidExportStatus.DONE,
        instance_count=3,
        instance_uids={uid: generate_uid() for uid in originals},
    )
    client = _client(_staff(Role.QC_OFFICER, study))
    for url in ("/api/dicom/deid-exports/", f"/api/dicom/deid-exports/{export.pk}/"):
        text = client.get(url).content.decode()
        for needle in [*originals, *export.instance_uids.values(), study.study_instance_uid, PATIENT_ID]:
            assert needle not in text
        assert "FAIRWEATHER" not in text and '"instance_count":3' in text


# --- the task --------------------------------------------------------------------------------------


def test_task_logs_a_refusal_and_does_not_retry(caplog):
    study = StudyFactory()
    technologist = _user(Role.TECHNOLOGIST)
    with caplog.at_level(logging.WARNING, logger="dicom.tasks"):
        result = deidentify_study_task.delay(study.pk, PROJECT, technologist.pk)
    assert result.get() is None
    assert result.state == "SUCCESS"  # handled: not a failure Celery would retry
    assert DeidExport.objects.count() == 0
    (record,) = [r for r in caplog.records if r.name == "dicom.tasks"]
    assert "Only QC officers and administrators" in record.getMessage()


def test_task_with_a_vanished_study_or_user_does_nothing(caplog):
    study, qc = StudyFactory(), _user(Role.QC_OFFICER)
    with caplog.at_level(logging.WARNING, logger="dicom.tasks"):
        assert deidentify_study_task.delay(999999, PROJECT, qc.pk).get() is None
        assert deidentify_study_task.delay(study.pk, PROJECT, 999999).get() is None
    assert DeidExport.objects.count() == 0
    assert len([r for r in caplog.records if r.name == "dicom.tasks"]) == 2


@pytest.mark.orthanc
def test_task_logs_a_study_gone_from_orthanc_as_a_refusal(orthanc, caplog):
    study = _study(orthanc_id="0" * 8 + "-00000000-00000000-00000000-00000000")
    qc = _staff(Role.QC_OFFICER, study)
    with caplog.at_level(logging.WARNING, logger="dicom.tasks"):
        assert deidentify_study_task.delay(study.pk, PROJECT, qc.pk).get() is None
    assert any("no longer in Orthanc" in r.getMessage() for r in caplog.records if r.name == "dicom.tasks")
    # The requester, who only sees the export list, sees the refusal there, with the reason.
    [row] = _client(qc).get(f"/api/dicom/deid-exports/?study={study.pk}&project={PROJECT}").json()["results"]
    assert (row["status"], row["error"]) == ("failed", "The study is no longer in Orthanc")
    assert AuditEntry.objects.filter(action="deid_export.fail", object_id=str(row["id"])).count() == 1
    # Asked again (it is still gone): the same row, the reason refreshed, nothing duplicated.
    assert deidentify_study_task.delay(study.pk, PROJECT, qc.pk).get() is None
    assert DeidExport.objects.count() == 1


# --- the command -----------------------------------------------------------------------------------


@pytest.mark.orthanc
def test_command_makes_the_export_and_prints_it(orthanc, capsys):
    study, datasets = _study_in_orthanc(orthanc)
    qc = _staff(Role.QC_OFFICER, study)

    call_command("deidentify", "--study", str(study.pk), "--project", PROJECT, "--as", qc.username)

    export = DeidExport.objects.get()
    assert export.status == DeidExportStatus.DONE and export.requested_by_id == qc.pk
    out = capsys.readouterr().out
    uid = export.deid_study_instance_uid
    assert out == f"export {export.pk}: done, 2 series, 4 instances, StudyInstanceUID {uid}\n"
    assert not _identifying(datasets) & set(out.replace(",", " ").split())

    # Idempotent: the same export again, nothing new in Orthanc.
    call_command("deidentify", "--study", str(study.pk), "--project", PROJECT, "--as", qc.username)
    assert capsys.readouterr().out == out
    assert DeidExport.objects.count() == 1 and len(orthanc.client.studies()) == 2


def test_command_fails_clearly():
    study = _study()
    qc, technologist = _staff(Role.QC_OFFICER, study), _staff(Role.TECHNOLOGIST, study)
    outsider = _user(Role.QC_OFFICER)  # another operator's
    cases = [
        (
            ["--study", str(study.pk), "--project", PROJECT, "--as", outsider.username],
            "De-identification refused or failed: No study matches the given id",
        ),
        (
            ["--study", str(study.pk), "--project", PROJECT, "--as", "nobody-here"],
            "No active user named 'nobody-here'",
        ),
        (["--study", "999999", "--project", PROJECT, "--as", qc.username], "No study with id 999999"),
        (
            ["--study", str(study.pk), "--project", PROJECT, "--as", technologist.username],
            "De-identification refused or failed: Only QC officers and administrators",
        ),
        (
            ["--study", str(study.pk), "--project", "bad project", "--as", qc.username],
            "De-identification refused or failed: project must be",
        ),
    ]
    for args, message in cases:
        with pytest.raises(CommandError) as error:
            call_command("deidentify", *args)
        assert str(error.value).startswith(message), str(error.value)
    assert DeidExport.objects.count() == 0
