"""A small peer-review world: one pool, a first reader, two colleagues, QC officers; signed reports."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from django.utils import timezone

from core.choices import OrganisationKind
from telerad.choices import ReportStatus, TaskStatus
from telerad.models import Radiologist, ReadingPool, ReadingTask, Report
from telerad.services.reports import report_save_draft, report_sign
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory, StudyFactory
from tests.fleet.factories import UnitFactory

CHEST = {
    "findings": "A 6 mm solid nodule in the right upper lobe.",
    "lung_rads": "3",
    "nodules": True,
    "impression": "Probably benign nodule; follow-up LDCT in 6 months.",
}


def radiologist(group, pool, *, username, first_name="Li", last_name="Wei"):
    user = UserFactory(
        username=username,
        organisation=group,
        roles=["radiologist"],
        first_name=first_name,
        last_name=last_name,
    )
    profile = Radiologist.objects.create(user=user, on_shift=True, licensed_regions=["HB-01"])
    if pool is not None:
        profile.pools.add(pool)
    return user


def make_world(*, percent=0):
    hospital = HospitalFactory(name="Zigui County Hospital")
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP, name="Wuhan Reading Group")
    other_group = OrganisationFactory(kind=OrganisationKind.READING_GROUP, name="Other Reading Group")
    operator = OrganisationFactory(kind=OrganisationKind.OPERATOR, name="Caravan Operator")
    pool = ReadingPool.objects.create(
        reading_group=group, name="CT pool", modalities=["CT"], peer_review_percent=percent
    )
    pool.hospitals.add(hospital)
    # The van that scans the world's studies belongs to ``operator``: its QC officers and admins
    # see them; another operator's (``other_operator_qc``) do not.
    unit = UnitFactory(operator=operator)
    w = SimpleNamespace(hospital=hospital, group=group, pool=pool, operator=operator, unit=unit)
    # Distinctive names: the blinding tests look for them in the reviewer's payload.
    w.reader = radiologist(
        group, pool, username="dr.firstreader", first_name="Yiwen", last_name="Firstreader"
    )
    w.colleague = radiologist(group, pool, username="dr.colleague", first_name="Ming", last_name="Colleague")
    w.second = radiologist(group, pool, username="dr.second", first_name="Hua", last_name="Second")
    w.qc = UserFactory(username="qc", organisation=operator, roles=["qc_officer"])
    w.group_qc = UserFactory(username="group-qc", organisation=group, roles=["qc_officer"])
    w.other_qc = UserFactory(username="other-qc", organisation=other_group, roles=["qc_officer"])
    w.retired_qc = UserFactory(
        username="retired-qc", organisation=operator, roles=["qc_officer"], is_active=False
    )
    w.admin = UserFactory(username="admin", organisation=operator, roles=["admin"])
    other_operator = OrganisationFactory(kind=OrganisationKind.OPERATOR, name="Other Operator")
    w.other_operator_qc = UserFactory(
        username="other-operator-qc", organisation=other_operator, roles=["qc_officer"]
    )
    return w


def claimed_task(w, *, reader=None, eligible=None):
    reader = reader or w.reader
    order = OrderFactory(
        hospital=w.hospital,
        unit=w.unit,
        modality="CT",
        body_part="CHEST",
        requested_procedure="CT CHEST",
    )
    now = timezone.now()
    study = StudyFactory(
        order=order,
        hospital=w.hospital,
        accession_number=order.accession_number,
        patient_id=order.patient_id,
        patient_name=order.patient_name,
        modalities="CT",
        body_part="CHEST",
    )
    task = ReadingTask.objects.create(
        study=study,
        pool=w.pool,
        hospital=w.hospital,
        modality="CT",
        body_part="CHEST",
        priority="ROUTINE",
        priority_rank=2,
        status=TaskStatus.CLAIMED,
        routed_at=now - dt.timedelta(minutes=30),
        deadline=now + dt.timedelta(hours=24),
        claimed_by=reader,
        claimed_at=now - dt.timedelta(minutes=10),
        claim_expires_at=now + dt.timedelta(minutes=20),
    )
    readers = eligible if eligible is not None else [w.reader, w.colleague, w.second]
    task.eligible.add(*[u.radiologist for u in readers])
    return task


def sign(w, task=None, *, reader=None):
    """Draft and sign through the services (so sign-time sampling runs)."""
    reader = reader or w.reader
    task = task or claimed_task(w, reader=reader)
    report_save_draft(actor=reader, task=task, fields=CHEST, free_text="Compared with no prior.")
    return report_sign(actor=reader, task=task)


def final_report(w, *, reader=None, eligible=None):
    """A final report written straight to the database (no sampling): for bulk fixtures."""
    reader = reader or w.reader
    task = claimed_task(w, reader=reader, eligible=eligible)
    ReadingTask.objects.filter(pk=task.pk).update(status=TaskStatus.REPORTED, reported_at=timezone.now())
    return Report.objects.create(
        task=task,
        study=task.study,
        author=reader,
        template="ct_chest",
        status=ReportStatus.FINAL,
        fields=CHEST,
        signed_at=timezone.now(),
        version=2,
    )
