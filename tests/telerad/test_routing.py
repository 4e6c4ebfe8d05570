from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import AuditEntry, User
from core.services import audit_verify
from dicom.models import Study
from telerad.models import ReadingEvent, ReadingTask
from telerad.services.claims import task_claim
from telerad.services.routing import (
    SUBSPECIALTY_BY_BODY_PART,
    region_covers,
    route_pending_studies,
    study_route,
    task_assign,
)
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory, StudyFactory
from tests.fleet.factories import OperatorFactory
from tests.telerad.factories import (
    RadiologistFactory,
    RadiologistUserFactory,
    ReadingPoolFactory,
    ReadingTaskFactory,
    RoutableStudyFactory,
)

pytestmark = pytest.mark.django_db


def _study(hospital=None, **order):
    hospital = hospital or HospitalFactory(region_code="CN-HB-YC")
    return RoutableStudyFactory(order=OrderFactory(hospital=hospital, **order))


def test_region_codes_cover_themselves_and_their_sub_regions_only():
    assert region_covers("CN-HB", "CN-HB-YC")
    assert region_covers("cn-hb-yc", "CN-HB-YC")
    assert not region_covers("CN-H", "CN-HB-YC")
    assert not region_covers("CN-HB-YC", "CN-HB")
    assert not region_covers("", "CN-HB-YC")


def test_body_parts_map_to_one_subspecialty_each():
    assert SUBSPECIALTY_BY_BODY_PART["HEAD"] == SUBSPECIALTY_BY_BODY_PART["NECK"] == "neuro"
    assert SUBSPECIALTY_BY_BODY_PART["CHEST"] == "chest"
    assert {SUBSPECIALTY_BY_BODY_PART[p] for p in ("ABDOMEN", "PELVIS")} == {"body"}
    assert {
        SUBSPECIALTY_BY_BODY_PART[p] for p in ("SPINE", "CSPINE", "LSPINE", "EXTREMITY", "KNEE", "HAND")
    } == {"msk"}


def test_routing_picks_only_licensed_members_with_the_subspecialty_regardless_of_shift(
    django_capture_on_commit_callbacks,
):
    hospital = HospitalFactory(region_code="CN-HB-YC")
    pool = ReadingPoolFactory(regions=["CN-HB"])
    exact = RadiologistFactory(pools=[pool], subspecialties=["neuro"], licensed_regions=["CN-HB-YC"])
    parent = RadiologistFactory(pools=[pool], subspecialties=["neuro", "chest"], licensed_regions=["CN-HB"])
    off_shift = RadiologistFactory(
        pools=[pool], subspecialties=["neuro"], licensed_regions=["CN-HB"], on_shift=False
    )
    RadiologistFactory(pools=[pool], subspecialties=["neuro"], licensed_regions=["CN-HB-XY"])  # wrong region
    RadiologistFactory(
        pools=[pool], subspecialties=["chest"], licensed_regions=["CN-HB"]
    )  # wrong subspecialty
    RadiologistFactory(subspecialties=["neuro"], licensed_regions=["CN-HB"])  # not a member
    inactive = RadiologistFactory(pools=[pool], subspecialties=["neuro"], licensed_regions=["CN-HB"])
    inactive.user.is_active = False
    inactive.user.save()
    study = _study(hospital, body_part="HEAD", priority="URGENT")
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        task = study_route(study=study, now=now)

    assert task is not None
    assert (task.pool, task.hospital, task.modality, task.body_part) == (pool, hospital, "CT", "HEAD")
    assert (task.subspecialty, task.priority, task.priority_rank, task.status) == (
        "neuro",
        "URGENT",
        1,
        "unclaimed",
    )
    assert set(task.eligible.all()) == {exact, parent, off_shift}
    assert task.escalated_at is None
    (event,) = ReadingEvent.objects.all()
    assert (event.kind, event.pool_id, event.user_id, event.hospital_id, event.task_id) == (
        "study.added",
        pool.pk,
        None,
        None,
        task.pk,
    )
    assert sorted(event.payload["eligible_users"]) == sorted(r.user_id for r in (exact, parent, off_shift))
    assert event.payload["subspecialty_fallback"] is False
    assert event.payload["escalated"] is False
    assert event.payload["accession"] == study.accession_number
    assert "patient_id" not in event.payload and "patient_name" not in event.payload
    assert len(callbacks) == 1  # the pool group send, after commit
    audit = AuditEntry.objects.get(action="study.route")
    assert (audit.object_type, audit.object_id, audit.details_data["task"]) == (
        "dicom.study",
        str(study.pk),
        task.pk,
    )
    assert audit_verify().ok


