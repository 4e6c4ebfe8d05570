"""The van QC page shows patient names: each study shown is audited with its patient, once per session."""

import pytest
from django.test import Client

from core.models import AuditEntry
from core.selectors_audit import patient_viewers
from fleet.models import CrewMember
from tests.core.factories import UserFactory
from tests.dicom.factories import StudyFactory
from tests.fleet.factories import UnitFactory

pytestmark = pytest.mark.django_db


def test_each_patient_shown_on_the_van_qc_page_lists_the_technologist_as_a_viewer():
    unit = UnitFactory()
    tech = UserFactory(organisation=unit.operator, roles=["technologist"])
    CrewMember.objects.create(
        operator=unit.operator, full_name="Tech", role="radiographer", unit=unit, user=tech
    )
    first = StudyFactory(unit=unit, patient_id="MRN-VAN-1", patient_name="LI^LEI")
    second = StudyFactory(unit=unit, patient_id="MRN-VAN-2", patient_name="WANG^FANG")
    StudyFactory(unit=UnitFactory(operator=unit.operator), patient_id="MRN-OTHER-VAN")
    client = Client()
    client.force_login(tech)

    assert client.get("/workspace/van/qc/").status_code == 200
    opened = AuditEntry.objects.filter(action="study.open", actor=tech).order_by("object_id")
    assert [(e.object_id, e.patient_id, e.details_data) for e in opened] == [
        (str(first.pk), "MRN-VAN-1", {"via": "van_qc"}),
        (str(second.pk), "MRN-VAN-2", {"via": "van_qc"}),
    ]
    assert [row["actor_username"] for row in patient_viewers("MRN-VAN-1")] == [tech.username]
    assert list(patient_viewers("MRN-OTHER-VAN")) == []

    # The page refreshes itself (htmx): the same viewing session is not audited again per study.
    assert client.get("/workspace/van/qc/", HTTP_HX_REQUEST="true").status_code == 200
    assert AuditEntry.objects.filter(action="study.open", actor=tech).count() == 2
    assert AuditEntry.objects.filter(action="unit.qc_view", actor=tech).count() == 2
