"""The access matrix: every role of one tenant against every endpoint, on another tenant's objects.

Built from the API's own schema (``/api/schema/``), the web URL patterns and the websocket
routes, so an endpoint added later without a rule here fails ``test_every_*_has_a_rule``. The
world (tests/tenancy_world.py) has two tenants of each kind; every user of tenant B (operator
dispatcher, technologist, QC officer and admin; hospital user; two radiologists and a QC
officer of a reading group) is sent to every operation with tenant A's ids, and:

- a read answers 404 (or 403 where the role may never use the endpoint) and never carries one
  of A's patient markers (names, ids, accession numbers, report text);
- a list carries none of A's objects and none of A's markers;
- a write answers 400/403/404 and changes nothing in the database;
- and, so that none of this passes because the ids are wrong, the owning role of tenant A
  reads each of those objects (200) and sees A's rows in each list.

docs/security.md ("Tenancy model") is the rule book this test checks.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.tenancy_world import Tenant, build_world

pytestmark = pytest.mark.django_db

OUTSIDER_ROLES = (
    "operator_dispatcher",
    "operator_technologist",
    "operator_qc_officer",
    "operator_admin",
    "hospital_user",
    "radiologist",
    "reviewer",
    "group_qc_officer",
)
REFUSED = {403, 404}
# Models whose rows a refused write must leave exactly as they were.
SNAPSHOT_APPS = ("core", "dicom", "fleet", "telerad")
SNAPSHOT_SKIP = {"core.auditentry", "core.auditcheck"}


@dataclass(frozen=True)
class Rule:
    """How one operation is tried: the path ids and body from tenant A, and who owns it there."""

    params: Callable[[Tenant], dict[str, Any]] | None = None
    body: Callable[[Tenant], dict[str, Any]] | None = None
    # The role of tenant A that may read it (positive control for GETs).
    owner: str | None = None
    # For lists: the id of A's row that the owner sees and no outsider does.
    listed: Callable[[Tenant], int] | None = None
    # Not tenant data (health, the caller's own profile, sign-in): only the marker check runs.
    own_only: bool = False
    # A create: refusal may also be 400 (the referenced object is not found for the caller).
    create: bool = False
    statuses: frozenset[int] = field(default_factory=lambda: frozenset(REFUSED))


def _o(name: str) -> Callable[[Tenant], dict[str, Any]]:
    return lambda t: {"id": getattr(t.objects, name).pk}


def _today(offset: int = 0) -> str:
    return (timezone.localdate() + dt.timedelta(days=offset)).isoformat()


API_RULES: dict[str, Rule] = {
    # Sign-in and the caller's own things.
    "POST /api/auth/logout/": Rule(own_only=True),
    "POST /api/auth/logoutall/": Rule(own_only=True),
    "POST /api/auth/token/": Rule(own_only=True),
    "GET /api/health/": Rule(own_only=True),
    "GET /api/me/": Rule(own_only=True),
    "POST /api/reading/me/shift/": Rule(own_only=True),
    # The Orthanc plugin's endpoints: a service credential, never a user's.
    "POST /api/dicom/orthanc/nudge/": Rule(
        body=lambda t: {"change": "StableStudy", "orthanc_id": t.objects.study.orthanc_id}, create=True
    ),
    "GET /api/dicom/orthanc/worklist/": Rule(own_only=True),
    # Contracts and coverage.
    "GET /api/contracts/": Rule(owner="operator_admin", listed=lambda t: t.objects.contract.pk),
    "POST /api/contracts/": Rule(
        body=lambda t: {
            "hospital": t.hospital.pk,
            "operator": t.operator.pk,
            "modality": "MR",
            "interval_days": 30,
            "starts_on": _today(),
        },
        create=True,
    ),
    "GET /api/contracts/{id}/": Rule(params=_o("contract"), owner="operator_admin"),
    "PATCH /api/contracts/{id}/": Rule(params=_o("contract"), body=lambda t: {"interval_days": 3}),
    "GET /api/coverage/": Rule(own_only=True),
    "GET /api/coverage/contracts/": Rule(owner="operator_dispatcher", listed=lambda t: t.objects.contract.pk),
    # The fleet register.
    "GET /api/units/": Rule(owner="operator_dispatcher", listed=lambda t: t.objects.unit.pk),
    "GET /api/units/{id}/": Rule(params=_o("unit"), owner="operator_dispatcher"),
    "GET /api/units/{id}/licences/": Rule(params=_o("unit"), owner="operator_dispatcher"),
    "POST /api/units/{id}/licences/": Rule(
        params=_o("unit"),
        body=lambda t: {
            "kind": "radiation_safety",
            "number": "X-1",
            "issuer": "Hubei",
            "expires_on": _today(400),
        },
    ),
    "GET /api/units/{id}/maintenance-windows/": Rule(params=_o("unit"), owner="operator_dispatcher"),
    "POST /api/units/{id}/maintenance-windows/": Rule(
        params=_o("unit"),
        body=lambda t: {
            "starts_at": f"{_today(30)}T08:00:00+08:00",
            "ends_at": f"{_today(31)}T08:00:00+08:00",
            "reason": "sabotage",
        },
    ),
    "GET /api/units/{id}/qc/": Rule(params=_o("unit"), owner="operator_technologist"),
    "POST /api/units/{id}/qc/": Rule(params=_o("unit"), body=lambda t: {"measurements": {"ct_water_hu": 0}}),
    "GET /api/units/{id}/status-changes/": Rule(params=_o("unit"), owner="operator_dispatcher"),
    "POST /api/units/{id}/transition/": Rule(
        params=_o("unit"), body=lambda t: {"to": "maintenance", "reason": "x"}
    ),
    "POST /api/units/{id}/withdraw/": Rule(params=_o("unit"), body=lambda t: {"override_reason": "x"}),
    "GET /api/units/{id}/withdrawals/": Rule(params=_o("unit"), owner="operator_dispatcher"),
    "POST /api/units/{unit_id}/telemetry/": Rule(
        params=lambda t: {"unit_id": t.objects.unit.pk},
        body=lambda t: {"fixes": [{"lat": 30.7, "lon": 111.3, "recorded_at": timezone.now().isoformat()}]},
        statuses=frozenset({401, 403, 404}),
    ),
    "GET /api/crew/{id}/credentials/": Rule(params=_o("crew"), owner="operator_dispatcher"),
    "POST /api/crew/{id}/credentials/": Rule(
        params=_o("crew"), body=lambda t: {"kind": "radiographer_certificate", "expires_on": _today(300)}
    ),
    "GET /api/visits/{id}/crew/": Rule(params=_o("visit"), owner="operator_dispatcher"),
    "PUT /api/visits/{id}/crew/": Rule(params=_o("visit"), body=lambda t: {"crew": []}),
    "POST /api/regions/{region_code}/end-service/": Rule(
        params=lambda t: {"region_code": t.hospital.region_code},
        body=lambda t: {"override_reason": "x"},
        # The region is shared; what is refused is ending another operator's service there.
        create=True,
        statuses=frozenset({200, 400, 403, 404, 409}),
    ),
    "GET /api/fleet/map/": Rule(own_only=True),
    # Plans and incidents.
    "GET /api/plans/": Rule(owner="operator_dispatcher", listed=lambda t: t.objects.plan.pk),
    "POST /api/plans/": Rule(
        body=lambda t: {"start_date": _today(1), "days": 2, "base_plan": t.objects.plan.pk}, create=True
    ),
    "GET /api/plans/{id}/": Rule(params=_o("plan"), owner="operator_dispatcher"),
    "POST /api/plans/{id}/locks/": Rule(
        params=_o("plan"), body=lambda t: {"request_id": "r1", "locked": True}
    ),
    "POST /api/plans/{id}/publish/": Rule(params=_o("plan"), body=lambda t: {}),
    "GET /api/incidents/": Rule(owner="operator_dispatcher", listed=lambda t: t.objects.incident.pk),
    "POST /api/incidents/": Rule(
        body=lambda t: {
            "name": "Quake",
            "latitude": 30.7,
            "longitude": 111.2,
            "needs": {"CT": 1},
            "starts_at": timezone.now().isoformat(),
            "hospital": t.hospital.pk,
        },
        create=True,
        # Declaring an incident at a hospital is the declaring operator's own business.
        statuses=frozenset({201, 400, 403, 404}),
    ),
    "GET /api/incidents/{id}/": Rule(params=_o("incident"), owner="operator_dispatcher"),
    "POST /api/incidents/{id}/close/": Rule(params=_o("incident"), body=lambda t: {}),
    "POST /api/incidents/{id}/confirm/": Rule(params=_o("incident"), body=lambda t: {}),
    # Service requests.
    "GET /api/requests/": Rule(owner="hospital_user", listed=lambda t: t.objects.service_request.pk),
    "POST /api/requests/": Rule(
        body=lambda t: {
            "hospital": t.hospital.pk,
            "operator": t.operator.pk,
            "modality": "CT",
            "patients": 2,
            "earliest_date": _today(3),
            "latest_date": _today(10),
        },
        create=True,
    ),
    "GET /api/requests/{id}/": Rule(params=_o("service_request"), owner="hospital_user"),
    "POST /api/requests/{id}/cancel/": Rule(params=_o("service_request"), body=lambda t: {"reason": "x"}),
    "POST /api/requests/{id}/decline/": Rule(params=_o("service_request"), body=lambda t: {"reason": "x"}),
    "POST /api/requests/{id}/schedule/": Rule(
        params=_o("service_request"), body=lambda t: {"visit": t.objects.visit.pk}
    ),
    "POST /api/requests/{id}/transition/": Rule(
        params=_o("service_request"), body=lambda t: {"to": "declined", "reason": "x"}
    ),
    # Orders.
    "GET /api/dicom/orders/": Rule(owner="hospital_user", listed=lambda t: t.objects.order.pk),
    "POST /api/dicom/orders/": Rule(
        body=lambda t: {
            "hospital": t.hospital.pk,
            "visit": t.objects.visit.pk,
            "unit": t.objects.unit.pk,
            "scheduled_date": _today(),
            "requested_procedure": "CT HEAD",
            "modality": "CT",
            "body_part": "HEAD",
            "patient_id": "INTRUDER-1",
            "patient_name": "INTRUDER^ONE",
            "patient_sex": "M",
            "patient_birth_date": "1970-01-01",
        },
        create=True,
    ),
    "GET /api/dicom/orders/{id}/": Rule(params=_o("order"), owner="operator_dispatcher"),
    "POST /api/dicom/orders/{id}/cancel/": Rule(params=_o("scheduled_order"), body=lambda t: {"reason": "x"}),
    "POST /api/dicom/orders/{id}/start/": Rule(params=_o("scheduled_order"), body=lambda t: {}),
    # Studies: reconciliation, de-identified exports.
    "GET /api/dicom/reconciliation/": Rule(
        owner="operator_qc_officer", listed=lambda t: t.objects.unmatched.pk
    ),
    "POST /api/dicom/reconciliation/{study_id}/link/": Rule(
        params=lambda t: {"study_id": t.objects.unmatched.pk},
        body=lambda t: {"order": t.objects.scheduled_order.pk},
    ),
    "POST /api/dicom/studies/{study_id}/qc-release/": Rule(
        params=lambda t: {"study_id": t.objects.study.pk}, body=lambda t: {"reason": "read it anyway"}
    ),
    "GET /api/dicom/deid-exports/": Rule(owner="operator_qc_officer", listed=lambda t: t.objects.deid.pk),
    "GET /api/dicom/deid-exports/{id}/": Rule(params=_o("deid"), owner="operator_qc_officer"),
    "POST /api/dicom/studies/{study_id}/deid-exports/": Rule(
        params=lambda t: {"study_id": t.objects.study.pk}, body=lambda t: {"project": "stolen"}
    ),
    # Reading.
    "GET /api/reading/worklist/": Rule(own_only=True),
    "POST /api/reading/tasks/{task_id}/assign/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk},
        body=lambda t: {"radiologist": t.users["reviewer"].radiologist.pk},
    ),
    "POST /api/reading/tasks/{task_id}/claim/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, body=lambda t: {}
    ),
    "POST /api/reading/tasks/{task_id}/release/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, body=lambda t: {}
    ),
    "POST /api/reading/tasks/{task_id}/renew/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, body=lambda t: {}
    ),
    "GET /api/reading/tasks/{task_id}/report/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, owner="radiologist"
    ),
    "PUT /api/reading/tasks/{task_id}/report/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, body=lambda t: {"fields": {"findings": "x"}}
    ),
    "POST /api/reading/tasks/{task_id}/report/preliminary/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, body=lambda t: {"fields": {"findings": "x"}}
    ),
    "POST /api/reading/tasks/{task_id}/report/sign/": Rule(
        params=lambda t: {"task_id": t.objects.task.pk}, body=lambda t: {"critical": False}
    ),
    "GET /api/reading/reports/{report_id}/": Rule(
        params=lambda t: {"report_id": t.objects.report.pk}, owner="hospital_user"
    ),
    "GET /api/reading/reports/{report_id}/html/": Rule(
        params=lambda t: {"report_id": t.objects.report.pk}, owner="operator_qc_officer"
    ),
    "GET /api/reading/reports/{report_id}/pdf/": Rule(
        params=lambda t: {"report_id": t.objects.report.pk}, owner="group_qc_officer"
    ),
    "POST /api/reading/reports/{report_id}/addenda/": Rule(
        params=lambda t: {"report_id": t.objects.report.pk}, body=lambda t: {"text": "intrusion"}
    ),
    "POST /api/reading/addenda/{addendum_id}/sign/": Rule(
        params=lambda t: {"addendum_id": t.objects.addendum.pk}, body=lambda t: {}
    ),
    "GET /api/reading/critical-results/": Rule(owner="hospital_user", listed=lambda t: t.objects.critical.pk),
    "POST /api/reading/critical-results/{id}/acknowledge/": Rule(params=_o("critical"), body=lambda t: {}),
    "GET /api/reading/notifications/": Rule(
        owner="hospital_user", listed=lambda t: t.objects.notification.pk
    ),
    "POST /api/reading/notifications/{id}/read/": Rule(params=_o("notification"), body=lambda t: {}),
    "GET /api/reading/peer-reviews/": Rule(owner="reviewer", listed=lambda t: t.objects.peer_review.pk),
    "GET /api/reading/peer-reviews/{id}/": Rule(params=_o("peer_review"), owner="reviewer"),
    "POST /api/reading/peer-reviews/{id}/score/": Rule(params=_o("peer_review"), body=lambda t: {"score": 1}),
    "POST /api/quality/peer-reviews/picks/": Rule(body=lambda t: {"study": t.objects.study.pk}, create=True),
    "GET /api/quality/peer-reviews/rates/": Rule(own_only=True),
}


def _schema_operations() -> set[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_api_operation_has_a_rule():
    operations = _schema_operations()
    assert sorted(operations - API_RULES.keys()) == [], "add a rule to API_RULES for these operations"
    assert sorted(API_RULES.keys() - operations) == [], "these rules name operations the API no longer has"


# --- helpers -------------------------------------------------------------------------------------


def _snapshot() -> dict[str, list[dict]]:
    rows = {}
    for model in apps.get_models():
        label = model._meta.label_lower
        if model._meta.app_label not in SNAPSHOT_APPS or label in SNAPSHOT_SKIP or model._meta.proxy:
            continue
        rows[label] = list(model.objects.order_by("pk").values())
    return rows


def _changed(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after[label]]


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _listed_ids(response) -> set[int]:
    try:
        body = json.loads(_text(response))
    except ValueError:
        return set()
    items = body.get("results", body) if isinstance(body, dict) else body
    if isinstance(items, dict):  # {"results": ...} nested one level (coverage)
        items = [v for value in items.values() if isinstance(value, list) for v in value]
    ids = set()
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            key = "id" if "id" in item else "contract_id"
            if isinstance(item.get(key), int):
                ids.add(item[key])
    return ids


def _url(path: str, params: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]), path)


def _markers_in(text: str, tenant: Tenant) -> list[str]:
    return [marker for marker in tenant.markers if marker in text]


@pytest.fixture
def world():
    return build_world()


# --- the API -------------------------------------------------------------------------------------


def test_owners_reach_their_own_objects(world):
    """The positive control: each rule's ids are right, so refusals below mean something."""
    problems = []
    for operation, rule in API_RULES.items():
        method, path = operation.split(" ", 1)
        if method != "GET" or rule.owner is None:
            continue
        params = rule.params(world.a) if rule.params else {}
        response = _client(world.a.users[rule.owner]).get(_url(path, params))
        if response.status_code != 200:
            problems.append(
                f"{operation} as A's {rule.owner}: {response.status_code} {_text(response)[:200]}"
            )
        elif rule.listed is not None and rule.listed(world.a) not in _listed_ids(response):
            problems.append(f"{operation} as A's {rule.owner}: A's row {rule.listed(world.a)} not listed")
    assert problems == []


