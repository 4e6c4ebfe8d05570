"""Quality dashboards: every aggregate equals the value worked out by hand on the fixture
(tests/core/dashboard_fixture.py), filters narrow, CSV export, access, a constant query count."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test import Client

from core.quality.acquisition_qc import acquisition_qc
from core.quality.base import percentile_cont
from core.quality.coverage import coverage_gaps
from core.quality.critical import critical_ack
from core.quality.filters import DashboardFilters, FilterError
from core.quality.peer import peer_review
from core.quality.turnaround import turnaround
from core.quality.utilisation import utilisation
from tests.core.dashboard_fixture import D, build_world
from tests.core.factories import OrganisationFactory, UserFactory
from tests.dicom.factories import HospitalFactory
from tests.telerad.factories import RadiologistUserFactory

pytestmark = pytest.mark.django_db
MARCH = DashboardFilters(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 31))
URL = "/workspace/quality/dashboard/"
QUERY = {"start": "2026-03-01", "end": "2026-03-31"}


@pytest.fixture
def world():
    return build_world()


def _filters(world, **kwargs) -> DashboardFilters:
    """March within Fixture Imaging's tenancy (what its QC officers see)."""
    return DashboardFilters(start=MARCH.start, end=MARCH.end, operator_id=world.operator.pk, **kwargs)


def _rows(dashboard, key=None):
    table = dashboard.tables[0] if key is None else next(t for t in dashboard.tables if t.key == key)
    return table.rows


def _qc_user(operator, role="qc_officer"):
    return UserFactory(organisation=operator, roles=[role])


# --- percentile method ---------------------------------------------------------------------------


def test_percentile_is_linear_between_closest_ranks():
    assert percentile_cont([10, 20, 30, 40], 0.5) == 25
    assert percentile_cont([10, 20, 30, 40], 0.9) == pytest.approx(37)
    assert percentile_cont([40, 10, 30], 0.5) == 30
    assert percentile_cont([5], 0.9) == 5
    assert percentile_cont([], 0.5) is None


# --- turnaround ----------------------------------------------------------------------------------


def test_turnaround_by_priority_equals_hand_computed(world):
    rows = _rows(turnaround(_filters(world)))
    # STAT: 30 (in SLA 60), 90 (late), 50 (P2's SLA is 30: late) -> sorted 30, 50, 90:
    # median 50, p90 at position 1.8 = 50 + 0.8 * 40 = 82.
    assert rows[0] == {
        "priority": "STAT",
        "sla_minutes": "30-60",
        "routed": 3,
        "signed": 3,
        "median_minutes": 50.0,
        "p90_minutes": 82.0,
        "within_sla_percent": 33.3,
        "breaches": 2,
        "breaches_signed_late": 2,
        "breaches_open": 0,
    }
    # URGENT: 100 min (SLA 240) and one never signed, long past its deadline.
    assert rows[1] == {
        "priority": "Urgent",
        "sla_minutes": "240",
        "routed": 2,
        "signed": 1,
        "median_minutes": 100.0,
        "p90_minutes": 100.0,
        "within_sla_percent": 100.0,
        "breaches": 1,
        "breaches_signed_late": 0,
        "breaches_open": 1,
    }
    # ROUTINE: 600 min; task 7 (February) is outside the range.
    assert rows[2]["routed"] == 1 and rows[2]["median_minutes"] == 600.0 and rows[2]["breaches"] == 0


def test_turnaround_filters_narrow(world):
    alpha = _rows(turnaround(_filters(world, hospital_id=world.alpha.pk)))
    # Alpha's STAT: 30 and 90 -> median 60, p90 = 30 + 0.9 * 60 = 84.
    assert (alpha[0]["routed"], alpha[0]["median_minutes"], alpha[0]["p90_minutes"]) == (2, 60.0, 84.0)
    assert alpha[1]["routed"] == 1 and alpha[1]["breaches"] == 0
    pool2 = _rows(turnaround(_filters(world, pool_id=world.p2.pk)))
    assert [r["routed"] for r in pool2] == [1, 0, 0]
    assert pool2[0]["sla_minutes"] == "30" and pool2[0]["median_minutes"] == 50.0
    assert pool2[1]["median_minutes"] is None and pool2[1]["within_sla_percent"] is None
    van_b = _rows(turnaround(_filters(world, unit_id=world.van_b.pk)))
    assert [r["routed"] for r in van_b] == [1, 1, 0]
    february = _rows(
        turnaround(
            DashboardFilters(
                start=dt.date(2026, 2, 1), end=dt.date(2026, 2, 28), operator_id=world.operator.pk
            )
        )
    )
    assert [r["routed"] for r in february] == [0, 0, 1] and february[2]["median_minutes"] == 10.0


