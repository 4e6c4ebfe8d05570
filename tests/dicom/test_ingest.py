"""Ingest against a real Orthanc: nudge path, reconciler, matching, queue, late series, races."""

import threading

import pytest
from django.db import connections
from pydicom.uid import generate_uid

from core.models import AuditEntry
from dicom.choices import IngestStatus, MatchMethod, OrderStatus
from dicom.models import IngestCursor, Order, Series, Study
from dicom.orthanc_client import OrthancError
from dicom.selectors import reconciliation_queue
from dicom.services.ingest import study_ingest
from dicom.services.reconcile import reconcile_changes, study_link_order
from dicom.tasks import ingest_study_task
from tests.core.factories import UserFactory
from tests.dicom.dicom_factory import associate, ct_series, send_synthetic, to_bytes
from tests.dicom.factories import OrderFactory
from tests.fleet.factories import UnitFactory

pytestmark = [pytest.mark.orthanc, pytest.mark.django_db]


def _order(orthanc, **kwargs) -> Order:
    unit = UnitFactory(ae_title=orthanc.scu_aet)
    return OrderFactory(unit=unit, patient_birth_date="1970-01-01", patient_sex="O", **kwargs)


def _series_for(order: Order | None, count: int = 3, **kwargs):
    fields = {}
    if order is not None:
        fields = {
            "patient_id": order.patient_id,
            "patient_name": order.patient_name,
            "accession_number": order.accession_number,
            "study_uid": order.study_instance_uid,
        }
    fields.update(kwargs)
    return ct_series(count, **fields)


def _store_dicom(orthanc, datasets) -> str:
    """C-STORE over a real association from the whitelisted van AE; the Orthanc study id."""
    assoc = associate(orthanc.dicom_port, calling_aet=orthanc.scu_aet, called_aet=orthanc.aet)
    assert assoc.is_established
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            assert status.Status == 0x0000
    finally:
        assoc.release()
    (match,) = [r for r in orthanc.client.lookup(datasets[0].StudyInstanceUID) if r["Type"] == "Study"]
    return match["ID"]


def _wait_stable(orthanc, study_id: str):
    return orthanc.nudges.wait_for_study(study_id, timeout=orthanc.stable_age + 20)


def test_good_accession_links_study_to_order_and_acquires_it(orthanc):
    order = _order(orthanc)
    study_id = _store_dicom(orthanc, _series_for(order, 3))
    nudge = _wait_stable(orthanc, study_id)

    ingest_study_task(
        study_id, nudge.json["seq"], nudge.json["stable_at"]
    )  # what the nudge endpoint schedules

    study = Study.objects.get()
    assert (study.orthanc_id, study.order_id, study.ingest_status) == (
        study_id,
        order.pk,
        IngestStatus.MATCHED,
    )
    assert study.match_method == MatchMethod.ACCESSION
    assert (study.number_of_series, study.number_of_instances, study.source_aet) == (1, 3, orthanc.scu_aet)
    assert (study.hospital_id, study.unit_id) == (order.hospital_id, order.unit_id)
    assert study.stable_seq == nudge.json["seq"]
    assert study.stable_at.timestamp() == pytest.approx(nudge.json["stable_at"], abs=1e-3)
    order.refresh_from_db()
    assert order.status == OrderStatus.ACQUIRED
    assert Series.objects.filter(study=study).count() == 1
    assert AuditEntry.objects.filter(action="study.ingest", object_id=str(study.pk)).count() == 1
    assert AuditEntry.objects.filter(action="order.acquired", object_id=str(order.pk)).count() == 1