@pytest.mark.parametrize("role", OUTSIDER_ROLES)
def test_reads_of_another_tenant_reveal_nothing(world, role):
    user = world.b.users[role]
    client = _client(user)
    problems = []
    for operation, rule in API_RULES.items():
        method, path = operation.split(" ", 1)
        if method != "GET":
            continue
        # B's own ids for lists (query-less), A's ids for objects.
        params = rule.params(world.a) if rule.params else {}
        response = client.get(_url(path, params))
        text = _text(response)
        if response.status_code >= 500 and path != "/api/health/":  # 503: no Orthanc in this test
            problems.append(f"{operation}: {response.status_code}")
        if leaked := _markers_in(text, world.a):
            problems.append(f"{operation}: A's data in the answer: {leaked}")
        if rule.params is not None and not rule.own_only and response.status_code not in rule.statuses:
            problems.append(f"{operation}: {response.status_code}, expected one of {sorted(rule.statuses)}")
        if rule.listed is not None and rule.listed(world.a) in _listed_ids(response):
            problems.append(f"{operation}: A's row {rule.listed(world.a)} listed")
    assert problems == [], f"B's {role}:\n" + "\n".join(problems)


@pytest.mark.parametrize("role", OUTSIDER_ROLES)
def test_writes_to_another_tenant_change_nothing(world, role):
    user = world.b.users[role]
    client = _client(user)
    problems = []
    for operation, rule in API_RULES.items():
        method, path = operation.split(" ", 1)
        if method == "GET" or rule.own_only:
            continue
        params = rule.params(world.a) if rule.params else {}
        body = rule.body(world.a) if rule.body else {}
        before = _snapshot()
        response = getattr(client, method.lower())(_url(path, params), body, format="json")
        after = _snapshot()
        allowed = set(rule.statuses) | ({400} if rule.create else set())
        if response.status_code not in allowed:
            problems.append(f"{operation}: {response.status_code} {_text(response)[:160]}")
        # A create may make the caller's own row (its own contract, incident...): what must not
        # change is any row of tenant A's.
        changed = _changed(before, after)
        if response.status_code in REFUSED | {400, 401, 409} and changed:
            problems.append(f"{operation}: refused ({response.status_code}) but changed {changed}")
        elif changed and _markers_in(json.dumps(after, default=str), world.a) != _markers_in(
            json.dumps(before, default=str), world.a
        ):
            problems.append(f"{operation}: changed A's rows {changed}")
        if leaked := _markers_in(_text(response), world.a):
            problems.append(f"{operation}: A's data in the answer: {leaked}")
    assert problems == [], f"B's {role}:\n" + "\n".join(problems)


