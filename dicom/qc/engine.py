"""Run the QC rules over one study and aggregate: fail if any failure, warn if any warning, else pass.

A rule that crashes becomes a failure finding and the others still run: QC never crashes as a
whole. Nothing here logs tag values: only rule ids, exception types, counts and timings.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from dicom.choices import QCOutcome, QCSeverity
from dicom.qc.base import Finding, QCContext, Rule, RuleSkipped
from dicom.qc.rules import DEFAULT_RULES

__all__ = ["DEFAULT_RULES", "QCContext", "QCReport", "RuleRun", "outcome_of", "run_rules"]

logger = logging.getLogger(__name__)


class RuleRun(TypedDict):
    """What happened to one rule in a run (stored in ``QCResult.rules_run``)."""

    rule: str
    status: Literal["ran", "skipped", "error"]
    findings: int
    note: str
    ms: float


@dataclass(frozen=True)
class QCReport:
    """The verdict. ``findings`` are plain ``Finding``-shaped dicts, ready for ``QCResult.findings``."""

    outcome: QCOutcome
    findings: list[dict[str, Any]]
    rules_run: list[RuleRun]

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": str(self.outcome.value), "findings": self.findings, "rules_run": self.rules_run}


def outcome_of(findings: Sequence[Mapping[str, Any]]) -> QCOutcome:
    severities = {finding["severity"] for finding in findings}
    if QCSeverity.FAIL.value in severities:
        return QCOutcome.FAIL
    if QCSeverity.WARN.value in severities:
        return QCOutcome.WARN
    return QCOutcome.PASS


def run_rules(context: QCContext, rules: Sequence[Rule] | None = None) -> QCReport:
    """Every rule (default: ``DEFAULT_RULES``) over the context, in order."""
    if rules is None:
        rules = DEFAULT_RULES
    findings: list[dict[str, Any]] = []
    runs: list[RuleRun] = []
    started = time.perf_counter()
    for rule in rules:
        rule_started = time.perf_counter()
        status: Literal["ran", "skipped", "error"] = "ran"
        note = ""
        produced: list[Finding] = []
        if rule.needs_order and context.order is None:
            status, note = "skipped", "no order matched: nothing to compare with"
        else:
            try:
                produced = list(rule.check(context))
            except RuleSkipped as skip:
                status, note = "skipped", str(skip)
            except Exception as exc:
                status = "error"
                produced = [rule.fail(f"rule {rule.id} could not run: {type(exc).__name__}")]
                # The exception's message may quote a tag value: log its type and frames only.
                logger.error(
                    "QC rule %s crashed on study %s: %s\n%s",
                    rule.id,
                    context.headers.orthanc_id,
                    type(exc).__name__,
                    "".join(traceback.format_tb(exc.__traceback__)),
                )
        findings.extend(dict(finding) for finding in produced)
        extra = context.notes.get(rule.id, "")
        runs.append(
            RuleRun(
                rule=rule.id,
                status=status,
                findings=len(produced),
                note="; ".join(part for part in (note, extra) if part),
                ms=round((time.perf_counter() - rule_started) * 1000, 2),
            )
        )
    report = QCReport(outcome=outcome_of(findings), findings=findings, rules_run=runs)
    logger.info(
        "QC %s for study %s: %d findings, %d rules, %d instances, %.1f ms",
        report.outcome.value,
        context.headers.orthanc_id,
        len(findings),
        len(runs),
        context.headers.number_of_instances,
        (time.perf_counter() - started) * 1000,
    )
    return report