def test_wrong_accession_goes_to_the_reconciliation_queue_then_a_qc_officer_links_it(orthanc):
    order = _order(orthanc)
    study_id = _store_dicom(
        orthanc,
        _series_for(
            order, 2, accession_number="NOSUCHACC", study_uid=generate_uid(), patient_id="SOMEONE-ELSE"
        ),
    )
    _wait_stable(orthanc, study_id)

    study = study_ingest(orthanc_id=study_id).study
    assert (study.ingest_status, study.order_id, study.hospital_id) == (IngestStatus.UNMATCHED, None, None)
    assert study.routable_at is None
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED

    hospital_user = UserFactory(organisation=order.hospital, roles=["hospital_user"])
    from core.exceptions import AccessDenied, Conflict

    with pytest.raises(AccessDenied):
        study_link_order(actor=hospital_user, study=study, order=order)
    assert Study.objects.get(pk=study.pk).ingest_status == IngestStatus.UNMATCHED

    qc_officer = UserFactory(organisation=order.unit.operator, roles=["qc_officer"])
    linked = study_link_order(actor=qc_officer, study=study, order=order)
    assert (linked.ingest_status, linked.order_id, linked.match_method) == ("matched", order.pk, "manual")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ACQUIRED
    entry = AuditEntry.objects.get(action="study.link_order")
    assert (entry.actor_id, entry.object_id) == (qc_officer.pk, str(study.pk))
    with pytest.raises(Conflict):
        study_link_order(actor=qc_officer, study=linked, order=order)


def test_fallback_match_by_patient_date_and_modality(orthanc):
    order = _order(orthanc)
    study_id = _store_dicom(orthanc, _series_for(order, 2, accession_number="", study_uid=generate_uid()))
    _wait_stable(orthanc, study_id)
    study = study_ingest(orthanc_id=study_id).study
    assert (study.order_id, study.match_method) == (order.pk, MatchMethod.FALLBACK)


def test_platform_down_then_reconciler_ingests_all_three_exactly_once(orthanc):
    # The recorder stands in for a platform that is down: nudges arrive and are never handled.
    unit = UnitFactory(ae_title=orthanc.scu_aet)
    orders = [OrderFactory(unit=unit, patient_birth_date="1970-01-01", patient_sex="O") for _ in range(3)]
    study_ids = [_store_dicom(orthanc, _series_for(o, 2)) for o in orders]
    for study_id in study_ids:
        _wait_stable(orthanc, study_id)
    assert Study.objects.count() == 0

    result = reconcile_changes(page_size=7)  # small pages: the cursor must advance page by page

    assert (result.ingested, result.stable_seen) == (3, 3)
    assert sorted(Study.objects.values_list("orthanc_id", flat=True)) == sorted(study_ids)
    assert set(Study.objects.values_list("order_id", flat=True)) == {o.pk for o in orders}
    cursor = IngestCursor.objects.get()
    assert cursor.last_seq == result.end_seq > 0
    audit_before = AuditEntry.objects.count()

    again = reconcile_changes()
    assert (again.ingested, again.stable_seen, again.start_seq) == (0, 0, cursor.last_seq)
    # Replaying from zero (a lost cursor) changes nothing either.
    IngestCursor.objects.filter(pk=cursor.pk).delete()
    replay = reconcile_changes()
    assert (replay.ingested, replay.stable_seen) == (0, 3)
    assert Study.objects.count() == 3
    assert AuditEntry.objects.count() == audit_before


def test_a_late_series_updates_the_same_study(orthanc):
    order = _order(orthanc)
    first = _series_for(order, 2)
    study_id = _store_dicom(orthanc, first)
    _wait_stable(orthanc, study_id)
    study = study_ingest(orthanc_id=study_id).study
    assert (study.number_of_series, study.number_of_instances) == (1, 2)

    orthanc.nudges.clear()
    late = _series_for(order, 4, series_uid=generate_uid())
    assert _store_dicom(orthanc, late) == study_id
    _wait_stable(orthanc, study_id)
    outcome = study_ingest(orthanc_id=study_id)

    assert (outcome.created, outcome.changed) == (False, True)
    assert Study.objects.count() == 1
    study.refresh_from_db()
    assert (study.number_of_series, study.number_of_instances) == (2, 6)
    assert sorted(Series.objects.filter(study=study).values_list("number_of_instances", flat=True)) == [2, 4]
    assert AuditEntry.objects.filter(action="study.update", object_id=str(study.pk)).count() == 1
    # A third pass with nothing new is a no-op.
    assert study_ingest(orthanc_id=study_id).changed is False