# --- web pages -----------------------------------------------------------------------------------

WEB_REFUSED = frozenset({302, 403, 404})


def _web_patterns(resolver=None, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for pattern in (resolver or get_resolver()).url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found |= _web_patterns(pattern, route)
        elif isinstance(pattern, URLPattern):
            found.add(route)
    return {route for route in found if not route.startswith(("api/", "admin/"))}


def _day(t: Tenant) -> dict[str, Any]:
    return {"unit_id": t.objects.unit.pk, "day": timezone.localdate().isoformat()}


# route -> (method, params, owner, query). Lists (no params) get the marker check only; owner
# None means nothing of a tenant's is addressed (the marker check still runs for GETs).
WEB_RULES: dict[str, tuple[str, Callable[[Tenant], dict[str, Any]] | None, str | None, str]] = {
    "": ("GET", None, None, ""),
    "login/": ("GET", None, None, ""),
    "logout/": ("GET", None, None, ""),
    "dicom-web/": ("GET", None, None, ""),
    "^dicom-web/(?P<path>.+)$": ("DICOMWEB", None, None, ""),  # test_dicomweb_* below
    "viewer/": ("GET", None, None, ""),
    "viewer/app-config.js": ("GET", None, None, ""),
    "workspace/van/qc/": ("GET", lambda t: {}, "operator_technologist", "?unit={unit}"),
    "workspace/hospital/orders/": ("GET", None, None, ""),
    "workspace/quality/reconciliation/": ("GET", None, None, ""),
    "workspace/reading/worklist/": ("GET", None, None, ""),
    "workspace/reading/worklist/tasks/<int:task_id>/claim/": (
        "POST",
        lambda t: {"task_id": t.objects.task.pk},
        None,
        "",
    ),
    "workspace/reading/worklist/tasks/<int:task_id>/release/": (
        "POST",
        lambda t: {"task_id": t.objects.task.pk},
        None,
        "",
    ),
    "workspace/reading/tasks/<int:task_id>/report/": (
        "GET",
        lambda t: {"task_id": t.objects.task.pk},
        "radiologist",
        "",
    ),
    "workspace/hospital/studies/": ("GET", None, None, ""),
    "workspace/hospital/studies/critical/<int:result_id>/acknowledge/": (
        "POST",
        lambda t: {"result_id": t.objects.critical.pk},
        None,
        "",
    ),
    "workspace/hospital/studies/<int:study_id>/report/": (
        "GET",
        lambda t: {"study_id": t.objects.study.pk},
        "hospital_user",
        "",
    ),
    "workspace/hospital/studies/<int:study_id>/report.pdf": (
        "GET",
        lambda t: {"study_id": t.objects.study.pk},
        "hospital_user",
        "",
    ),
    "workspace/reading/peer-reviews/": ("GET", None, None, ""),
    "workspace/reading/peer-reviews/<int:pk>/": (
        "GET",
        lambda t: {"pk": t.objects.peer_review.pk},
        "reviewer",
        "",
    ),
    "workspace/hospital/requests/": ("GET", None, None, ""),
    "workspace/hospital/requests/<int:pk>/cancel/": (
        "POST",
        lambda t: {"pk": t.objects.service_request.pk},
        None,
        "",
    ),
    "workspace/hospital/notifications/read/": ("POST", None, None, ""),
    "fleet/map/": ("GET", None, None, ""),
    "fleet/incidents/": ("GET", None, None, ""),
    "fleet/incidents/<int:incident_id>/": (
        "GET",
        lambda t: {"incident_id": t.objects.incident.pk},
        "operator_dispatcher",
        "",
    ),
    "fleet/coverage/": ("GET", None, None, ""),
    # A region is shared by operators; the form ends the caller's own service there.
    "fleet/regions/<str:region_code>/end-service/": ("GET", None, None, ""),
    "fleet/units/<int:unit_id>/withdraw/": ("POST", lambda t: {"unit_id": t.objects.unit.pk}, None, ""),
    "fleet/units/<int:unit_id>/day/<str:day>/": ("GET", _day, "operator_dispatcher", ""),
    "fleet/plans/": ("GET", None, None, ""),
    "fleet/plans/<int:plan_id>/": (
        "GET",
        lambda t: {"plan_id": t.objects.plan.pk},
        "operator_dispatcher",
        "",
    ),
    "fleet/plans/<int:plan_id>/progress/": (
        "GET",
        lambda t: {"plan_id": t.objects.plan.pk},
        "operator_dispatcher",
        "",
    ),
    "fleet/plans/<int:plan_id>/locks/": ("POST", lambda t: {"plan_id": t.objects.plan.pk}, None, ""),
    "fleet/plans/<int:plan_id>/publish/": ("POST", lambda t: {"plan_id": t.objects.plan.pk}, None, ""),
    "fleet/plans/<int:plan_id>/rerun/": ("POST", lambda t: {"plan_id": t.objects.plan.pk}, None, ""),
    "workspace/quality/dashboard/": ("GET", None, None, ""),
    "workspace/quality/audit/": ("GET", None, None, "?patient_id={patient}&viewers_of={patient}"),
    "workspace/dispatch/": ("GET", None, None, ""),
    "workspace/van/": ("GET", None, None, ""),
    "workspace/reading/": ("GET", None, None, ""),
    "workspace/hospital/": ("GET", None, None, ""),
    "workspace/quality/": ("GET", None, None, ""),
    "workspace/admin/": ("GET", None, None, ""),
}


def _web_url(route: str, params: dict[str, Any], query: str, t: Tenant) -> str:
    params = {"region_code": t.hospital.region_code, **params}  # a region is shared by tenants
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(params[m.group(1)]), route)
    return path + query.format(unit=t.objects.unit.pk, patient=t.objects.order.patient_id)