# --- acquisition QC ------------------------------------------------------------------------------


def test_qc_rates_per_unit_technologist_and_rule(world):
    dash = acquisition_qc(_filters(world))
    # CT Van A: 1, 4, 6 pass, 2 warn, 8 fail (10 pending, 7 in February). MR Van B: 3, 5, 9.
    assert _rows(dash, "qc_units") == [
        {"unit": "CT Van A", "studies": 5, "passed": 3, "warned": 1, "failed": 1,
         "pass_percent": 60.0, "warn_percent": 20.0, "fail_percent": 20.0},
        {"unit": "MR Van B", "studies": 3, "passed": 1, "warned": 1, "failed": 1,
         "pass_percent": 33.3, "warn_percent": 33.3, "fail_percent": 33.3},
    ]  # fmt: skip
    # Chen (technologist) crewed Van A at Alpha on D; the driver does not count; Li (radiographer)
    # crewed Van B at Beta on D; study 9 (Van B at Beta on D+1) had no visit that day.
    techs = {
        r["technologist"]: (r["studies"], r["passed"], r["warned"], r["failed"])
        for r in _rows(dash, "qc_technologists")
    }
    assert techs == {"Chen Tech": (5, 3, 1, 1), "Li Rad": (2, 1, 1, 0), "No crew on record": (1, 0, 0, 1)}
    assert [r["technologist"] for r in _rows(dash, "qc_technologists")][-1] == "No crew on record"
    # Newest QC result per study only (study 8's older "dose" fail is ignored); worst severity.
    assert _rows(dash, "qc_rules") == [
        {"rule": "slice_thickness", "studies_flagged": 2, "warned": 2, "failed": 0, "flagged_percent": 25.0},
        {"rule": "dose", "studies_flagged": 1, "warned": 1, "failed": 0, "flagged_percent": 12.5},
        {"rule": "patient_match", "studies_flagged": 1, "warned": 0, "failed": 1, "flagged_percent": 12.5},
        {"rule": "series_complete", "studies_flagged": 1, "warned": 0, "failed": 1, "flagged_percent": 12.5},
    ]
    assert dash.chart["datasets"][2] == {"label": "Fail", "data": [1, 1]}


def test_qc_filters_narrow(world):
    beta = acquisition_qc(_filters(world, hospital_id=world.beta.pk))
    assert [(r["unit"], r["studies"]) for r in _rows(beta, "qc_units")] == [("MR Van B", 3)]
    one_day = acquisition_qc(
        DashboardFilters(start=D, end=D, unit_id=world.van_b.pk, operator_id=world.operator.pk)
    )
    assert [(r["technologist"], r["studies"]) for r in _rows(one_day, "qc_technologists")] == [("Li Rad", 2)]
    assert [r["rule"] for r in _rows(one_day, "qc_rules")] == ["dose"]
    assert _rows(one_day, "qc_rules")[0]["flagged_percent"] == 50.0


# --- peer review ---------------------------------------------------------------------------------


def test_peer_discrepancy_rates(world):
    rows = _rows(peer_review(_filters(world)))
    assert rows == [
        {"reader": "Ann Reader", "reviews": 2, "score_1": 1, "score_2": 0, "score_3": 1,
         "discrepancy_percent": 50.0, "significant_percent": 50.0},
        {"reader": "Bob Reader", "reviews": 1, "score_1": 0, "score_2": 1, "score_3": 0,
         "discrepancy_percent": 100.0, "significant_percent": 0.0},
        {"reader": "All readers", "reviews": 3, "score_1": 1, "score_2": 1, "score_3": 1,
         "discrepancy_percent": 66.7, "significant_percent": 33.3},
    ]  # fmt: skip
    assert _rows(peer_review(_filters(world, pool_id=world.p2.pk)))[-1]["reviews"] == 0
    feb = DashboardFilters(start=dt.date(2026, 2, 1), end=dt.date(2026, 2, 28), operator_id=world.operator.pk)
    assert _rows(peer_review(feb))[-1]["discrepancy_percent"] is None


