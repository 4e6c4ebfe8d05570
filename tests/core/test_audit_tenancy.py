"""Audit trail review per tenant (issue 14): an operator's QC officers and administrators read the
entries of their own staff and the entries about their own objects (whoever acted), never another
operator's; the search, the patient panel and both exports go through the same scope; a superuser
reads everything.

World: operators A and B (dispatcher, technologist, QC officer, administrator, a van each), two
hospitals, two reading groups (a radiologist and a QC officer each). Both vans scan at hospital 1,
whose clerk opens both operators' studies: the clerk's entries split between A and B by study.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from xml.etree import ElementTree as ET

import pytest
from django.test import Client
from django.utils import timezone

from core.choices import Role
from core.models import AuditEntry
from core.selectors_audit import audit_in_tenancy, audit_search, patient_viewers
from core.services import audit_record
from dicom.study_access import study_audit_open
from telerad.models import CriticalResult, Report
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory, StudyFactory
from tests.fleet.factories import OperatorFactory, UnitFactory, VisitFactory
from tests.telerad.factories import (
    RadiologistUserFactory,
    ReadingGroupFactory,
    ReadingPoolFactory,
    ReadingTaskFactory,
)

pytestmark = pytest.mark.django_db
PAGE = "/workspace/quality/audit/"
ENTRY = re.compile(r'entry="(\d+)"')


def _operator(tag: str, hospital, radiologist, pool) -> SimpleNamespace:
    """Operator ``tag``: its staff, a van, and one patient's order, study, reading task, signed report
    and critical result at ``hospital``, read in ``pool`` by ``radiologist``."""
    org = OperatorFactory(name=f"Operator {tag}")
    staff = {
        role: UserFactory(organisation=org, roles=[role], username=f"{role}-{tag}")
        for role in (Role.DISPATCHER, Role.TECHNOLOGIST, Role.QC_OFFICER, Role.ADMIN)
    }
    unit = UnitFactory(operator=org, name=f"CT Van {tag}", ae_title=f"VAN{tag}")
    order = OrderFactory(unit=unit, hospital=hospital, patient_id=f"P{tag}")
    study = StudyFactory(
        unit=unit, hospital=hospital, order=order, patient_id=f"P{tag}", ingest_status="matched"
    )
    task = ReadingTaskFactory(study=study, pool=pool)
    report = Report.objects.create(
        task=task,
        study=study,
        author=radiologist,
        template="ct-head",
        status="final",
        signed_at=timezone.now(),
    )
    critical = CriticalResult.objects.create(
        report=report,
        study=study,
        hospital=hospital,
        summary="bleed",
        flagged_by=radiologist,
        flagged_at=timezone.now(),
    )
    visit = VisitFactory(unit=unit, hospital=hospital)
    return SimpleNamespace(
        org=org,
        unit=unit,
        order=order,
        study=study,
        task=task,
        report=report,
        critical=critical,
        visit=visit,
        dispatcher=staff[Role.DISPATCHER],
        technologist=staff[Role.TECHNOLOGIST],
        qc=staff[Role.QC_OFFICER],
        admin=staff[Role.ADMIN],
    )


def _entries(op: SimpleNamespace, clerk, radiologist) -> set[int]:
    """What happens around one operator's patient; every entry is in that operator's trail."""
    patient = {"patient_data": True, "patient_id": op.study.patient_id}
    entries = [
        audit_record(actor=op.admin, action="unit.register", obj=op.unit),
        audit_record(actor=op.dispatcher, action="order.view", obj=op.order, **patient),
        audit_record(
            actor=op.dispatcher,
            action="order.list",
            object_type="dicom.order",
            details={"orders": [op.order.pk]},
        ),
        audit_record(actor=op.technologist, action="visit.start", obj=op.visit),
        audit_record(
            actor=None,
            action="orthanc.worklist",
            object_type="dicom.worklist",
            object_id=op.unit.ae_title,
            details={"orders": [op.order.pk]},
            **patient,
        ),
        audit_record(actor=None, action="study.ingest", obj=op.study, **patient),
        audit_record(actor=radiologist, action="task.claim", obj=op.task),
        audit_record(actor=radiologist, action="report.sign", obj=op.report, **patient),
        audit_record(actor=clerk, action="critical_result.acknowledge", obj=op.critical, **patient),
    ]
    ids = {entry.pk for entry in entries}
    # A hospital user and a radiologist open the study the operator's van acquired.
    for user in (clerk, radiologist):
        assert study_audit_open(user=user, study=op.study, via="viewer")
        ids.add(AuditEntry.objects.order_by("-id").values_list("id", flat=True).first())
    return ids


@pytest.fixture
def world():
    h1, h2 = HospitalFactory(name="Hospital 1"), HospitalFactory(name="Hospital 2")
    clerk1 = UserFactory(organisation=h1, roles=[Role.HOSPITAL_USER], username="clerk-1")
    clerk2 = UserFactory(organisation=h2, roles=[Role.HOSPITAL_USER], username="clerk-2")
    g1, g2 = ReadingGroupFactory(), ReadingGroupFactory()
    rad1 = RadiologistUserFactory(organisation=g1, username="rad-1")
    rad2 = RadiologistUserFactory(organisation=g2, username="rad-2")
    group_qc = UserFactory(organisation=g1, roles=[Role.QC_OFFICER], username="group-qc-1")
    UserFactory(organisation=g2, roles=[Role.QC_OFFICER], username="group-qc-2")
    a = _operator("A", h1, rad1, ReadingPoolFactory(reading_group=g1))
    b = _operator("B", h1, rad2, ReadingPoolFactory(reading_group=g2))
    a_ids = _entries(a, clerk1, rad1)
    b_ids = _entries(b, clerk1, rad2)
    # Nobody's but the platform's: a hospital user's list of both operators' orders names no single
    # object, and an entry about another kind of object that happens to share A's study's id.
    neither = {
        audit_record(
            actor=clerk1,
            action="order.list",
            object_type="dicom.order",
            patient_data=True,
            details={"orders": [a.order.pk, b.order.pk]},
        ).pk,
        audit_record(
            actor=clerk2, action="pseudonym.create", object_type="dicom.pseudonym", object_id=a.study.pk
        ).pk,
    }
    return SimpleNamespace(
        a=a, b=b, a_ids=a_ids, b_ids=b_ids, neither=neither, group_qc=group_qc, clerk1=clerk1
    )


def _ids(queryset) -> set[int]:
    return set(queryset.values_list("id", flat=True))


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _own_reviews(user) -> set[int]:
    return _ids(AuditEntry.objects.filter(actor=user))


def test_each_operator_reads_exactly_its_own_trail(world):
    a, b = world.a, world.b
    assert len(world.a_ids) == 11 and len(world.b_ids) == 11
    for reviewer in (a.qc, a.admin):
        assert _ids(audit_search(user=reviewer)) == world.a_ids
    for reviewer in (b.qc, b.admin):
        assert _ids(audit_search(user=reviewer)) == world.b_ids
    superuser = UserFactory(is_superuser=True, organisation=None)
    assert _ids(audit_search(user=superuser)) == world.a_ids | world.b_ids | world.neither
    assert _ids(audit_search()) == world.a_ids | world.b_ids | world.neither  # the command line
    # Filters narrow within the tenancy: the shared clerk's entries split by study.
    clerk = world.clerk1
    assert [e.action for e in audit_search(user=a.qc, actor="clerk-1")] == [
        "study.open",
        "critical_result.acknowledge",
    ]
    assert _ids(audit_search(user=a.qc, patient_id="PB")) == set()
    assert _ids(audit_search(user=a.qc, object_type="dicom.study", object_id=str(b.study.pk))) == set()
    assert _ids(audit_search(user=b.qc, actor=clerk.pk)) == {
        e.pk for e in AuditEntry.objects.filter(actor=clerk, id__in=world.b_ids)
    }
    assert audit_search(user=a.qc, action="study.").count() == 3  # ingest, two opens
    # Signed out, or no organisation: nothing.
    assert audit_in_tenancy(UserFactory(organisation=None)).count() == 0


def test_who_has_seen_a_patient_within_the_tenancy(world):
    a = world.a
    viewers = [row["actor_username"] for row in patient_viewers("PA", user=a.qc)]
    assert sorted(viewers) == ["clerk-1", "dispatcher-A", "rad-1"]
    # The clerk opened B's patient too, and rad-2 read it: none of A's business.
    assert list(patient_viewers("PB", user=a.qc)) == []
    assert sorted(r["actor_username"] for r in patient_viewers("PB", user=world.b.qc)) == [
        "clerk-1",
        "dispatcher-B",
        "rad-2",
    ]


def test_page_search_and_patient_panel_show_only_the_operators_entries(world):
    a = world.a
    client = _client(a.qc)
    html = client.get(PAGE).content.decode()
    shown = {int(pk) for pk in re.findall(r'<tr data-entry="(\d+)"', html)}
    assert shown == world.a_ids | _own_reviews(a.qc)  # its own audit.search is A's too
    assert f"{len(shown)} entries, newest first" in html
    assert "<p data-tenancy>Operator A: entries by your organisation" in html
    assert "rad-2" not in html and "dispatcher-B" not in html and "PB" not in html

    html = client.get(PAGE, {"viewers_of": "PA"}).content.decode()
    assert set(re.findall(r'data-viewer="([^"]+)"', html)) == {"clerk-1", "dispatcher-A", "rad-1"}
    html = client.get(PAGE, {"viewers_of": "PB"}).content.decode()
    assert "0 users accessed data of patient PB" in html and "data-viewer=" not in html

    # An id of B's study in the filters finds nothing.
    html = client.get(
        PAGE, {"object_type": "dicom.study", "object_id": str(world.b.study.pk)}
    ).content.decode()
    assert "0 entries, newest first" in html


@pytest.mark.parametrize("fmt", ["atna", "syslog"])
def test_exports_hold_only_the_operators_entries(world, fmt):
    a = world.a
    response = _client(a.admin).get(PAGE, {"export": fmt})
    body = b"".join(response.streaming_content).decode()
    expected = world.a_ids | _own_reviews(a.admin)  # including this export's own record
    if fmt == "syslog":
        lines = body.splitlines()
        assert {int(pk) for line in lines for pk in ENTRY.findall(line)} == expected
        assert len(lines) == len(expected)
    else:
        messages = list(ET.fromstring(body))
        assert len(messages) == len(expected)
        users = {p.get("UserID") for m in messages for p in m.findall("ActiveParticipant")}
        assert users == {"caravan", "admin-A", "dispatcher-A", "technologist-A", "rad-1", "clerk-1"}
        patients = {
            o.get("ParticipantObjectID")
            for m in messages
            for o in m.findall("ParticipantObjectIdentification")
            if o.get("ParticipantObjectTypeCodeRole") == "1"
        }
        assert patients == {"PA"}
    assert "rad-2" not in body and "dispatcher-B" not in body and ">PB<" not in body


def test_superuser_page_and_export_cover_both_operators(world):
    client = _client(UserFactory(is_superuser=True, organisation=None, username="root"))
    html = client.get(PAGE, {"viewers_of": "PB"}).content.decode()
    assert "<p data-tenancy>Every organisation (platform-wide).</p>" in html
    assert set(re.findall(r'data-viewer="([^"]+)"', html)) == {"clerk-1", "dispatcher-B", "rad-2"}
    lines = b"".join(client.get(PAGE, {"export": "syslog"}).streaming_content).decode().splitlines()
    exported = {int(pk) for line in lines for pk in ENTRY.findall(line)}
    assert exported == set(AuditEntry.objects.values_list("id", flat=True))
    assert world.a_ids | world.b_ids | world.neither <= exported


def test_reading_groups_and_hospitals_stay_refused(world):
    hospital_admin = UserFactory(organisation=world.clerk1.organisation, roles=[Role.ADMIN])
    before = AuditEntry.objects.count()
    for user in (world.group_qc, hospital_admin, world.a.dispatcher):
        client = _client(user)
        assert client.get(PAGE).status_code == 403
        assert client.get(PAGE, {"export": "syslog"}).status_code == 403
        assert client.get(PAGE, {"viewers_of": "PA"}).status_code == 403
    assert AuditEntry.objects.count() == before