def test_every_web_page_has_a_rule():
    routes = _web_patterns()
    assert sorted(routes - WEB_RULES.keys()) == [], "add a rule to WEB_RULES for these pages"
    assert sorted(WEB_RULES.keys() - routes) == [], "these rules name pages that no longer exist"


def test_owners_reach_their_own_pages(world):
    problems = []
    for route, (method, params, owner, query) in WEB_RULES.items():
        if method != "GET" or owner is None:
            continue
        client = Client()
        client.force_login(world.a.users[owner])
        response = client.get(_web_url(route, params(world.a) if params else {}, query, world.a))
        if response.status_code != 200:
            problems.append(f"{route} as A's {owner}: {response.status_code}")
    assert problems == []


@pytest.mark.parametrize("role", OUTSIDER_ROLES)
def test_pages_of_another_tenant_reveal_and_change_nothing(world, role):
    # Entries in A's audit trail, by A's staff, about A's patient: B's QC pages must not show them.
    _client(world.a.users["hospital_user"]).get(f"/api/reading/reports/{world.a.objects.report.pk}/")
    _client(world.a.users["operator_dispatcher"]).get(f"/api/dicom/orders/{world.a.objects.order.pk}/")
    markers = [*world.a.markers, *(user.username for user in world.a.users.values())]
    client = Client()
    client.force_login(world.b.users[role])
    problems = []
    for route, (method, params, _owner, query) in WEB_RULES.items():
        if method == "DICOMWEB":
            continue
        url = _web_url(route, params(world.a) if params else {}, query, world.a)
        # A write that names none of A's objects acts on the caller's own rows (mark read).
        before = _snapshot() if method == "POST" and params is not None else None
        response = client.get(url) if method == "GET" else client.post(url, {"reason": "x", "locked": "1"})
        if response.status_code >= 500:
            problems.append(f"{method} {url}: {response.status_code}")
        # The search form echoes what was searched for: that is not a leak.
        text = (
            _text(response).replace(world.a.objects.order.patient_id, "") if "?" in url else _text(response)
        )
        if leaked := [marker for marker in markers if marker in text]:
            problems.append(f"{method} {url}: A's data in the page: {leaked}")
        if params is not None and response.status_code not in WEB_REFUSED:
            problems.append(f"{method} {url}: {response.status_code}, expected one of {sorted(WEB_REFUSED)}")
        if before is not None and (changed := _changed(before, _snapshot())):
            problems.append(f"{method} {url}: changed {changed}")
    assert problems == [], f"B's {role}:\n" + "\n".join(problems)


