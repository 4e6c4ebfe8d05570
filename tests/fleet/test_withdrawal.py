"""Unit withdrawal: refused with the exact uncovered hospitals until a covering plan exists."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from core.exceptions import Conflict, Unavailable
from core.models import AuditEntry
from fleet.models import Plan, PlanKind, Unit, UnitStatusChange, UnitWithdrawal, Visit
from fleet.services.units import unit_transition
from fleet.services.withdrawal import unit_withdraw
from telerad.models import Notification
from tests.fleet.factories import OperatorFactory, UnitFactory
from tests.fleet.map_factories import HubeiHospitalFactory, VisitFactory, dispatcher, hospital_user
from tests.fleet.request_factories import ServiceContractFactory, ServiceRequestFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def _d(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def whatif_calls(monkeypatch):
    """The lead's what-if planner, stood in for: a queued what-if plan without the units."""
    calls = []

    def fake(*, actor, operator, excluded_units, days=14):
        calls.append({"actor": actor, "operator": operator, "excluded_units": excluded_units, "days": days})
        return Plan.objects.create(
            operator=operator,
            created_by=actor,
            start_date=TODAY,
            days=days,
            kind=PlanKind.WHATIF,
            excluded_units=list(excluded_units),
        )

    monkeypatch.setattr("fleet.services.plans.whatif_request", fake)
    return calls


@pytest.fixture
def world():
    operator = OperatorFactory()
    unit = UnitFactory(operator=operator, modality="CT", name="CT Leaving")
    other = UnitFactory(operator=operator, modality="CT", name="CT Staying")
    north = HubeiHospitalFactory(name="North County Hospital")
    south = HubeiHospitalFactory(name="South County Hospital")
    east = HubeiHospitalFactory(name="East County Hospital")  # covered already
    for hospital in (north, south, east):
        ServiceContractFactory(operator=operator, hospital=hospital, interval_days=14, starts_on=_d(-60))
        VisitFactory(unit=unit, hospital=hospital, date=_d(-5), status="done")
    v_north = VisitFactory(unit=unit, hospital=north, date=_d(2))
    v_south = VisitFactory(unit=unit, hospital=south, date=_d(3))
    VisitFactory(unit=unit, hospital=east, date=_d(4))
    VisitFactory(unit=other, hospital=east, date=_d(6))
    users = {
        "dispatcher": dispatcher(operator),
        "admin": dispatcher(operator, role=Role.ADMIN),
        "tech": dispatcher(operator, role=Role.TECHNOLOGIST),
    }
    return {
        "operator": operator,
        "unit": unit,
        "other": other,
        "north": north,
        "south": south,
        "east": east,
        "v_north": v_north,
        "v_south": v_south,
        **users,
    }


def _uncovered_names(body) -> list[str]:
    return [row["hospital_name"] for row in body["uncovered"]]


def _snapshot(unit):
    return (
        Unit.objects.get(pk=unit.pk).status,
        sorted(Visit.objects.filter(unit=unit).values_list("pk", "status")),
        UnitStatusChange.objects.filter(unit=unit).count(),
    )


