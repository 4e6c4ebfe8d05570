"""Acquisition QC outcomes per unit, per technologist and per rule.

A study counts when QC has given it a verdict (``Study.qc_outcome`` pass, warn or fail: the
newest QC run's) and its **study day** (DICOM StudyDate, else the local day it was first
ingested) is in the date range. Filters: dates, hospital, unit (not pool: a failed study is
never routed to one). An operator sees the studies its own units acquired.

**Technologist.** The platform does not record who pressed "scan" (starting an exam writes only
an audit entry), but it does record the crew of each visit. A study is credited to every
technologist and radiographer on the crew of the visit its van made to its hospital on its study
day (``Visit.crew``; cancelled visits excluded). Studies with no such visit or crew fall under
"No crew on record". A study is counted once per crew member, so per-technologist rows can add up
to more than the unit total.

**Rule.** For each rule, the studies whose newest QC result has a finding of that rule (worst
severity per study), as a share of all QC'd studies in the filter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, cast

from django.db import connection
from django.db.models import Count, Q, QuerySet

from core.quality.base import Dashboard, Table, bar_chart, rate, study_day, study_day_q
from core.quality.filters import DashboardFilters
from dicom.choices import QCOutcome
from dicom.models import QCResult, Study
from fleet.choices import CrewRole, VisitStatus
from fleet.models import Unit, Visit

VERDICTS = [QCOutcome.PASS, QCOutcome.WARN, QCOutcome.FAIL]
SCANNING_ROLES = [CrewRole.TECHNOLOGIST, CrewRole.RADIOGRAPHER]
NO_CREW = "No crew on record"
_COUNTS = [("studies", "Studies"), ("passed", "Pass"), ("warned", "Warn"), ("failed", "Fail")]
_RATES = [("pass_percent", "Pass (%)"), ("warn_percent", "Warn (%)"), ("fail_percent", "Fail (%)")]


def qc_studies(filters: DashboardFilters) -> QuerySet[Study]:
    studies = Study.objects.filter(study_day_q(filters), qc_outcome__in=VERDICTS)
    if filters.operator_id is not None:
        studies = studies.filter(unit__operator_id=filters.operator_id)
    if filters.hospital_id is not None:
        studies = studies.filter(hospital_id=filters.hospital_id)
    if filters.unit_id is not None:
        studies = studies.filter(unit_id=filters.unit_id)
    return studies


def _verdict_counts() -> dict:
    return {
        "studies": Count("id"),
        "passed": Count("id", filter=Q(qc_outcome=QCOutcome.PASS)),
        "warned": Count("id", filter=Q(qc_outcome=QCOutcome.WARN)),
        "failed": Count("id", filter=Q(qc_outcome=QCOutcome.FAIL)),
    }


def _with_rates(row: dict) -> dict:
    n = row["studies"]
    row.update(
        pass_percent=rate(row["passed"], n),
        warn_percent=rate(row["warned"], n),
        fail_percent=rate(row["failed"], n),
    )
    return row


def _add(row: dict, counts: Mapping[str, Any]) -> None:
    for key, _ in _COUNTS:
        row[key] += counts[key]


def _visit_groups(studies: QuerySet[Study]) -> list[dict[str, Any]]:
    """Verdict counts per (unit, hospital, study day): one scan; the unit and technologist tables
    are both sums of these."""
    grouped = (
        studies.annotate(day=study_day())
        .order_by()
        .values("unit_id", "hospital_id", "day")
        .annotate(**_verdict_counts())
    )
    return cast(list[dict[str, Any]], list(grouped))


def _per_unit(groups: list[dict[str, Any]]) -> list[dict]:
    names = dict(
        Unit.objects.filter(pk__in={g["unit_id"] for g in groups if g["unit_id"]}).values_list("id", "name")
    )
    totals: dict[int | None, dict] = {}
    for g in groups:
        name = names.get(g["unit_id"], "Unknown unit")
        _add(totals.setdefault(g["unit_id"], {"unit": name, **{k: 0 for k, _ in _COUNTS}}), g)
    return sorted((_with_rates(row) for row in totals.values()), key=lambda r: r["unit"])


def _per_technologist(groups: list[dict[str, Any]], filters: DashboardFilters) -> list[dict]:
    links = Visit.crew.through.objects.filter(
        visit__date__gte=filters.start,
        visit__date__lte=filters.end,
        crewmember__role__in=SCANNING_ROLES,
    ).exclude(visit__status=VisitStatus.CANCELLED)
    if filters.operator_id is not None:
        links = links.filter(visit__unit__operator_id=filters.operator_id)
    if filters.hospital_id is not None:
        links = links.filter(visit__hospital_id=filters.hospital_id)
    if filters.unit_id is not None:
        links = links.filter(visit__unit_id=filters.unit_id)
    crews: dict[tuple, set[tuple[int | None, str]]] = defaultdict(set)
    for unit_id, hospital_id, day, member_id, name in links.values_list(
        "visit__unit_id", "visit__hospital_id", "visit__date", "crewmember_id", "crewmember__full_name"
    ):
        crews[(unit_id, hospital_id, day)].add((member_id, name))
    totals: dict[tuple[int | None, str], dict] = {}
    for g in groups:
        for member in crews.get((g["unit_id"], g["hospital_id"], g["day"])) or {(None, NO_CREW)}:
            _add(totals.setdefault(member, {"technologist": member[1], **{k: 0 for k, _ in _COUNTS}}), g)
    rows = [_with_rates(row) for row in totals.values()]
    return sorted(rows, key=lambda r: (r["technologist"] == NO_CREW, r["technologist"]))


# PostgreSQL: the newest result per flagged study, its findings unnested, worst severity per
# (study, rule), counted per rule, all in the database (no JSON to Python).
_RULES_SQL = """
SELECT per_rule.rule,
       COUNT(*) FILTER (WHERE per_rule.worst = 1) AS warned,
       COUNT(*) FILTER (WHERE per_rule.worst = 2) AS failed
