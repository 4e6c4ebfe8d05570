"""The incidents API and pages: declare (201 + proposal), list, detail, confirm (409 twice), close,
and who may reach them (hospital users 403, other operators 404)."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEntry
from fleet.models import Incident, IncidentUnit, Unit, Visit
from telerad.models import Notification
from tests.fleet.map_factories import OperatorFactory, UnitPositionFactory, dispatcher, hospital_user
from tests.fleet.surge_factories import INCIDENT, build_surge

pytestmark = pytest.mark.django_db


@pytest.fixture
def surge():
    return build_surge()


@pytest.fixture(autouse=True)
def replans(monkeypatch):
    calls = []
    monkeypatch.setattr("fleet.services.surge.request_replan", lambda **kwargs: calls.append(kwargs))
    return calls


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _body(**overrides):
    body = {
        "name": "Landslide at Zigui",
        "latitude": INCIDENT[0],
        "longitude": INCIDENT[1],
        "needs": {"CT": 2},
        "starts_at": timezone.now().isoformat(),
        "days": 2,
    }
    body.update(overrides)
    return body


def _declare(surge):
    response = _client(surge.dispatcher).post("/api/incidents/", _body(), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_declare_returns_the_proposal(surge):
    data = _declare(surge)
    assert data["status"] == "declared"
    assert [c["unit_name"] for c in data["proposal"]["chosen"]] == ["CT F", "CT B"]
    assert len(data["proposal"]["visits"]) == 3
    assert [c["unit_name"] for c in data["ranking_now"][0]["candidates"]][:2] == ["CT F", "CT B"]
    assert data["units"] == []


def test_declare_validation_errors_are_400(surge):
    client = _client(surge.dispatcher)
    assert client.post("/api/incidents/", _body(needs={"CT": 0}), format="json").status_code == 400
    assert client.post("/api/incidents/", _body(needs={"US": 1}), format="json").status_code == 400
    assert client.post("/api/incidents/", _body(latitude=95), format="json").status_code == 400
    assert Incident.objects.count() == 0


def test_list_detail_confirm_close(surge, django_capture_on_commit_callbacks):
    data = _declare(surge)
    client = _client(surge.dispatcher)
    listed = client.get("/api/incidents/").json()
    assert [row["id"] for row in listed] == [data["id"]]
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(f"/api/incidents/{data['id']}/confirm/", {}, format="json")
    assert confirmed.status_code == 200, confirmed.content
    body = confirmed.json()
    assert body["status"] == "dispatched"
    assert [u["unit_name"] for u in body["units"]] == ["CT F", "CT B"]
    assert body["units"][0]["latitude"] == pytest.approx(30.40)
    assert body["ranking_now"] is None
    assert len(body["proposal"]["confirmed"]["cancelled_visits"]) == 3

    # Live positions: the detail shows where the unit is now.
    Unit.objects.get(name="CT F").position.delete()
    UnitPositionFactory(unit=Unit.objects.get(name="CT F"), latitude=30.45, longitude=111.0)
    detail = client.get(f"/api/incidents/{data['id']}/").json()
    assert detail["units"][0]["latitude"] == pytest.approx(30.45)

    before = (
        dict(Visit.objects.values_list("pk", "status")),
        Notification.objects.count(),
        AuditEntry.objects.count(),
        IncidentUnit.objects.count(),
        dict(Unit.objects.values_list("pk", "status")),
    )
    again = client.post(f"/api/incidents/{data['id']}/confirm/", {}, format="json")
    assert again.status_code == 409
    assert (
        dict(Visit.objects.values_list("pk", "status")),
        Notification.objects.count(),
        AuditEntry.objects.count(),
        IncidentUnit.objects.count(),
        dict(Unit.objects.values_list("pk", "status")),
    ) == before

    closed = client.post(f"/api/incidents/{data['id']}/close/")
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert client.post(f"/api/incidents/{data['id']}/close/").status_code == 409


def test_confirm_with_chosen_units_and_finish_current(surge):
    data = _declare(surge)
    b = surge.units["B"].pk
    response = _client(surge.dispatcher).post(
        f"/api/incidents/{data['id']}/confirm/",
        {"units": [b], "finish_current": {str(b): True}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["units"][0]["finishes_current_visit"] is True
    assert IncidentUnit.objects.get().unit_id == b


def test_hospital_users_403_other_operators_404(surge):
    data = _declare(surge)
    hospital = _client(hospital_user(surge.hospitals["1"]))
    assert hospital.get("/api/incidents/").status_code == 403
    assert hospital.post("/api/incidents/", _body(), format="json").status_code == 403
    assert hospital.get(f"/api/incidents/{data['id']}/").status_code == 403
    other = _client(dispatcher(OperatorFactory()))
    assert other.get("/api/incidents/").json() == []
    assert other.get(f"/api/incidents/{data['id']}/").status_code == 404
    assert other.post(f"/api/incidents/{data['id']}/confirm/", {}, format="json").status_code == 404
    assert other.post(f"/api/incidents/{data['id']}/close/").status_code == 404
    assert Incident.objects.get().status == "declared"
    assert IncidentUnit.objects.count() == 0


# --- pages ----------------------------------------------------------------------------------------


def test_pages_render_declare_confirm_close(client, surge):
    client.force_login(surge.dispatcher)
    page = client.get("/fleet/incidents/")
    assert page.status_code == 200
    assert b'id="declare-form"' in page.content
    response = client.post(
        "/fleet/incidents/",
        {
            "name": "Chemical spill",
            "latitude": INCIDENT[0],
            "longitude": INCIDENT[1],
            "starts_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "days": 2,
            "need_CT": 2,
            "need_MR": 0,
            "need_DX": 0,
        },
    )
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/fleet/incidents/{incident.pk}/"
    page = client.get(f"/fleet/incidents/{incident.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="confirm-form"' in html and "CT F" in html and 'id="incident-data"' in html
    assert "incident.js" in html and "leaflet.js" in html
    assert "out of service" in html  # CT D is shown as not offered, with why
    f, b = surge.units["F"].pk, surge.units["B"].pk
    response = client.post(f"/fleet/incidents/{incident.pk}/", {"action": "confirm", "unit": [f, b]})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "dispatched"
    page = client.get(f"/fleet/incidents/{incident.pk}/")
    html = page.content.decode()
    assert 'id="incident-units"' in html and 'id="close-form"' in html and "Hospital 2" in html
    again = client.post(f"/fleet/incidents/{incident.pk}/", {"action": "confirm", "unit": [f]})
    assert again.status_code == 200 and b"data-error" in again.content
    assert IncidentUnit.objects.count() == 2
    assert client.post(f"/fleet/incidents/{incident.pk}/", {"action": "close"}).status_code == 302
    assert Incident.objects.get().status == "closed"


def test_pages_refuse_others(client, surge):
    incident_id = _declare(surge)["id"]
    client.force_login(hospital_user(surge.hospitals["1"]))
    assert client.get("/fleet/incidents/").status_code == 403
    assert client.get(f"/fleet/incidents/{incident_id}/").status_code == 404
    client.force_login(dispatcher(OperatorFactory()))
    assert client.get(f"/fleet/incidents/{incident_id}/").status_code == 404
    assert client.post(f"/fleet/incidents/{incident_id}/", {"action": "close"}).status_code == 404
    assert Incident.objects.get().status == "declared"