def test_a_second_patient_under_a_held_study_uid_is_kept_beside_it_in_the_queue(orthanc):
    """Orthanc keeps one study per (PatientID, StudyInstanceUID): a series sent under the booked
    study's UID with a mistyped patient ID is a second study there. Neither may be lost."""
    order = _order(orthanc)
    first_id = _store_dicom(orthanc, _series_for(order, 3))
    _wait_stable(orthanc, first_id)
    held = study_ingest(orthanc_id=first_id).study
    assert held.ingest_status == IngestStatus.MATCHED

    orthanc.nudges.clear()
    typo = _series_for(order, 2, series_uid=generate_uid(), patient_id=order.patient_id + "X")
    assoc = associate(orthanc.dicom_port, calling_aet=orthanc.scu_aet, called_aet=orthanc.aet)
    try:
        assert all(assoc.send_c_store(ds).Status == 0 for ds in typo)
    finally:
        assoc.release()
    (second_id,) = {
        r["ID"] for r in orthanc.client.lookup(order.study_instance_uid) if r["Type"] == "Study"
    } - {first_id}
    _wait_stable(orthanc, second_id)
    conflict = study_ingest(orthanc_id=second_id).study

    held.refresh_from_db()  # untouched: same Orthanc study, patient, counts, order
    assert (held.orthanc_id, held.patient_id, held.number_of_instances, held.order_id) == (
        first_id,
        order.patient_id,
        3,
        order.pk,
    )
    assert (conflict.orthanc_id, conflict.uid_conflict_with_id, conflict.ingest_status) == (
        second_id,
        held.pk,
        IngestStatus.UID_CONFLICT,
    )
    assert (conflict.patient_id, conflict.number_of_instances, conflict.order_id) == (
        order.patient_id + "X",
        2,
        None,
    )
    assert conflict.routable_at is None
    assert [s.number_of_instances for s in Series.objects.filter(study=held)] == [3]
    assert [s.number_of_instances for s in Series.objects.filter(study=conflict)] == [2]
    entry = AuditEntry.objects.get(action="study.uid_conflict")
    assert entry.details_data["conflicts_with"] == held.pk and entry.patient_id == order.patient_id + "X"

    qc_officer = UserFactory(organisation=order.unit.operator, roles=["qc_officer"])
    assert list(reconciliation_queue(qc_officer)) == [conflict]
    spare = OrderFactory(unit=order.unit, patient_birth_date="1970-01-01", patient_sex="O")
    from core.exceptions import Conflict

    with pytest.raises(Conflict, match=f"reuses the Study Instance UID of study {held.pk}"):
        study_link_order(actor=qc_officer, study=conflict, order=spare)
    assert Order.objects.get(pk=spare.pk).status == OrderStatus.SCHEDULED

    # Replays (the nudge again, the reconciler from the start) change nothing.
    assert study_ingest(orthanc_id=second_id).changed is False
    IngestCursor.objects.all().delete()
    assert reconcile_changes().ingested == 0
    assert Study.objects.count() == 2

    # The wrong copy deleted in Orthanc and the series re-sent under the right patient: it joins
    # the held study as a late series; the conflict row stays as the record of what happened.
    orthanc.client.delete(f"studies/{second_id}")
    orthanc.nudges.clear()
    assert _store_dicom(orthanc, _series_for(order, 2, series_uid=typo[0].SeriesInstanceUID)) == first_id
    _wait_stable(orthanc, first_id)
    assert study_ingest(orthanc_id=first_id).changed is True
    held.refresh_from_db()
    assert (held.number_of_series, held.number_of_instances) == (2, 5)


def test_a_study_deleted_from_orthanc_is_skipped(orthanc):
    study_id = _store_dicom(orthanc, _series_for(None, 1))
    _wait_stable(orthanc, study_id)
    orthanc.client.delete(f"studies/{study_id}")
    assert study_ingest(orthanc_id=study_id).study is None
    assert reconcile_changes().ingested == 0
    assert Study.objects.count() == 0