FROM (
    SELECT DISTINCT ON (r.study_id) r.study_id, r.findings
    FROM dicom_qcresult r
    WHERE r.study_id IN ({studies})
    ORDER BY r.study_id, r.created_at DESC, r.id DESC
) newest
CROSS JOIN LATERAL (
    SELECT COALESCE(f ->> 'rule', '?') AS rule,
           MAX(CASE WHEN f ->> 'severity' = 'fail' THEN 2 ELSE 1 END) AS worst
    FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(newest.findings) = 'array' THEN newest.findings ELSE '[]'::jsonb END
    ) AS f
    GROUP BY 1
) per_rule
GROUP BY per_rule.rule
"""


def _rule_counts(flagged: QuerySet[Study]) -> dict[str, dict[str, int]]:
    if connection.vendor == "postgresql":
        sql, params = flagged.order_by().values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(_RULES_SQL.format(studies=sql), params)
            return {rule: {"warn": warned, "fail": failed} for rule, warned, failed in cursor.fetchall()}
    results = (
        QCResult.objects.filter(study_id__in=flagged.order_by().values("pk"))
        .order_by("study_id", "-created_at", "-id")
        .values_list("study_id", "findings")
    )
    seen: set[int] = set()
    worst: dict[str, dict[str, int]] = defaultdict(lambda: {"warn": 0, "fail": 0})
    for study_id, findings in results:
        if study_id in seen:  # an older run of a study already counted
            continue
        seen.add(study_id)
        severity_by_rule: dict[str, str] = {}
        for finding in findings or []:
            rule, severity = str(finding.get("rule", "?")), finding.get("severity")
            if severity == "fail" or rule not in severity_by_rule:
                severity_by_rule[rule] = "fail" if severity == "fail" else "warn"
        for rule, severity in severity_by_rule.items():
            worst[rule][severity] += 1
    return worst


def _per_rule(studies: QuerySet[Study], total: int) -> list[dict]:
    counts = _rule_counts(studies.filter(qc_outcome__in=[QCOutcome.WARN, QCOutcome.FAIL]))
    rows = [
        {
            "rule": rule,
            "studies_flagged": c["warn"] + c["fail"],
            "warned": c["warn"],
            "failed": c["fail"],
            "flagged_percent": rate(c["warn"] + c["fail"], total),
        }
        for rule, c in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r["studies_flagged"], r["rule"]))


def acquisition_qc(filters: DashboardFilters) -> Dashboard:
    """Three tables (unit, technologist, rule) and a stacked bar per unit. Four queries."""
    studies = qc_studies(filters)
    groups = _visit_groups(studies)
    units = _per_unit(groups)
    total = sum(row["studies"] for row in units)
    technologists = _per_technologist(groups, filters)
    rules = _per_rule(studies, total)
    tables = [
        Table("qc_units", "QC outcome per unit", [("unit", "Unit"), *_COUNTS, *_RATES], units),
        Table(
            "qc_technologists",
            "QC outcome per technologist (crew of the visit)",
            [("technologist", "Technologist"), *_COUNTS, *_RATES],
            technologists,
            note="A study counts for every scanning crew member of its visit.",
        ),
        Table(
            "qc_rules",
            "Findings per QC rule",
            [
                ("rule", "Rule"),
                ("studies_flagged", "Studies flagged"),
                ("warned", "Warn"),
                ("failed", "Fail"),
                ("flagged_percent", "Of QC'd studies (%)"),
            ],
            rules,
            note=f"Out of {total} QC'd studies.",
        ),
    ]
    chart = bar_chart(
        [row["unit"] for row in units],
        [
            ("Pass", [row["passed"] for row in units]),
            ("Warn", [row["warned"] for row in units]),
            ("Fail", [row["failed"] for row in units]),
        ],
        y_label="studies",
        stacked=True,
    )
    return Dashboard(
        key="qc",
        title="Acquisition QC",
        tables=tables,
        chart=chart,
        filters_used=("dates", "hospital", "unit"),
    )
