"""The van's QC page and its live websocket feed."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from core.choices import OrganisationKind
from core.models import AuditEntry
from dicom.events import unit_qc_group
from fleet.models import CrewMember
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import OrderFactory, StudyFactory
from tests.fleet.factories import UnitFactory

ORIGIN = (b"origin", b"http://localhost")


def _crew_technologist(unit):
    tech = UserFactory(organisation=unit.operator, roles=["technologist"])
    CrewMember.objects.create(
        operator=unit.operator, full_name=f"Tech {tech.pk}", role="radiographer", unit=unit, user=tech
    )
    return tech


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.django_db
def test_technologist_sees_own_units_studies_with_qc_and_the_view_is_audited():
    unit = UnitFactory()
    tech = _crew_technologist(unit)
    mine = StudyFactory(unit=unit, accession_number="MINE0001", qc_outcome="fail", patient_name="LI^LEI")
    mine.qc_results.create(
        outcome="fail",
        findings=[
            {
                "rule": "series_complete",
                "severity": "fail",
                "message": "instance 7 is missing",
                "series": None,
            }
        ],
        number_of_instances=10,
    )
    StudyFactory(unit=UnitFactory(operator=unit.operator), accession_number="OTHER001")
    client = Client()
    client.force_login(tech)
    page = client.get("/workspace/van/qc/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "MINE0001" in html and "OTHER001" not in html
    assert 'data-qc-outcome="fail"' in html and "instance 7 is missing" in html
    entry = AuditEntry.objects.get(action="unit.qc_view")
    assert (entry.actor_id, entry.object_id, entry.patient_data) == (tech.pk, str(unit.pk), True)


@pytest.mark.django_db
def test_technologist_of_another_unit_is_refused():
    unit = UnitFactory()
    tech = _crew_technologist(UnitFactory(operator=unit.operator))
    client = Client()
    client.force_login(tech)
    assert client.get(f"/workspace/van/qc/?unit={unit.pk}").status_code == 403
    hospital_user = UserFactory(
        organisation=OrganisationFactory(kind=OrganisationKind.HOSPITAL), roles=["hospital_user"]
    )
    client.force_login(hospital_user)
    assert client.get("/workspace/van/qc/").status_code == 403
    assert AuditEntry.objects.filter(action="unit.qc_view").count() == 0


@pytest.mark.django_db(transaction=True)
def test_qc_results_reach_the_units_websocket_and_nobody_else():
    unit = UnitFactory()
    tech = _crew_technologist(unit)
    outsider = _crew_technologist(UnitFactory(operator=unit.operator))

    async def scenario():
        own = WebsocketCommunicator(
            application, f"/ws/units/{unit.pk}/qc/", headers=[ORIGIN, (b"cookie", _cookie_tech)]
        )
        connected, _ = await own.connect(timeout=5)
        assert connected
        other = WebsocketCommunicator(
            application, f"/ws/units/{unit.pk}/qc/", headers=[ORIGIN, (b"cookie", _cookie_out)]
        )
        other_connected, code = await other.connect(timeout=5)
        anonymous = WebsocketCommunicator(application, f"/ws/units/{unit.pk}/qc/", headers=[ORIGIN])
        anon_connected, anon_code = await anonymous.connect(timeout=5)
        await get_channel_layer().group_send(
            unit_qc_group(unit.pk), {"type": "qc.result", "study": 7, "outcome": "warn", "findings": []}
        )
        message = await own.receive_json_from(timeout=5)
        await own.disconnect()
        return message, (other_connected, code), (anon_connected, anon_code)

    _cookie_tech, _cookie_out = _cookie(tech), _cookie(outsider)
    message, other, anonymous = async_to_sync(scenario)()
    assert message == {"event": "qc.result", "study": 7, "outcome": "warn", "findings": []}
    assert other == (False, 4403)
    assert anonymous == (False, 4401)


@pytest.mark.django_db
def test_qc_service_pushes_the_verdict_to_the_unit_after_commit(django_capture_on_commit_callbacks):
    from dicom.services import qc as qc_service

    order = OrderFactory()
    study = StudyFactory(unit=order.unit, order=order, ingest_status="matched", number_of_instances=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = qc_service._store(
            study, outcome="pass", findings=[], rules_run=["required_tags"], instances=3
        )
    study.refresh_from_db()
    assert (result.outcome, study.qc_outcome) == ("pass", "pass")
    assert study.routable_at is not None
    assert len(callbacks) == 2  # the verdict to the van, and routing to the reading worklists