def test_when_no_licensed_member_has_the_subspecialty_every_licensed_member_is_eligible():
    pool = ReadingPoolFactory(regions=["CN-HB"])
    neuro = RadiologistFactory(pools=[pool], subspecialties=["neuro"], licensed_regions=["CN-HB"])
    msk = RadiologistFactory(pools=[pool], subspecialties=["msk"], licensed_regions=["CN-HB"])
    RadiologistFactory(pools=[pool], subspecialties=["chest"], licensed_regions=["CN-HB-SY"])  # unlicensed

    task = study_route(study=_study(body_part="CHEST"))

    assert set(task.eligible.all()) == {neuro, msk}
    assert task.subspecialty == "chest"
    assert ReadingEvent.objects.get().payload["subspecialty_fallback"] is True
    assert AuditEntry.objects.get(action="study.route").details_data["subspecialty_fallback"] is True


@pytest.mark.parametrize(
    ("priority", "minutes", "rank"), [("STAT", 30, 0), ("URGENT", 120, 1), ("ROUTINE", 600, 2)]
)
def test_deadline_is_routing_time_plus_the_pools_sla_for_the_priority(priority, minutes, rank):
    pool = ReadingPoolFactory(
        regions=["CN-HB"], sla_stat_minutes=30, sla_urgent_minutes=120, sla_routine_minutes=600
    )
    RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"])
    now = timezone.now()

    task = study_route(study=_study(priority=priority), now=now)

    assert (task.routed_at, task.deadline, task.priority_rank) == (
        now,
        now + timedelta(minutes=minutes),
        rank,
    )


def test_routing_is_idempotent_one_task_one_event_one_audit_per_study():
    pool = ReadingPoolFactory(regions=["CN-HB"])
    RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"])
    study = _study()

    first = study_route(study=study)
    second = study_route(study=study)

    assert first.pk == second.pk
    assert ReadingTask.objects.count() == 1
    assert ReadingEvent.objects.count() == 1
    assert AuditEntry.objects.filter(action="study.route").count() == 1


def test_a_study_that_is_not_routable_is_not_routed():
    ReadingPoolFactory(regions=["HB-01"])
    order = OrderFactory()
    study = StudyFactory(order=order, hospital=order.hospital, ingest_status="matched", routable_at=None)

    assert study_route(study=study) is None
    assert ReadingTask.objects.count() == ReadingEvent.objects.count() == 0


def test_no_pool_leaves_the_study_routable_and_unrouted_until_a_pool_serves_it(caplog):
    hospital = HospitalFactory(region_code="CN-GD-01")
    ReadingPoolFactory(regions=["CN-HB"])  # another province
    ReadingPoolFactory(regions=["CN-GD"], modalities=["MR"])  # wrong modality
    ReadingPoolFactory(regions=["CN-GD"], is_active=False)  # inactive
    study = _study(hospital)

    with caplog.at_level("INFO", logger="telerad.services.routing"):
        assert study_route(study=study) is None
    study.refresh_from_db()
    assert study.routable_at is not None
    assert ReadingTask.objects.count() == ReadingEvent.objects.count() == 0
    assert "no active reading pool" in caplog.text
    assert study.patient_id not in caplog.text and study.accession_number not in caplog.text
    assert route_pending_studies() == 0

    pool = ReadingPoolFactory(regions=["CN-GD"])
    RadiologistFactory(pools=[pool], licensed_regions=["CN-GD"])
    assert route_pending_studies() == 1
    assert ReadingTask.objects.get().pool == pool
    assert route_pending_studies() == 0


