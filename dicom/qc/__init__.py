"""Acquisition QC: rules over a study's DICOM headers (read from Orthanc) and its booked order.

headers = load_study_headers(client, study.orthanc_id)
report = run_rules(QCContext(headers, order=study.order, fetch_instance=client.instance_file))
report.outcome, report.findings, report.rules_run   # -> QCResult
"""

from dicom.qc.base import Finding, QCContext, Rule, RuleSkipped
from dicom.qc.config import QCProtocols, get_protocols
from dicom.qc.engine import QCReport, RuleRun, outcome_of, run_rules
from dicom.qc.headers import InstanceHeaders, SeriesHeaders, StudyHeaders, load_study_headers
from dicom.qc.rules import DEFAULT_RULES

__all__ = [
    "DEFAULT_RULES",
    "Finding",
    "InstanceHeaders",
    "QCContext",
    "QCProtocols",
    "QCReport",
    "Rule",
    "RuleRun",
    "RuleSkipped",
    "SeriesHeaders",
    "StudyHeaders",
    "get_protocols",
    "load_study_headers",
    "outcome_of",
    "run_rules",
]