def test_refused_with_the_uncovered_list_then_allowed_after_covering_visits(world, whatif_calls):
    unit = world["unit"]
    before = _snapshot(unit)
    response = _client(world["dispatcher"]).post(f"/api/units/{unit.pk}/withdraw/", {}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "withdrawal_refused"
    assert _uncovered_names(body) == ["North County Hospital", "South County Hospital"]
    assert body["uncovered"][0] == {
        "hospital_id": world["north"].pk,
        "hospital_name": "North County Hospital",
        "modality": "CT",
        "visit_date": _d(2).isoformat(),
        "deadline": _d(9).isoformat(),  # last visit 5 days ago + 14
        "why": "booked",
    }
    assert "North County Hospital (CT), South County Hospital (CT)" in body["detail"]
    plan = Plan.objects.get()
    assert (plan.kind, plan.excluded_units) == ("whatif", [unit.pk])
    assert body["whatif_plan"] == plan.pk
    assert whatif_calls == [
        {"actor": world["dispatcher"], "operator": world["operator"], "excluded_units": [unit.pk], "days": 14}
    ]
    refused = UnitWithdrawal.objects.get()
    assert body["withdrawal"] == refused.pk
    assert (refused.outcome, refused.whatif_plan_id, refused.actor) == (
        "refused",
        plan.pk,
        world["dispatcher"],
    )
    assert [row["hospital_id"] for row in refused.uncovered] == [world["north"].pk, world["south"].pk]
    assert _snapshot(unit) == before  # nothing changed
    assert AuditEntry.objects.filter(action="unit.withdraw_refused", object_id=str(unit.pk)).count() == 1
    assert Notification.objects.count() == 0

    # A covering plan is published: the leaving van's visits move to the other van.
    for visit in (world["v_north"], world["v_south"]):
        Visit.objects.filter(pk=visit.pk).update(status="cancelled")
        VisitFactory(unit=world["other"], hospital=visit.hospital, date=visit.date)
    response = _client(world["dispatcher"]).post(f"/api/units/{unit.pk}/withdraw/", {}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["outcome"], body["uncovered"], body["reason"]) == ("withdrawn", [], "")
    assert Unit.objects.get(pk=unit.pk).status == "withdrawn"
    # East's own booking by the leaving van is still there (covered by the other van): cancelled.
    assert list(Visit.objects.filter(unit=unit, date__gte=TODAY).values_list("hospital__name", "status")) == [
        ("North County Hospital", "cancelled"),
        ("South County Hospital", "cancelled"),
        ("East County Hospital", "cancelled"),
    ]
    change = UnitStatusChange.objects.get(unit=unit)
    assert (change.from_status, change.to_status, change.actor) == (
        "available",
        "withdrawn",
        world["dispatcher"],
    )
    assert list(UnitWithdrawal.objects.order_by("id").values_list("outcome", flat=True)) == [
        "refused",
        "withdrawn",
    ]
    assert len(whatif_calls) == 1  # no what-if for a covered withdrawal


def test_admin_override_cancels_visits_resets_requests_and_notifies(world, whatif_calls):
    unit, north, south = world["unit"], world["north"], world["south"]
    north_users = [hospital_user(north), hospital_user(north)]
    south_user = hospital_user(south)
    scheduled = ServiceRequestFactory(
        hospital=north,
        operator=world["operator"],
        status="scheduled",
        visit=world["v_north"],
        created_by=north_users[0],
    )
    planned = ServiceRequestFactory(
        hospital=south,
        operator=world["operator"],
        status="planned",
        visit=world["v_south"],
        created_by=south_user,
    )
    done = ServiceRequestFactory(
        hospital=south,
        operator=world["operator"],
        status="fulfilled",
        visit=world["v_south"],
        created_by=south_user,
    )
    response = _client(world["admin"]).post(
        f"/api/units/{unit.pk}/withdraw/",
        {"override_reason": "  lease ends, accepted by the board "},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outcome"] == "overridden"
    assert body["reason"] == "lease ends, accepted by the board"
    assert [row["hospital_name"] for row in body["uncovered"]] == [
        "North County Hospital",
        "South County Hospital",
    ]
    assert body["whatif_plan"] is None and whatif_calls == []
    assert Unit.objects.get(pk=unit.pk).status == "withdrawn"
    assert Visit.objects.filter(unit=unit, date__gte=TODAY, status="cancelled").count() == 3
    assert Visit.objects.filter(unit=unit, status="done").count() == 3  # the past stays
    for request, status in ((scheduled, "submitted"), (planned, "submitted"), (done, "fulfilled")):
        request.refresh_from_db()
        assert request.status == status
    assert scheduled.visit_id is None and planned.visit_id is None and done.visit_id == world["v_south"].pk
    notices = Notification.objects.filter(kind="visit.cancelled")
    assert notices.count() == 3  # two North users, one South user; East has none
    assert sorted(n.recipient_id for n in notices.filter(recipient__organisation=north)) == sorted(
        u.pk for u in north_users
    )
    assert "CT Leaving" in notices.first().message
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions.count("unit.withdraw") == 1
    assert actions.count("unit.transition") == 1
    assert actions.count("visit.cancel") == 3
    assert actions.count("service_request.unschedule") == 2
    withdrawal = UnitWithdrawal.objects.get()
    assert (withdrawal.outcome, withdrawal.actor) == ("overridden", world["admin"])
    assert (
        UnitStatusChange.objects.get(unit=unit).reason
        == "withdrawn (override): lease ends, accepted by the board"
    )


def test_a_dispatcher_cannot_override(world, whatif_calls):
    unit = world["unit"]
    before = _snapshot(unit)
    response = _client(world["dispatcher"]).post(
        f"/api/units/{unit.pk}/withdraw/", {"override_reason": "just do it"}, format="json"
    )
    assert response.status_code == 403
    assert _snapshot(unit) == before
    assert UnitWithdrawal.objects.count() == 0 and whatif_calls == []


def test_admin_without_a_reason_is_refused_like_anyone(world, whatif_calls):
    response = _client(world["admin"]).post(f"/api/units/{world['unit'].pk}/withdraw/", {}, format="json")
    assert response.status_code == 409
    assert _uncovered_names(response.json()) == ["North County Hospital", "South County Hospital"]


def test_refusal_is_recorded_even_when_no_whatif_plan_can_be_made(world, monkeypatch):
    def down(**kwargs):
        raise Unavailable("planner down")

    monkeypatch.setattr("fleet.services.plans.whatif_request", down)
    withdrawal = unit_withdraw(actor=world["dispatcher"], unit=world["unit"])
    assert (withdrawal.outcome, withdrawal.whatif_plan_id) == ("refused", None)
    assert UnitWithdrawal.objects.filter(outcome="refused").count() == 1
    response = _client(world["dispatcher"]).post(
        f"/api/units/{world['unit'].pk}/withdraw/", {}, format="json"
    )
    assert response.status_code == 409 and response.json()["whatif_plan"] is None


def test_a_withdrawn_unit_cannot_transition_or_be_withdrawn_again(world, whatif_calls):
    unit = world["unit"]
    unit_withdraw(actor=world["admin"], unit=unit, override_reason="sold")
    for to in ("available", "maintenance", "out_of_service", "en_route"):
        with pytest.raises(Conflict):
            unit_transition(unit=unit, to_status=to, actor=world["admin"], reason="try")
    response = _client(world["admin"]).post(
        f"/api/units/{unit.pk}/withdraw/", {"override_reason": "again"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "unit_already_withdrawn")
    assert UnitWithdrawal.objects.count() == 1


@pytest.mark.parametrize("status", ["en_route", "on_site", "scanning"])
def test_a_unit_on_the_road_must_come_back_first(world, whatif_calls, status):
    unit = world["unit"]
    Unit.objects.filter(pk=unit.pk).update(status=status)
    response = _client(world["admin"]).post(
        f"/api/units/{unit.pk}/withdraw/", {"override_reason": "x"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "unit_on_the_road")
    assert Unit.objects.get(pk=unit.pk).status == status
    assert UnitWithdrawal.objects.count() == 0


def test_from_the_workshop_a_covered_unit_is_withdrawn(world, whatif_calls):
    idle = UnitFactory(operator=world["operator"], modality="CT", name="CT Spare", status="out_of_service")
    withdrawal = unit_withdraw(actor=world["dispatcher"], unit=idle)
    assert withdrawal.outcome == "withdrawn"
    assert UnitStatusChange.objects.get(unit=idle).from_status == "out_of_service"


def test_who_may_withdraw(world, whatif_calls):
    unit = world["unit"]
    url = f"/api/units/{unit.pk}/withdraw/"
    assert _client(world["tech"]).post(url, {}, format="json").status_code == 403
    assert _client(hospital_user(world["north"])).post(url, {}, format="json").status_code == 404
    assert _client(dispatcher(OperatorFactory())).post(url, {}, format="json").status_code == 404
    assert APIClient().post(url, {}, format="json").status_code in (401, 403)
    assert UnitWithdrawal.objects.count() == 0


def test_withdrawal_history(world, whatif_calls):
    unit = world["unit"]
    _client(world["dispatcher"]).post(f"/api/units/{unit.pk}/withdraw/", {}, format="json")
    rows = _client(world["dispatcher"]).get(f"/api/units/{unit.pk}/withdrawals/").json()
    assert [(r["outcome"], r["unit_name"]) for r in rows] == [("refused", "CT Leaving")]


# --- the page's form -----------------------------------------------------------------------------


def test_page_form_shows_the_refusal_then_withdraws(client, world, whatif_calls):
    unit = world["unit"]
    client.force_login(world["dispatcher"])
    response = client.post(f"/fleet/units/{unit.pk}/withdraw/")
    assert response.status_code == 409
    html = response.content.decode()
    plan = Plan.objects.get()
    assert "Withdrawal of CT Leaving refused" in html
    assert html.count("data-uncovered=") == 2
    assert "North County Hospital" in html and "South County Hospital" in html
    assert f'href="/fleet/plans/{plan.pk}/"' in html
    assert Unit.objects.get(pk=unit.pk).status == "available"

    client.force_login(world["admin"])
    response = client.post(f"/fleet/units/{unit.pk}/withdraw/", {"override_reason": "end of lease"})
    withdrawal = UnitWithdrawal.objects.get(outcome="overridden")
    assert response.status_code == 302
    assert response["Location"] == f"/fleet/coverage/?withdrawn={withdrawal.pk}"
    page = client.get(response["Location"]).content.decode()
    assert "CT Leaving is withdrawn" in page and "end of lease" in page
    assert f'action="/fleet/units/{unit.pk}/withdraw/"' not in page  # no form for a withdrawn unit


def test_page_form_access(client, world, whatif_calls):
    unit = world["unit"]
    client.force_login(world["dispatcher"])
    assert client.post(f"/fleet/units/{unit.pk}/withdraw/", {"override_reason": "x"}).status_code == 403
    client.force_login(dispatcher(OperatorFactory()))
    assert client.post(f"/fleet/units/{unit.pk}/withdraw/").status_code == 404
    client.force_login(hospital_user(world["north"]))
    assert client.post(f"/fleet/units/{unit.pk}/withdraw/").status_code == 403
    assert UnitWithdrawal.objects.count() == 0


def test_a_second_refusal_reuses_todays_whatif_plan_until_a_plan_is_published(world, whatif_calls):
    client = _client(world["dispatcher"])
    url = f"/api/units/{world['unit'].pk}/withdraw/"
    first = client.post(url, {}, format="json").json()["whatif_plan"]
    assert client.post(url, {}, format="json").json()["whatif_plan"] == first
    assert len(whatif_calls) == 1
    # Another plan of the operator was published since: the what-if is stale, a new one is asked for.
    Plan.objects.create(
        operator=world["operator"], start_date=TODAY, days=7, status="done", published_at=timezone.now()
    )
    third = client.post(url, {}, format="json").json()["whatif_plan"]
    assert third != first and len(whatif_calls) == 2
    assert UnitWithdrawal.objects.filter(outcome="refused").count() == 3