# --- the DICOMweb proxy --------------------------------------------------------------------------


@pytest.mark.parametrize("role", OUTSIDER_ROLES)
def test_dicomweb_of_another_tenant_reveals_nothing(world, role):
    client = Client()
    client.force_login(world.b.users[role])
    a = world.a.objects
    uid = a.study.study_instance_uid
    problems = []
    for path in (
        f"studies/{uid}/metadata",
        f"studies/{uid}/series",
        f"studies/{uid}/series/1.2.3/instances/1.2.3.4/frames/1/rendered",
        f"studies?StudyInstanceUID={uid}",
        f"series?StudyInstanceUID={uid}",
        f"instances?StudyInstanceUID={uid}",
        f"studies?PatientID={a.order.patient_id}",
        f"studies?AccessionNumber={a.order.accession_number}",
    ):
        response = client.get(f"/dicom-web/{path}")
        text = _text(response)
        # Refused before anything is asked of Orthanc (none runs here): a study path is 404, a
        # search among the caller's own studies finds none of A's and answers empty.
        expected = (404,) if path.startswith("studies/") else (200, 204)
        if response.status_code not in expected:
            problems.append(f"{path}: {response.status_code}, expected {expected}")
        elif response.status_code == 200 and json.loads(text or "[]") != []:
            problems.append(f"{path}: 200 with content")
        if uid in text or _markers_in(text, world.a):
            problems.append(f"{path}: A's study in the answer")
    assert problems == [], f"B's {role}:\n" + "\n".join(problems)