def test_a_pool_listing_the_hospital_wins_over_one_covering_its_region():
    hospital = HospitalFactory(region_code="CN-HB-YC")
    ReadingPoolFactory(name="A region pool", regions=["CN-HB"])
    ReadingPoolFactory(name="B closer region pool", regions=["CN-HB-YC"])
    listed = ReadingPoolFactory(name="C contract pool", regions=[], hospitals=[hospital])

    assert study_route(study=_study(hospital)).pool == listed


def test_the_most_specific_region_wins_among_region_pools():
    hospital = HospitalFactory(region_code="CN-HB-YC")
    ReadingPoolFactory(name="A province pool", regions=["CN-HB"])
    closer = ReadingPoolFactory(name="B city pool", regions=["CN-HB-YC"])

    assert study_route(study=_study(hospital)).pool == closer


def test_nobody_eligible_on_shift_escalates_to_the_pool_lead():
    lead = RadiologistUserFactory()
    pool = ReadingPoolFactory(regions=["CN-HB"], lead=lead)
    RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"], subspecialties=["neuro"], on_shift=False)
    RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"], subspecialties=["chest"], on_shift=True)
    now = timezone.now()

    task = study_route(study=_study(body_part="HEAD"), now=now)

    assert task.escalated_at == now
    events = list(ReadingEvent.objects.order_by("id"))
    assert [(e.kind, e.pool_id, e.user_id) for e in events] == [
        ("study.added", pool.pk, None),
        ("study.escalated", None, lead.pk),
    ]
    assert events[0].payload["escalated"] is True
    assert events[1].payload["escalation"] == {"reason": "no eligible reader on shift", "action": "assign"}
    assert AuditEntry.objects.filter(action="task.escalate", object_id=str(task.pk)).count() == 1


def test_a_reader_on_shift_means_no_escalation():
    lead = RadiologistUserFactory()
    pool = ReadingPoolFactory(regions=["CN-HB"], lead=lead)
    RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"], on_shift=True)

    task = study_route(study=_study())

    assert task.escalated_at is None
    assert not ReadingEvent.objects.filter(user=lead).exists()


def test_routing_writes_nothing_when_its_transaction_rolls_back():
    pool = ReadingPoolFactory(regions=["CN-HB"])
    RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"])
    study = _study()
    audits = AuditEntry.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        study_route(study=study)
        raise RuntimeError("boom")

    assert ReadingTask.objects.count() == ReadingEvent.objects.count() == 0
    assert AuditEntry.objects.count() == audits


def test_qc_making_a_study_routable_routes_it_after_commit(django_capture_on_commit_callbacks):
    from dicom.services import qc as qc_service

    pool = ReadingPoolFactory()
    RadiologistFactory(pools=[pool])
    order = OrderFactory(priority="STAT")
    study = StudyFactory(
        order=order, hospital=order.hospital, unit=order.unit, ingest_status="matched", number_of_instances=3
    )

    with django_capture_on_commit_callbacks(execute=False) as pending:
        qc_service._store(study, outcome="pass", findings=[], rules_run=[], instances=3)
    assert not ReadingTask.objects.exists()  # nothing before commit

    with django_capture_on_commit_callbacks(execute=True):
        qc_service._store(study, outcome="pass", findings=[], rules_run=[], instances=3)

    task = ReadingTask.objects.get()
    assert (task.study_id, task.pool, task.priority, task.priority_rank) == (study.pk, pool, "STAT", 0)
    assert ReadingEvent.objects.filter(kind="study.added").count() == 1
    assert len(pending) == 2  # the van's QC push and the routing