# --- utilisation ---------------------------------------------------------------------------------


def test_utilisation_equals_hand_computed(world):
    rows = {r["unit"]: r for r in _rows(utilisation(_filters(world)))}
    # Van A: 31 days minus 20 and 21 March (maintenance) = 29; one worked visit (the cancelled
    # and the planned one do not count as worked; booked exams 5 + 2); 6 studies in March.
    assert rows["CT Van A"] == {
        "unit": "CT Van A", "capacity_per_day": 20, "available_days": 29, "days_on_site": 1,
        "on_site_percent": 3.4, "visits_worked": 1, "exams_booked": 7, "exams_done": 6,
        "exams_per_visit": 6.0, "capacity": 20, "utilisation_percent": 30.0,
    }  # fmt: skip
    assert rows["MR Van B"] == {
        "unit": "MR Van B", "capacity_per_day": 10, "available_days": 31, "days_on_site": 1,
        "on_site_percent": 3.2, "visits_worked": 1, "exams_booked": 3, "exams_done": 3,
        "exams_per_visit": 3.0, "capacity": 10, "utilisation_percent": 30.0,
    }  # fmt: skip
    beta = {r["unit"]: r for r in _rows(utilisation(_filters(world, hospital_id=world.beta.pk)))}
    assert beta["CT Van A"]["exams_done"] == 0 and beta["CT Van A"]["exams_booked"] == 0
    assert list(beta) == ["CT Van A", "MR Van B"]
    only_a = _rows(utilisation(_filters(world, unit_id=world.van_a.pk)))
    assert [r["unit"] for r in only_a] == ["CT Van A"]


# --- coverage ------------------------------------------------------------------------------------


def test_coverage_gaps_on_the_last_day(world):
    rows = _rows(coverage_gaps(_filters(world)))
    # Beta CT never served: due 2026-01-01, 89 days overdue on 31 March; Beta MR last served on
    # D, every 7 days: due 17 March, 14 days overdue. Alpha CT is due on 9 April: not listed.
    assert [(r["hospital"], r["modality"], r["due_on"], r["days_overdue"]) for r in rows] == [
        ("Beta Hospital", "CT", "2026-01-01", 89),
        ("Beta Hospital", "MR", "2026-03-17", 14),
    ]
    assert rows[1]["last_visit"] == "2026-03-10" and rows[0]["last_visit"] is None
    assert _rows(coverage_gaps(_filters(world, hospital_id=world.alpha.pk))) == []
    assert (
        len(_rows(coverage_gaps(DashboardFilters(start=D, end=D, operator_id=world.operator.pk)))) == 1
    )  # only Beta CT on D


# --- critical results ----------------------------------------------------------------------------


def test_critical_acknowledgement_times(world):
    rows = _rows(critical_ack(_filters(world)))
    # Alpha: 20 and 50 minutes -> median 35, p90 = 20 + 0.9 * 30 = 47, longest 50. Beta: open.
    assert rows == [
        {"hospital": "Alpha Hospital", "flagged": 2, "acknowledged": 2, "open": 0,
         "median_minutes": 35.0, "p90_minutes": 47.0, "max_minutes": 50.0},
        {"hospital": "Beta Hospital", "flagged": 1, "acknowledged": 0, "open": 1,
         "median_minutes": None, "p90_minutes": None, "max_minutes": None},
        {"hospital": "All hospitals", "flagged": 3, "acknowledged": 2, "open": 1,
         "median_minutes": 35.0, "p90_minutes": 47.0, "max_minutes": 50.0},
    ]  # fmt: skip
    pool2 = _rows(critical_ack(_filters(world, pool_id=world.p2.pk)))
    assert [(r["hospital"], r["flagged"]) for r in pool2] == [("Beta Hospital", 1), ("All hospitals", 1)]
    van_a = _rows(critical_ack(_filters(world, unit_id=world.van_a.pk)))
    assert van_a[-1]["flagged"] == 2


# --- filters -------------------------------------------------------------------------------------