def test_malformed_dicom_is_refused_by_orthanc_and_nothing_is_created(orthanc):
    good = to_bytes(ct_series(1)[0])
    for data in (good[:200], b"not dicom at all"):  # truncated (no valid dataset), not DICOM
        with pytest.raises(OrthancError) as excinfo:
            orthanc.client.upload_instance(data)
        assert excinfo.value.status_code == 400
        assert str(excinfo.value) == "Orthanc POST /instances returned HTTP 400: Bad file format"
    assert orthanc.client.studies() == []
    assert reconcile_changes().ingested == 0
    assert Study.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_nudge_and_reconciler_racing_on_one_study_make_one_study(orthanc):
    order = _order(orthanc)
    study_id = _store_dicom(orthanc, _series_for(order, 3))
    nudge = _wait_stable(orthanc, study_id)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def via_nudge():
        try:
            barrier.wait()
            ingest_study_task(study_id, nudge.json["seq"])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def via_reconciler():
        try:
            barrier.wait()
            study_ingest(orthanc_id=study_id, source="reconciler")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=f) for f in (via_nudge, via_reconciler, via_nudge, via_reconciler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Study.objects.count() == 1
    assert Series.objects.count() == 1
    assert AuditEntry.objects.filter(action="study.ingest").count() == 1
    assert Study.objects.get().order_id == order.pk


# --- the whole path with realistic studies: ingest -> QC -> routable (or not) -----------------


def test_a_clean_study_passes_qc_and_becomes_routable(orthanc, django_capture_on_commit_callbacks):
    from dicom.synth import make_study, spec_from_order

    order = _order(orthanc)
    order.refresh_from_db()  # dates as date objects
    study_id = send_synthetic(
        orthanc, make_study(spec_from_order(order, slices_per_series=12, with_dose_sr=True))
    )
    nudge = _wait_stable(orthanc, study_id)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ingest_study_task(study_id, nudge.json["seq"])
    # QC is scheduled after the ingest commits; after its own commit it sends the verdict to the
    # van and schedules routing to the reading worklists.
    assert len(callbacks) == 3

    study = Study.objects.get()
    assert (study.order_id, study.qc_outcome) == (order.pk, "pass"), study.qc_results.first().findings
    assert study.routable_at is not None
    result = study.qc_results.get()
    assert result.findings == []
    assert {r["rule"] for r in result.rules_run} >= {
        "required_tags",
        "patient_match",
        "ct_dose",
        "pixel_data",
    }
    assert AuditEntry.objects.filter(action="study.qc", object_id=str(study.pk)).count() == 1


def test_a_defective_study_fails_qc_is_not_routable_and_the_van_is_told(
    orthanc, django_capture_on_commit_callbacks
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from dicom.events import unit_qc_group
    from dicom.synth import Defect, make_study, spec_from_order

    order = _order(orthanc)
    order.refresh_from_db()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(unit_qc_group(order.unit_id), channel)
    spec = spec_from_order(order, slices_per_series=12, defects={Defect.INSTANCE_GAP})
    study_id = send_synthetic(orthanc, make_study(spec))
    _wait_stable(orthanc, study_id)

    with django_capture_on_commit_callbacks(execute=True):
        study_ingest(orthanc_id=study_id)

    study = Study.objects.get()
    assert (study.qc_outcome, study.routable_at) == ("fail", None)
    rules = {f["rule"] for f in study.qc_results.get().findings}
    assert "series_complete" in rules
    event = async_to_sync(layer.receive)(channel)
    assert (event["type"], event["study"], event["outcome"]) == ("qc.result", study.pk, "fail")


def test_de_identified_copies_are_not_ingested_as_clinical_studies(orthanc):
    study_id = _store_dicom(orthanc, _series_for(None, 2))
    _wait_stable(orthanc, study_id)
    copy = orthanc.client.post_json(f"studies/{study_id}/anonymize", {"Synchronous": True})
    _wait_stable(orthanc, copy["ID"])
    result = reconcile_changes()
    assert result.stable_seen == 2
    assert list(Study.objects.values_list("orthanc_id", flat=True)) == [study_id]
