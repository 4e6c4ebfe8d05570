"""What every QC rule sees (``QCContext``), returns (``Finding``) and is (``Rule``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypedDict

from dicom.choices import QCSeverity
from dicom.qc.config import QCProtocols, get_protocols
from dicom.qc.headers import StudyHeaders

if TYPE_CHECKING:
    from dicom.models import Order


class Finding(TypedDict):
    """One problem, JSON-ready. Messages never quote patient names, IDs or dates."""

    rule: str
    severity: str  # QCSeverity value
    message: str
    series: str | None  # Series Instance UID, None for the whole study


class RuleSkipped(Exception):
    """Raised by ``Rule.check`` when the rule does not apply; the message says why."""


@dataclass
class QCContext:
    """Inputs of one QC run. ``order`` is None for a study not matched to an order."""

    headers: StudyHeaders
    order: Order | None = None
    protocols: QCProtocols = field(default_factory=get_protocols)
    # Instance Orthanc id -> DICOM Part 10 bytes (``OrthancClient.instance_file``); None skips
    # the pixel check.
    fetch_instance: Callable[[str], bytes] | None = None
    # Rule id -> a short note for ``rules_run`` (e.g. which dose source was used).
    notes: dict[str, str] = field(default_factory=dict)

    def note(self, rule_id: str, text: str) -> None:
        self.notes[rule_id] = f"{self.notes[rule_id]}; {text}" if rule_id in self.notes else text


class Rule(ABC):
    """One acquisition check. ``severity`` is the worst it reports; each finding has its own."""

    id: ClassVar[str]
    severity: ClassVar[QCSeverity]
    description: ClassVar[str]
    # Rules comparing the images with the booked order are skipped when there is no order.
    needs_order: ClassVar[bool] = False

    @abstractmethod
    def check(self, context: QCContext) -> list[Finding]:
        """The findings of this rule on the study (empty when it passes)."""

    def finding(
        self, message: str, *, series: str | None = None, severity: QCSeverity | None = None
    ) -> Finding:
        return Finding(
            rule=self.id, severity=str((severity or self.severity).value), message=message, series=series
        )

    def fail(self, message: str, *, series: str | None = None) -> Finding:
        return self.finding(message, series=series, severity=QCSeverity.FAIL)

    def warn(self, message: str, *, series: str | None = None) -> Finding:
        return self.finding(message, series=series, severity=QCSeverity.WARN)

    def __repr__(self) -> str:
        return f"<Rule {self.id}>"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def number_list(values: list[int] | list[float], limit: int = 8) -> str:
    """``1, 2, 5`` or ``1, 2, ... (12 in all)``: bounded, so a message stays short."""
    shown = ", ".join(f"{value:g}" for value in values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} in all)"