def test_filters_default_to_the_last_30_days_and_refuse_bad_input():
    today = dt.date(2026, 3, 31)
    assert DashboardFilters.from_query({}, today=today) == DashboardFilters(
        start=dt.date(2026, 3, 2), end=today
    )
    parsed = DashboardFilters.from_query(
        {"start": "2026-03-01", "end": "2026-03-05", "hospital": "7", "pool": ""}
    )
    assert (parsed.hospital_id, parsed.unit_id, parsed.pool_id, parsed.days) == (7, None, None, 5)
    for params, message in (
        ({"start": "yesterday"}, "start: 'yesterday' is not a date (YYYY-MM-DD)"),
        ({"start": "2026-03-05", "end": "2026-03-01"}, "start (2026-03-05) is after end (2026-03-01)"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "The date range is 732 days; at most 366 are allowed"),
        ({"unit": "-3"}, "unit: '-3' is not an id"),
        ({"pool": "abc"}, "pool: 'abc' is not an id"),
    ):
        with pytest.raises(FilterError) as caught:
            DashboardFilters.from_query(params, today=today)
        assert caught.value.message == message


# --- the page ------------------------------------------------------------------------------------


def test_page_shows_every_dashboard_with_chart_data(world, client: Client):
    client.force_login(_qc_user(world.operator))
    response = client.get(URL, QUERY)
    assert response.status_code == 200
    html = response.content.decode()
    for key in ("turnaround", "qc", "peer", "utilisation", "coverage", "critical"):
        assert f'data-chart="chart-{key}"' in html and f'id="chart-{key}"' in html
    assert "vendor/chart.js/chart.umd.min.js" in html and "<script>" not in html  # no inline JS
    assert "?start=2026-03-01&amp;end=2026-03-31&amp;export=qc_rules" in html
    assert [d.key for d in response.context["dashboards"]] == [
        "turnaround",
        "qc",
        "peer",
        "utilisation",
        "coverage",
        "critical",
    ]


def test_page_refuses_bad_filters_with_400(world, client: Client):
    client.force_login(_qc_user(world.operator))
    response = client.get(URL, {"start": "2026-13-01"})
    assert response.status_code == 400
    assert "start: &#x27;2026-13-01&#x27; is not a date (YYYY-MM-DD)" in response.content.decode()
    unknown = client.get(URL, {**QUERY, "hospital": "999999"})
    assert unknown.status_code == 400 and "there is no hospital with id 999999" in unknown.content.decode()
    bad_export = client.get(URL, {**QUERY, "export": "secrets"})
    assert bad_export.status_code == 400
    assert bad_export.content.decode().startswith("export: no table 'secrets'; one of turnaround, qc_units")