# --- websockets ----------------------------------------------------------------------------------

# Every websocket route and how it is walked here (each audience in detail: tests/telerad/
# test_events_ws.py, tests/fleet/test_map_live.py, tests/dicom/test_van_qc.py).
WS_RULES = {
    "ws/ping/": "no tenant data",
    "ws/units/<int:unit_id>/qc/": "walked: test_unit_qc_socket_of_another_tenant_is_refused",
    "ws/reading/": "walked: test_live_events_of_another_tenant_never_arrive",
    "ws/fleet/map/": "walked: test_live_events_of_another_tenant_never_arrive",
}


def test_every_websocket_route_has_a_rule():
    from config.routing import websocket_urlpatterns

    routes = {str(pattern.pattern) for pattern in websocket_urlpatterns}
    assert routes == set(WS_RULES)


@pytest.mark.django_db(transaction=True)
def test_unit_qc_socket_of_another_tenant_is_refused():
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    world = build_world()
    unit = world.a.objects.unit
    cookies = {}
    for key, user in [
        *((f"b:{r}", world.b.users[r]) for r in OUTSIDER_ROLES),
        ("a", world.a.users["operator_technologist"]),
    ]:
        client = Client()
        client.force_login(user)
        cookies[key] = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def connect(cookie: bytes):
        communicator = WebsocketCommunicator(
            application,
            f"/ws/units/{unit.pk}/qc/",
            headers=[(b"origin", b"http://localhost"), (b"cookie", cookie)],
        )
        connected, code = await communicator.connect(timeout=10)
        await communicator.disconnect()
        return connected, code

    results = {key: async_to_sync(connect)(cookie) for key, cookie in cookies.items()}
    assert results.pop("a")[0] is True
    assert results == {f"b:{role}": (False, 4403) for role in OUTSIDER_ROLES}


