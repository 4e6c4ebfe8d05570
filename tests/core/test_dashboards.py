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


def _filters(**kwargs) -> DashboardFilters:
    return DashboardFilters(start=MARCH.start, end=MARCH.end, **kwargs)


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
    rows = _rows(turnaround(MARCH))
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
    alpha = _rows(turnaround(_filters(hospital_id=world.alpha.pk)))
    # Alpha's STAT: 30 and 90 -> median 60, p90 = 30 + 0.9 * 60 = 84.
    assert (alpha[0]["routed"], alpha[0]["median_minutes"], alpha[0]["p90_minutes"]) == (2, 60.0, 84.0)
    assert alpha[1]["routed"] == 1 and alpha[1]["breaches"] == 0
    pool2 = _rows(turnaround(_filters(pool_id=world.p2.pk)))
    assert [r["routed"] for r in pool2] == [1, 0, 0]
    assert pool2[0]["sla_minutes"] == "30" and pool2[0]["median_minutes"] == 50.0
    assert pool2[1]["median_minutes"] is None and pool2[1]["within_sla_percent"] is None
    van_b = _rows(turnaround(_filters(unit_id=world.van_b.pk)))
    assert [r["routed"] for r in van_b] == [1, 1, 0]
    february = _rows(turnaround(DashboardFilters(start=dt.date(2026, 2, 1), end=dt.date(2026, 2, 28))))
    assert [r["routed"] for r in february] == [0, 0, 1] and february[2]["median_minutes"] == 10.0


# --- acquisition QC ------------------------------------------------------------------------------


def test_qc_rates_per_unit_technologist_and_rule(world):
    dash = acquisition_qc(MARCH)
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
    beta = acquisition_qc(_filters(hospital_id=world.beta.pk))
    assert [(r["unit"], r["studies"]) for r in _rows(beta, "qc_units")] == [("MR Van B", 3)]
    one_day = acquisition_qc(DashboardFilters(start=D, end=D, unit_id=world.van_b.pk))
    assert [(r["technologist"], r["studies"]) for r in _rows(one_day, "qc_technologists")] == [("Li Rad", 2)]
    assert [r["rule"] for r in _rows(one_day, "qc_rules")] == ["dose"]
    assert _rows(one_day, "qc_rules")[0]["flagged_percent"] == 50.0


# --- peer review ---------------------------------------------------------------------------------


def test_peer_discrepancy_rates(world):
    rows = _rows(peer_review(MARCH))
    assert rows == [
        {"reader": "Ann Reader", "reviews": 2, "score_1": 1, "score_2": 0, "score_3": 1,
         "discrepancy_percent": 50.0, "significant_percent": 50.0},
        {"reader": "Bob Reader", "reviews": 1, "score_1": 0, "score_2": 1, "score_3": 0,
         "discrepancy_percent": 100.0, "significant_percent": 0.0},
        {"reader": "All readers", "reviews": 3, "score_1": 1, "score_2": 1, "score_3": 1,
         "discrepancy_percent": 66.7, "significant_percent": 33.3},
    ]  # fmt: skip
    assert _rows(peer_review(_filters(pool_id=world.p2.pk)))[-1]["reviews"] == 0
    feb = DashboardFilters(start=dt.date(2026, 2, 1), end=dt.date(2026, 2, 28))
    assert _rows(peer_review(feb))[-1]["discrepancy_percent"] is None


# --- utilisation ---------------------------------------------------------------------------------


def test_utilisation_equals_hand_computed(world):
    rows = {r["unit"]: r for r in _rows(utilisation(MARCH))}
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
    beta = {r["unit"]: r for r in _rows(utilisation(_filters(hospital_id=world.beta.pk)))}
    assert beta["CT Van A"]["exams_done"] == 0 and beta["CT Van A"]["exams_booked"] == 0
    assert list(beta) == ["CT Van A", "MR Van B"]
    only_a = _rows(utilisation(_filters(unit_id=world.van_a.pk)))
    assert [r["unit"] for r in only_a] == ["CT Van A"]


# --- coverage ------------------------------------------------------------------------------------


def test_coverage_gaps_on_the_last_day(world):
    rows = _rows(coverage_gaps(MARCH))
    # Beta CT never served: due 2026-01-01, 89 days overdue on 31 March; Beta MR last served on
    # D, every 7 days: due 17 March, 14 days overdue. Alpha CT is due on 9 April: not listed.
    assert [(r["hospital"], r["modality"], r["due_on"], r["days_overdue"]) for r in rows] == [
        ("Beta Hospital", "CT", "2026-01-01", 89),
        ("Beta Hospital", "MR", "2026-03-17", 14),
    ]
    assert rows[1]["last_visit"] == "2026-03-10" and rows[0]["last_visit"] is None
    assert _rows(coverage_gaps(_filters(hospital_id=world.alpha.pk))) == []
    assert len(_rows(coverage_gaps(DashboardFilters(start=D, end=D)))) == 1  # only Beta CT on D


# --- critical results ----------------------------------------------------------------------------


def test_critical_acknowledgement_times(world):
    rows = _rows(critical_ack(MARCH))
    # Alpha: 20 and 50 minutes -> median 35, p90 = 20 + 0.9 * 30 = 47, longest 50. Beta: open.
    assert rows == [
        {"hospital": "Alpha Hospital", "flagged": 2, "acknowledged": 2, "open": 0,
         "median_minutes": 35.0, "p90_minutes": 47.0, "max_minutes": 50.0},
        {"hospital": "Beta Hospital", "flagged": 1, "acknowledged": 0, "open": 1,
         "median_minutes": None, "p90_minutes": None, "max_minutes": None},
        {"hospital": "All hospitals", "flagged": 3, "acknowledged": 2, "open": 1,
         "median_minutes": 35.0, "p90_minutes": 47.0, "max_minutes": 50.0},
    ]  # fmt: skip
    pool2 = _rows(critical_ack(_filters(pool_id=world.p2.pk)))
    assert [(r["hospital"], r["flagged"]) for r in pool2] == [("Beta Hospital", 1), ("All hospitals", 1)]
    van_a = _rows(critical_ack(_filters(unit_id=world.van_a.pk)))
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

    client.force_login(_qc_user(OperatorFactory()))
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["filters"] == DashboardFilters.default()
    # Turnaround always lists the three priorities; peer and critical keep their total row.
    assert response.content.decode().count("Nothing in this range.") == 5