def test_csv_export_of_a_table(world, client: Client):
    client.force_login(_qc_user(world.operator, role="admin"))
    response = client.get(URL, {**QUERY, "hospital": str(world.alpha.pk), "export": "turnaround"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="turnaround_2026-03-01_2026-03-31.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["Priority", "SLA (min)", "Routed", "Signed", "Median TAT (min)"]
    assert rows[1] == ["STAT", "30-60", "2", "2", "60.0", "84.0", "50.0", "1", "1", "0"]
    assert rows[2] == ["Urgent", "240", "1", "1", "100.0", "100.0", "100.0", "0", "0", "0"]
    assert rows[3] == ["Routine", "1440", "1", "1", "600.0", "600.0", "100.0", "0", "0", "0"]
    rules = client.get(URL, {**QUERY, "export": "qc_rules"})
    assert rules.content.decode().splitlines()[1] == "slice_thickness,2,2,0,25.0"
    crit = list(csv.reader(io.StringIO(client.get(URL, {**QUERY, "export": "critical"}).content.decode())))
    assert crit[2] == ["Beta Hospital", "1", "0", "1", "", "", ""]


def test_only_operator_qc_officers_and_admins_may_enter(world, client: Client):
    assert client.get(URL).status_code == 302  # anonymous: to the login page
    for user in (
        RadiologistUserFactory(),
        UserFactory(organisation=world.alpha, roles=["hospital_user"]),
        UserFactory(organisation=world.operator, roles=["dispatcher"]),
        # A reading group's QC officer would see other groups' readers: refused.
        UserFactory(organisation=OrganisationFactory(kind="reading_group"), roles=["qc_officer"]),
    ):
        client.force_login(user)
        assert client.get(URL).status_code == 403
        assert client.get(URL, {"export": "peer"}).status_code == 403
    client.force_login(_qc_user(world.operator, role="admin"))
    assert client.get(URL).status_code == 200


def test_page_query_count_is_constant(world, client: Client, django_assert_num_queries):
    client.force_login(_qc_user(world.operator))
    with django_assert_num_queries(_page_queries()):
        assert client.get(URL, QUERY).status_code == 200
    # Twice the data (another month of the same world shape) and more hospitals: same count.
    build_more(world)
    with django_assert_num_queries(_page_queries()):
        assert client.get(URL, QUERY).status_code == 200


def build_more(world) -> None:
    from tests.core.dashboard_fixture import _study, _task, at

    for n in range(20, 30):
        hospital = HospitalFactory()
        _task(
            world,
            n,
            priority="URGENT",
            unit=world.van_a,
            hospital=hospital,
            pool=world.p1,
            routed_at=at(D, 12),
            signed_after=n,
        )
        _study(world, 100 + n, world.van_b, hospital, D, "warn")


# Session, user, its roles, its organisation; the three filter selects; then per dashboard:
# turnaround 3 (2 on PostgreSQL: percentiles in the counts' pass), QC 4, peer 1, utilisation 4,
# coverage 1, critical 3.
def _page_queries() -> int:
    turnaround = 2 if connection.vendor == "postgresql" else 3
    return 4 + 3 + turnaround + 4 + 1 + 4 + 1 + 3


def test_page_with_no_data_renders_empty_tables(client: Client):
    from tests.fleet.factories import OperatorFactory

    operator = OperatorFactory()
    client.force_login(_qc_user(operator))
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["filters"] == DashboardFilters.default().for_operator(operator.pk)
    # Turnaround always lists the three priorities; peer and critical keep their total row.
    assert response.content.decode().count("Nothing in this range.") == 5


# --- tenancy: each operator sees its own work, a superuser the platform's ---------------------------


def _other(world, **kwargs) -> DashboardFilters:
    return DashboardFilters(start=MARCH.start, end=MARCH.end, operator_id=world.other.pk, **kwargs)


def test_the_other_operator_sees_exactly_its_own_numbers(world):
    turn = _rows(turnaround(_other(world)))
    # STAT 5 min in P1; routine 20 min in P3; its pools' SLAs are P1's and P3's (STAT 15).
    assert [
        (r["priority"], r["sla_minutes"], r["routed"], r["signed"], r["median_minutes"]) for r in turn
    ] == [
        ("STAT", "15-60", 1, 1, 5.0),
        ("Urgent", "240", 0, 0, None),
        ("Routine", "1440", 1, 1, 20.0),
    ]
    qc = acquisition_qc(_other(world))
    assert _rows(qc, "qc_units") == [
        {"unit": "CT Van Z", "studies": 3, "passed": 2, "warned": 0, "failed": 1,
         "pass_percent": 66.7, "warn_percent": 0.0, "fail_percent": 33.3},
    ]  # fmt: skip
    techs = {r["technologist"]: r["studies"] for r in _rows(qc, "qc_technologists")}
    assert techs == {"Zed Tech": 2, "No crew on record": 1}  # 51 at Gamma: no visit
    assert [(r["rule"], r["failed"]) for r in _rows(qc, "qc_rules")] == [("contrast_timing", 1)]
    assert [(r["reader"], r["reviews"], r["score_3"]) for r in _rows(peer_review(_other(world)))] == [
        ("Cy Reader", 1, 1),
        ("All readers", 1, 1),
    ]
    assert _rows(utilisation(_other(world))) == [
        {"unit": "CT Van Z", "capacity_per_day": 8, "available_days": 30, "days_on_site": 1,
         "on_site_percent": 3.3, "visits_worked": 1, "exams_booked": 9, "exams_done": 3,
         "exams_per_visit": 3.0, "capacity": 8, "utilisation_percent": 37.5},
    ]  # fmt: skip
    assert [(r["hospital"], r["due_on"], r["days_overdue"]) for r in _rows(coverage_gaps(_other(world)))] == [
        ("Gamma Hospital", "2026-01-01", 89),
        ("Alpha Hospital", "2026-03-17", 14),
    ]
    crit = _rows(critical_ack(_other(world)))
    assert [(r["hospital"], r["flagged"], r["acknowledged"], r["median_minutes"]) for r in crit] == [
        ("Alpha Hospital", 1, 1, 5.0),
        ("All hospitals", 1, 1, 5.0),
    ]


def test_filter_ids_of_another_tenant_find_nothing(world):
    # Called directly (past the view's check), the other operator's van and hospital give empty results.
    van_z = _filters(world, unit_id=world.van_z.pk)
    assert [r["routed"] for r in _rows(turnaround(van_z))] == [0, 0, 0]
    assert _rows(acquisition_qc(van_z), "qc_units") == []
    assert _rows(peer_review(van_z))[-1]["reviews"] == 0
    assert _rows(utilisation(van_z)) == []
    assert _rows(critical_ack(van_z))[-1]["flagged"] == 0
    gamma = _filters(world, hospital_id=world.gamma.pk)
    assert _rows(coverage_gaps(gamma)) == []
    assert _rows(acquisition_qc(gamma), "qc_units") == []
    assert [r["routed"] for r in _rows(turnaround(_filters(world, pool_id=world.p3.pk)))] == [0, 0, 0]
    assert _rows(turnaround(_filters(world, pool_id=world.p3.pk)))[0]["sla_minutes"] == ""


def test_platform_wide_filters_add_both_operators(world):
    stat = _rows(turnaround(MARCH))[0]
    # 5, 30, 50, 90 -> median 40, p90 at 2.7 = 50 + 0.7 * 40 = 78; 5 and 30 within SLA.
    assert (stat["sla_minutes"], stat["routed"], stat["median_minutes"], stat["p90_minutes"]) == (
        "15-60",
        4,
        40.0,
        78.0,
    )
    assert stat["within_sla_percent"] == 50.0
    units = [(r["unit"], r["studies"]) for r in _rows(acquisition_qc(MARCH), "qc_units")]
    assert units == [("CT Van A", 5), ("CT Van Z", 3), ("MR Van B", 3)]
    assert _rows(peer_review(MARCH))[-1]["reviews"] == 4
    assert [r["unit"] for r in _rows(utilisation(MARCH))] == ["CT Van A", "CT Van Z", "MR Van B"]
    assert [(r["hospital"], r["modality"], r["days_overdue"]) for r in _rows(coverage_gaps(MARCH))] == [
        ("Beta Hospital", "CT", 89),
        ("Gamma Hospital", "CT", 89),
        ("Alpha Hospital", "CT", 14),
        ("Beta Hospital", "MR", 14),
    ]
    assert [(r["hospital"], r["flagged"]) for r in _rows(critical_ack(MARCH))] == [
        ("Alpha Hospital", 3),
        ("Beta Hospital", 1),
        ("All hospitals", 4),
    ]


OTHER_NAMES = ("CT Van Z", "Gamma Hospital", "Pool 3", "Cy Reader", "Zed Tech", "contrast_timing")
TABLES = (
    "turnaround",
    "qc_units",
    "qc_technologists",
    "qc_rules",
    "peer",
    "utilisation",
    "coverage",
    "critical",
)


def _csv(client: Client, key: str, **params) -> list[list[str]]:
    response = client.get(URL, {**QUERY, **params, "export": key})
    assert response.status_code == 200, response.content
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_page_and_every_csv_show_only_the_operators_own_data(world, client: Client):
    for role in ("qc_officer", "admin"):
        client.force_login(_qc_user(world.operator, role=role))
        response = client.get(URL, QUERY)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<p data-tenancy>Fixture Imaging: your units" in html
        for name in OTHER_NAMES:
            assert name not in html, name
        selects = {s["name"]: [label for _, label, _ in s["options"]] for s in response.context["selects"]}
        assert selects == {
            "hospital": ["Alpha Hospital", "Beta Hospital"],
            "unit": ["CT Van A", "MR Van B"],
            "pool": ["Pool 1", "Pool 2"],
        }
        scoped = _filters(world)
        for key in TABLES:
            rows = _csv(client, key)
            text = "\n".join(",".join(row) for row in rows)
            for name in OTHER_NAMES:
                assert name not in text, (key, name)
            dashboard = next(d for d in response.context["dashboards"] if any(t.key == key for t in d.tables))
            table = next(t for t in dashboard.tables if t.key == key)
            assert len(rows) == 1 + len(table.rows), key
        assert _csv(client, "critical")[1:] == [
            ["Alpha Hospital", "2", "2", "0", "35.0", "47.0", "50.0"],
            ["Beta Hospital", "1", "0", "1", "", "", ""],
            ["All hospitals", "3", "2", "1", "35.0", "47.0", "50.0"],
        ]
        assert [row[:2] for row in _csv(client, "qc_units")[1:]] == [["CT Van A", "5"], ["MR Van B", "3"]]
        assert _csv(client, "peer")[-1][:2] == ["All readers", "3"]
        assert [row[0] for row in _csv(client, "utilisation")[1:]] == ["CT Van A", "MR Van B"]
        assert [row[:2] for row in _csv(client, "coverage")[1:]] == [
            ["Beta Hospital", "CT"],
            ["Beta Hospital", "MR"],
        ]
        assert _csv(client, "turnaround")[1][:4] == ["STAT", "30-60", "3", "3"]
        assert response.context["filters"] == scoped.for_operator(world.operator.pk)


def test_the_other_operators_ids_in_the_query_string_are_refused(world, client: Client):
    client.force_login(_qc_user(world.operator))
    for key, pk in (("unit", world.van_z.pk), ("hospital", world.gamma.pk), ("pool", world.p3.pk)):
        page = client.get(URL, {**QUERY, key: str(pk)})
        assert page.status_code == 400
        assert f"{key}: there is no {key} with id {pk}" in page.content.decode()
        for table in TABLES:
            export = client.get(URL, {**QUERY, key: str(pk), "export": table})
            assert (
                export.status_code == 400
                and export.content.decode() == f"{key}: there is no {key} with id {pk}"
            )
    # A hospital both serve answers with this operator's share only.
    alpha = _csv(client, "critical", hospital=str(world.alpha.pk))
    assert alpha[1:] == [
        ["Alpha Hospital", "2", "2", "0", "35.0", "47.0", "50.0"],
        ["All hospitals", "2", "2", "0", "35.0", "47.0", "50.0"],
    ]
    # The tenancy is never read from the query string.
    assert client.get(URL, {**QUERY, "operator_id": str(world.other.pk)}).context["filters"].operator_id == (
        world.operator.pk
    )


def test_the_other_operators_staff_see_their_side(world, client: Client):
    client.force_login(_qc_user(world.other))
    response = client.get(URL, QUERY)
    assert response.status_code == 200
    selects = {s["name"]: [label for _, label, _ in s["options"]] for s in response.context["selects"]}
    assert selects == {
        "hospital": ["Alpha Hospital", "Gamma Hospital"],
        "unit": ["CT Van Z"],
        "pool": ["Pool 1", "Pool 3"],
    }
    assert [row[:2] for row in _csv(client, "qc_units")[1:]] == [["CT Van Z", "3"]]
    assert client.get(URL, {**QUERY, "unit": str(world.van_a.pk)}).status_code == 400
    assert client.get(URL, {**QUERY, "hospital": str(world.beta.pk)}).status_code == 400


def test_a_superuser_sees_both_operators(world, client: Client):
    client.force_login(UserFactory(is_superuser=True, organisation=None))
    response = client.get(URL, QUERY)
    assert response.status_code == 200
    assert response.context["filters"].operator_id is None
    assert "<p data-tenancy>Every operator (platform-wide).</p>" in response.content.decode()
    selects = {s["name"]: [label for _, label, _ in s["options"]] for s in response.context["selects"]}
    assert selects["unit"] == ["CT Van A", "CT Van Z", "MR Van B"]
    assert selects["pool"] == ["Pool 1", "Pool 2", "Pool 3"]
    assert {"Alpha Hospital", "Beta Hospital", "Gamma Hospital"} <= set(selects["hospital"])
    assert [row[:2] for row in _csv(client, "qc_units")[1:]] == [
        ["CT Van A", "5"],
        ["CT Van Z", "3"],
        ["MR Van B", "3"],
    ]
    assert _csv(client, "critical")[-1][:2] == ["All hospitals", "4"]