@pytest.mark.django_db(transaction=True)
def test_live_events_of_another_tenant_never_arrive(settings):
    """Every user of B listens on the reading and fleet map sockets while A's reading pool,
    hospital and operator get events: A's owners hear them, none of B's users does."""
    from asgiref.sync import async_to_sync
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application
    from fleet.live import fleet_map_publish
    from telerad.choices import EventKind
    from telerad.services.events import event_emit

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    world = build_world()
    a = world.a

    def cookie(user) -> bytes:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    listeners = {f"b:{role}": cookie(world.b.users[role]) for role in OUTSIDER_ROLES}
    owners = {
        "/ws/reading/": (cookie(a.users["radiologist"]), cookie(a.users["hospital_user"])),
        "/ws/fleet/map/": (cookie(a.users["operator_dispatcher"]),),
    }

    def emit() -> None:
        event_emit(
            kind=EventKind.STUDY_ADDED,
            payload={"marker": a.markers[0]},
            task=a.objects.task,
            pool=a.objects.pool,
            hospital=a.hospital,
        )
        fleet_map_publish(unit_ids=[a.objects.unit.pk])

    async def scenario():
        sockets: dict[tuple[str, str], WebsocketCommunicator] = {}
        for path in owners:
            for key, value in [*listeners.items(), *((f"a{i}", c) for i, c in enumerate(owners[path]))]:
                communicator = WebsocketCommunicator(
                    application, path, headers=[(b"origin", b"http://localhost"), (b"cookie", value)]
                )
                connected, _ = await communicator.connect(timeout=10)
                if connected:
                    sockets[(path, key)] = communicator
        await database_sync_to_async(emit)()
        heard = {}
        refused: set[tuple[str, str]] = set()
        for (path, key), communicator in sockets.items():
            if key.startswith("a"):
                heard[(path, key)] = bool(await communicator.receive_json_from(timeout=10))
            elif await communicator.receive_nothing(timeout=0.5):
                heard[(path, key)] = False
            else:
                # A refused socket is accepted and closed (so browsers see the code): that is
                # not hearing anything.
                output = await communicator.receive_output(timeout=5)
                heard[(path, key)] = output["type"] != "websocket.close"
                refused.add((path, key))
                continue
            await communicator.disconnect()
        return heard, refused

    heard, refused = async_to_sync(scenario)()
    assert {key: value for key, value in heard.items() if key[1].startswith("a")} == {
        ("/ws/reading/", "a0"): True,
        ("/ws/reading/", "a1"): True,
        ("/ws/fleet/map/", "a0"): True,
    }
    assert [key for key, value in heard.items() if value and not key[1].startswith("a")] == []
    # B's readers and dispatch staff were listening (their sockets were accepted, not refused).
    for listening in [("/ws/reading/", "b:radiologist"), ("/ws/fleet/map/", "b:operator_dispatcher")]:
        assert listening in heard and listening not in refused
