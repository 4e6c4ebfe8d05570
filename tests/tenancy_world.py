"""A world with two tenants of each kind, each holding one of every tenant object.

Two operators (a dispatcher, technologist, QC officer and administrator each, a crewed CT van),
two hospitals (a hospital user each, a contract with "their" operator), two reading groups (a
pool serving "their" hospital, two radiologists and a QC officer each). Tenant "a" is operator A
scanning at hospital A, read by reading group A; tenant "b" the same for B. Every patient-bearing
object carries a distinctive marker (patient name, id, accession number, report text), so a
response can be searched for another tenant's data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.utils import timezone

from core.choices import OrganisationKind
from core.models import User
from dicom.choices import IngestStatus, OrderStatus, QCOutcome
from dicom.models import DeidExport, Order, QCResult, Study
from fleet.models import (
    Incident,
    Plan,
    ServiceContract,
    ServiceRequest,
    Unit,
    Visit,
)
from telerad.choices import CriticalStatus, ReportStatus, TaskStatus
from telerad.models import (
    Addendum,
    CriticalResult,
    Notification,
    PeerReview,
    Radiologist,
    ReadingPool,
    ReadingTask,
    Report,
)
from tests.core.factories import OrganisationFactory, UserFactory
from tests.fleet.factories import MaintenanceWindowFactory, crew_unit, license_unit, qc_pass_today


@dataclass
class Tenant:
    """One tenant of each kind (operator, hospital, reading group) and their objects."""

    key: str
    operator: object
    hospital: object
    group: object
    users: dict[str, User] = field(default_factory=dict)
    objects: SimpleNamespace = field(default_factory=SimpleNamespace)
    # Strings that appear only in this tenant's patient data.
    markers: list[str] = field(default_factory=list)


def _user(key: str, role: str, org) -> User:
    return UserFactory(username=f"{key}-{role}", organisation=org, roles=[role], first_name=key.upper())


def build_tenant(key: str) -> Tenant:
    upper = key.upper()
    today = timezone.localdate()
    now = timezone.now()
    operator = OrganisationFactory(
        kind=OrganisationKind.OPERATOR, name=f"Operator {upper}", region_code="HB-01"
    )
    hospital = OrganisationFactory(
        kind=OrganisationKind.HOSPITAL,
        name=f"Hospital {upper}",
        region_code="HB-01",
        latitude=30.8 + (0.1 if key == "b" else 0),
        longitude=111.0,
    )
    group = OrganisationFactory(kind=OrganisationKind.READING_GROUP, name=f"Reading Group {upper}")
    t = Tenant(key=key, operator=operator, hospital=hospital, group=group)
    for role in ("dispatcher", "technologist", "qc_officer", "admin"):
        t.users[f"operator_{role}"] = _user(f"{key}-op", role, operator)
    t.users["hospital_user"] = _user(f"{key}-hosp", "hospital_user", hospital)
    t.users["radiologist"] = _user(f"{key}-rg", "radiologist", group)
    t.users["reviewer"] = _user(f"{key}-rg2", "radiologist", group)
    t.users["group_qc_officer"] = _user(f"{key}-rg", "qc_officer", group)
    o = t.objects

    o.unit = Unit.objects.create(
        operator=operator,
        name=f"CT Van {upper}",
        modality="CT",
        ae_title=f"VAN{upper}1",
        capacity_per_day=40,
        depot_name="Yichang depot",
        depot_latitude=30.69,
        depot_longitude=111.29,
    )
    license_unit(o.unit)
    # The operator's fleet is its own too: another tenant's pages never name its vans.
    t.markers += [o.unit.name, o.unit.ae_title]
    o.crew = crew_unit(o.unit)
    o.crew.user = t.users["operator_technologist"]
    o.crew.save(update_fields=["user"])
    o.equipment_qc = qc_pass_today(o.unit)
    o.maintenance = MaintenanceWindowFactory(unit=o.unit)
    o.contract = ServiceContract.objects.create(
        operator=operator, hospital=hospital, modality="CT", interval_days=14, starts_on=today
    )
    o.visit = Visit.objects.create(unit=o.unit, hospital=hospital, date=today)
    o.service_request = ServiceRequest.objects.create(
        hospital=hospital,
        operator=operator,
        modality="CT",
        patients=3,
        earliest_date=today + dt.timedelta(days=2),
        latest_date=today + dt.timedelta(days=9),
        created_by=t.users["hospital_user"],
        exams=[
            {
                "procedure": "CT HEAD",
                "body_part": "HEAD",
                "patient_id": f"REQ-{upper}-PID",
                "patient_name": f"REQUESTED^{upper}PATIENT",
                "sex": "F",
                "birth_date": "1950-01-02",
            }
        ],
    )
    o.plan = Plan.objects.create(
        operator=operator, start_date=today, days=3, created_by=t.users["operator_dispatcher"]
    )
    o.incident = Incident.objects.create(
        operator=operator,
        name=f"Flood {upper}",
        latitude=30.7,
        longitude=111.2,
        needs={"CT": 1},
        starts_at=now,
        created_by=t.users["operator_dispatcher"],
    )

    patient_id, patient_name, accession = f"MRN-{upper}-7731", f"SECRET{upper}^PATIENT", f"ACC{upper}0001"
    t.markers += [patient_id, patient_name, accession, f"REQ-{upper}-PID", f"REQUESTED^{upper}PATIENT"]
    o.order = Order.objects.create(
        hospital=hospital,
        unit=o.unit,
        visit=o.visit,
        scheduled_date=today,
        accession_number=accession,
        study_instance_uid=f"1.2.826.0.1.3680043.10.1{ord(key)}.1",
        requested_procedure="CT HEAD W/O CONTRAST",
        modality="CT",
        body_part="HEAD",
        priority="ROUTINE",
        patient_id=patient_id,
        patient_name=patient_name,
        patient_sex="F",
        patient_birth_date=dt.date(1961, 3, 14),
        created_by=t.users["hospital_user"],
        status=OrderStatus.ACQUIRED,
    )
    o.scheduled_order = Order.objects.create(
        hospital=hospital,
        unit=o.unit,
        visit=o.visit,
        scheduled_date=today,
        accession_number=f"ACC{upper}0002",
        study_instance_uid=f"1.2.826.0.1.3680043.10.1{ord(key)}.2",
        requested_procedure="CT CHEST",
        modality="CT",
        body_part="CHEST",
        priority="ROUTINE",
        patient_id=f"MRN-{upper}-8842",
        patient_name=f"OTHER{upper}^PATIENT",
        patient_sex="M",
        patient_birth_date=dt.date(1970, 5, 6),
        created_by=t.users["hospital_user"],
    )
    t.markers += [f"MRN-{upper}-8842", f"OTHER{upper}^PATIENT", f"ACC{upper}0002"]
    o.study = Study.objects.create(
        orthanc_id=f"{key * 8}-00000000-00000000-00000000-00000001",
        study_instance_uid=o.order.study_instance_uid,
        accession_number=accession,
        patient_id=patient_id,
        patient_name=patient_name,
        modalities="CT",
        body_part="HEAD",
        source_aet=o.unit.ae_title,
        order=o.order,
        hospital=hospital,
        unit=o.unit,
        ingest_status=IngestStatus.MATCHED,
        match_method="accession",
        qc_outcome=QCOutcome.PASS,
        number_of_series=1,
        number_of_instances=10,
        routable_at=now,
    )
    o.qc_result = QCResult.objects.create(
        study=o.study,
        outcome=QCOutcome.PASS,
        findings=[],
        rules_run=["required_tags"],
        number_of_instances=10,
    )
    unmatched_id, unmatched_name = f"MRN-{upper}-UNM", f"STRAY{upper}^PATIENT"
    t.markers += [unmatched_id, unmatched_name]
    o.unmatched = Study.objects.create(
        orthanc_id=f"{key * 8}-00000000-00000000-00000000-00000002",
        study_instance_uid=f"1.2.826.0.1.3680043.10.1{ord(key)}.9",
        accession_number="",
        patient_id=unmatched_id,
        patient_name=unmatched_name,
        modalities="CT",
        source_aet=o.unit.ae_title,
        unit=o.unit,
        ingest_status=IngestStatus.UNMATCHED,
    )
    o.deid = DeidExport.objects.create(
        study=o.study, project=f"teaching-{key}", requested_by=t.users["operator_qc_officer"]
    )

    o.pool = ReadingPool.objects.create(reading_group=group, name=f"CT pool {upper}", modalities=["CT"])
    o.pool.hospitals.add(hospital)
    for role in ("radiologist", "reviewer"):
        profile = Radiologist.objects.create(user=t.users[role], on_shift=True, licensed_regions=["HB-01"])
        profile.pools.add(o.pool)
    o.task = ReadingTask.objects.create(
        study=o.study,
        pool=o.pool,
        hospital=hospital,
        modality="CT",
        body_part="HEAD",
        priority="ROUTINE",
        priority_rank=2,
        status=TaskStatus.REPORTED,
        routed_at=now - dt.timedelta(hours=2),
        deadline=now + dt.timedelta(hours=22),
        claimed_by=t.users["radiologist"],
        claimed_at=now - dt.timedelta(hours=1),
        reported_at=now,
    )
    o.task.eligible.add(t.users["radiologist"].radiologist, t.users["reviewer"].radiologist)
    report_text = f"Finding only for tenant {upper}: ZQX{upper}REPORT"
    t.markers.append(f"ZQX{upper}REPORT")
    o.report = Report.objects.create(
        task=o.task,
        study=o.study,
        author=t.users["radiologist"],
        template="ct_head",
        status=ReportStatus.FINAL,
        fields={"findings": report_text, "impression": "Acute bleed."},
        critical=True,
        signed_at=now,
        version=2,
    )
    o.addendum = Addendum.objects.create(
        report=o.report, author=t.users["radiologist"], text="Addendum draft"
    )
    o.critical = CriticalResult.objects.create(
        report=o.report,
        study=o.study,
        hospital=hospital,
        summary=f"Acute bleed ZQX{upper}CRIT",
        status=CriticalStatus.OPEN,
        flagged_by=t.users["radiologist"],
        flagged_at=now,
    )
    t.markers.append(f"ZQX{upper}CRIT")
    o.notification = Notification.objects.create(
        recipient=t.users["hospital_user"],
        kind="critical_result",
        critical_result=o.critical,
        message="Critical",
    )
    o.peer_review = PeerReview.objects.create(
        report=o.report,
        pool=o.pool,
        first_reader=t.users["radiologist"],
        reviewer=t.users["reviewer"],
        reason="random",
    )
    return t


def build_world() -> SimpleNamespace:
    a, b = build_tenant("a"), build_tenant("b")
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    return SimpleNamespace(a=a, b=b, superuser=superuser)