def test_a_failed_qc_rerun_leaves_the_routed_task_alone(django_capture_on_commit_callbacks):
    from dicom.services import qc as qc_service

    pool = ReadingPoolFactory()
    reader = RadiologistFactory(pools=[pool])
    order = OrderFactory()
    study = StudyFactory(
        order=order, hospital=order.hospital, unit=order.unit, ingest_status="matched", number_of_instances=3
    )
    with django_capture_on_commit_callbacks(execute=True):
        qc_service._store(study, outcome="pass", findings=[], rules_run=[], instances=3)
    task = ReadingTask.objects.get()
    task_claim(actor=reader.user, task=task)

    findings = [
        {"rule": "series_complete", "severity": "fail", "message": "instance 7 missing", "series": "1.2.3"},
        {"rule": "slice_thickness", "severity": "warn", "message": "3 mm > 2.5 mm", "series": "1.2.3"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        qc_service._store(study, outcome="fail", findings=findings, rules_run=[], instances=3)

    study.refresh_from_db()
    task.refresh_from_db()
    assert study.routable_at is None
    assert (task.status, task.claimed_by) == ("claimed", reader.user)
    assert ReadingTask.objects.count() == 1
    # ... but its readers are told, before they sign: one event for the pool and the claimant.
    event = ReadingEvent.objects.get(kind="study.qc_failed")
    assert (event.pool_id, event.user_id, event.task_id) == (pool.pk, reader.user.pk, task.pk)
    assert event.payload["findings"] == findings[:1]
    assert AuditEntry.objects.filter(action="task.qc_failed", object_id=str(task.pk)).count() == 1


def test_a_failed_qc_on_a_study_not_yet_routed_emits_nothing_for_readers():
    from dicom.services import qc as qc_service

    ReadingPoolFactory()
    order = OrderFactory()
    study = StudyFactory(
        order=order, hospital=order.hospital, unit=order.unit, ingest_status="matched", number_of_instances=3
    )
    qc_service._store(study, outcome="fail", findings=[], rules_run=[], instances=3)
    assert not ReadingEvent.objects.exists() and not ReadingTask.objects.exists()


def test_a_pool_lead_assigns_an_eligible_reader_who_alone_may_then_claim():
    lead = RadiologistUserFactory()
    pool = ReadingPoolFactory(lead=lead)
    chosen, other = RadiologistFactory(pools=[pool]), RadiologistFactory(pools=[pool])
    task = ReadingTaskFactory(pool=pool, eligible=[chosen, other])

    task_assign(actor=lead, task=task, radiologist=chosen)

    task.refresh_from_db()
    assert task.assigned_to == chosen
    event = ReadingEvent.objects.get()
    assert (event.kind, event.pool_id, event.payload["assigned"]) == ("study.added", pool.pk, True)
    assert event.payload["assigned_to"]["id"] == chosen.user_id
    assert AuditEntry.objects.filter(action="task.assign").count() == 1
    with pytest.raises(AccessDenied, match="assigned this study to"):
        task_claim(actor=other.user, task=task)
    chosen.on_shift = False  # an assigned reader may claim off shift
    chosen.save()
    assert task_claim(actor=chosen.user, task=task).claimed_by == chosen.user


def test_assignment_is_refused_to_non_leads_and_for_ineligible_readers_and_changes_nothing():
    lead = RadiologistUserFactory()
    pool = ReadingPoolFactory(lead=lead)
    member, outsider = RadiologistFactory(pools=[pool]), RadiologistFactory(pools=[pool])
    task = ReadingTaskFactory(pool=pool, eligible=[member])
    hospital_user = UserFactory(roles=["hospital_user"])

    with pytest.raises(AccessDenied):
        task_assign(actor=member.user, task=task, radiologist=member)
    with pytest.raises(AccessDenied):
        task_assign(actor=hospital_user, task=task, radiologist=member)
    with pytest.raises(InvalidInput, match="not eligible"):
        task_assign(actor=lead, task=task, radiologist=outsider)
    task_claim(actor=member.user, task=task)
    other = RadiologistFactory(pools=[pool])
    task.eligible.add(other)
    events, audits = ReadingEvent.objects.count(), AuditEntry.objects.count()
    with pytest.raises(Conflict, match="Claimed by"):
        task_assign(actor=lead, task=task, radiologist=other)

    task.refresh_from_db()
    assert task.assigned_to is None and task.claimed_by == member.user
    assert (ReadingEvent.objects.count(), AuditEntry.objects.count()) == (events, audits)


def test_an_admin_of_the_studys_operator_may_assign_and_another_operators_may_not():
    pool = ReadingPoolFactory()
    reader = RadiologistFactory(pools=[pool])
    task = ReadingTaskFactory(pool=pool, eligible=[reader])
    admin = UserFactory(roles=["admin"], organisation=task.study.unit.operator)
    elsewhere = UserFactory(roles=["admin"], organisation=OperatorFactory())

    events, audits = ReadingEvent.objects.count(), AuditEntry.objects.count()
    with pytest.raises(AccessDenied):
        task_assign(actor=elsewhere, task=task, radiologist=reader)
    task.refresh_from_db()
    assert task.assigned_to is None
    assert (ReadingEvent.objects.count(), AuditEntry.objects.count()) == (events, audits)

    assert task_assign(actor=admin, task=task, radiologist=reader).assigned_to == reader


def test_studies_without_a_task_are_listed_once_for_the_sweep():
    pool = ReadingPoolFactory()
    RadiologistFactory(pools=[pool])
    studies = [RoutableStudyFactory() for _ in range(3)]
    study_route(study=studies[0])

    assert route_pending_studies() == 2
    assert set(ReadingTask.objects.values_list("study_id", flat=True)) == {s.pk for s in studies}
    assert Study.objects.filter(reading_task__isnull=True, routable_at__isnull=False).count() == 0


def test_demo_has_one_pool_per_reading_group_covering_every_demo_hospital_idempotently():
    from django.core.management import call_command

    from core.choices import OrganisationKind
    from core.models import Organisation
    from telerad.models import ReadingPool
    from telerad.services.routing import pool_for

    call_command("demo")
    call_command("demo")

    pools = list(ReadingPool.objects.order_by("reading_group__name"))
    assert len(pools) == 2
    assert {p.reading_group.name for p in pools} == set(
        Organisation.objects.filter(kind=OrganisationKind.READING_GROUP).values_list("name", flat=True)
    )
    for pool in pools:
        assert pool.modalities == ["CT", "DX", "MR"]
        assert pool.lead is not None and pool.lead.radiologist in pool.readers.all()
        assert set(pool.readers.values_list("user__organisation", flat=True)) == {pool.reading_group_id}
        assert pool.readers.count() == 3
    for hospital in Organisation.objects.filter(kind=OrganisationKind.HOSPITAL):
        for modality in ("CT", "MR", "DX"):
            assert pool_for(hospital=hospital, modality=modality) is not None, hospital.region_code
    assert AuditEntry.objects.filter(action="reading_pool.create").count() == 2


def test_a_demo_head_ct_at_the_demo_hospital_goes_to_the_neuro_reader():
    from django.core.management import call_command

    call_command("demo")
    order = OrderFactory(
        hospital=User.objects.get(username="hospital").organisation,
        body_part="HEAD",
        priority="URGENT",
    )

    task = study_route(study=RoutableStudyFactory(order=order))

    assert [r.user.username for r in task.eligible.all()] == ["dr.zhang"]
    assert task.escalated_at is None


def test_going_off_shift_escalates_what_nobody_on_shift_can_read_once():
    from telerad.services.claims import sla_sweep
    from telerad.services.profiles import radiologist_shift_set

    lead = RadiologistUserFactory()
    pool = ReadingPoolFactory(regions=["CN-HB"], lead=lead)
    neuro = RadiologistFactory(
        pools=[pool], licensed_regions=["CN-HB"], subspecialties=["neuro"], on_shift=True
    )
    chest = RadiologistFactory(
        pools=[pool], licensed_regions=["CN-HB"], subspecialties=["chest"], on_shift=True
    )
    head = study_route(study=_study(body_part="HEAD"))  # only the neuro reader is eligible
    chest_task = study_route(study=_study(body_part="CHEST"))  # only the chest reader
    assert head.escalated_at is None and chest_task.escalated_at is None

    radiologist_shift_set(actor=neuro.user, radiologist=neuro, on_shift=False)

    head.refresh_from_db()
    chest_task.refresh_from_db()
    assert head.escalated_at is not None
    assert chest_task.escalated_at is None  # its reader is still on shift
    escalations = ReadingEvent.objects.filter(kind="study.escalated")
    assert [(e.user_id, e.task_id) for e in escalations] == [(lead.pk, head.pk)]
    assert escalations[0].payload["escalation"]["reason"] == "no eligible reader on shift"
    assert AuditEntry.objects.filter(action="radiologist.shift", object_id=str(neuro.pk)).count() == 1

    # Once only: the sweep, another shift change, a repeated "off" do not escalate it again.
    assert sla_sweep()["escalated"] == 0
    radiologist_shift_set(actor=neuro.user, radiologist=neuro, on_shift=False)
    assert ReadingEvent.objects.filter(kind="study.escalated").count() == 1
    assert AuditEntry.objects.filter(action="radiologist.shift").count() == 1

    # A shift that ends without anyone saying so (profile edited elsewhere) is caught by the sweep.
    chest.on_shift = False
    chest.save(update_fields=["on_shift"])
    assert sla_sweep()["escalated"] == 1
    chest_task.refresh_from_db()
    assert chest_task.escalated_at is not None


def test_claimed_or_assigned_tasks_are_not_escalated_when_shifts_end():
    from telerad.services.escalation import uncovered_tasks

    pool = ReadingPoolFactory(regions=["CN-HB"], lead=RadiologistUserFactory())
    reader = RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"], on_shift=True)
    claimed = study_route(study=_study())
    claimed.status = "claimed"
    claimed.claimed_by = reader.user
    claimed.save()
    assigned = study_route(study=_study())
    assigned.assigned_to = reader
    assigned.save()
    open_task = study_route(study=_study())
    reader.on_shift = False
    reader.save(update_fields=["on_shift"])

    assert list(uncovered_tasks().values_list("pk", flat=True)) == [open_task.pk]


def test_shift_api_sets_the_callers_shift_and_refuses_others(client):
    pool = ReadingPoolFactory(regions=["CN-HB"], lead=RadiologistUserFactory())
    reader = RadiologistFactory(pools=[pool], licensed_regions=["CN-HB"], on_shift=True)
    task = study_route(study=_study())
    client.force_login(reader.user)

    response = client.post("/api/reading/me/shift/", {"on_shift": False}, content_type="application/json")

    assert (response.status_code, response.json()) == (200, {"on_shift": False})
    reader.refresh_from_db()
    task.refresh_from_db()
    assert reader.on_shift is False and task.escalated_at is not None
    bad = client.post("/api/reading/me/shift/", {"on_shift": "maybe"}, content_type="application/json")
    assert bad.status_code == 400 and "on_shift" in bad.json()["errors"]
    client.force_login(UserFactory(roles=["hospital_user"]))
    denied = client.post("/api/reading/me/shift/", {"on_shift": True}, content_type="application/json")
    assert denied.status_code == 403
    reader.refresh_from_db()
    assert reader.on_shift is False
