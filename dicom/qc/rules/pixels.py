"""Pixel data decodable: one instance per image series fetched from Orthanc and decoded."""

from __future__ import annotations

import io

import pydicom
from pydicom.pixels import get_decoder

from dicom.choices import QCSeverity
from dicom.orthanc_client import OrthancError
from dicom.qc.base import Finding, QCContext, Rule, RuleSkipped

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MAX_MESSAGE = 240


def decode_problem(data: bytes) -> tuple[QCSeverity, str] | None:
    """Why the file's pixel data cannot be decoded (None when it decodes).

    A transfer syntax no installed pydicom plugin decodes is a warning, not a failure: the
    image may be fine, this platform just cannot prove it.
    """
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:
        return QCSeverity.FAIL, f"the instance is not readable as DICOM: {_short(exc)}"
    if not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        return QCSeverity.FAIL, "the instance has no pixel data"
    transfer_syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if transfer_syntax is not None and "PixelData" in dataset:
        try:
            decoder = get_decoder(transfer_syntax)
        except NotImplementedError:
            return QCSeverity.WARN, f"pixel data not verified: no decoder for {transfer_syntax.name}"
        if not decoder.is_available:
            return (
                QCSeverity.WARN,
                f"pixel data not verified: no decoder plugin installed for {transfer_syntax.name}",
            )
    try:
        dataset.pixel_array  # noqa: B018 -- decoding is the check
    except Exception as exc:
        return QCSeverity.FAIL, f"pixel data cannot be decoded: {_short(exc)}"
    return None


def _short(exc: Exception) -> str:
    # Decoder messages speak of lengths, shapes and transfer syntaxes; still bounded, one line.
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


class PixelDataRule(Rule):
    id = "pixel_data"
    severity = QCSeverity.FAIL
    description = "One instance of each image series is fetched from Orthanc and its pixel data decoded."

    def check(self, context: QCContext) -> list[Finding]:
        if context.fetch_instance is None:
            raise RuleSkipped("no instance fetcher given")
        findings = []
        for series in context.headers.image_series:
            instance = series.representative()
            try:
                data = context.fetch_instance(instance.orthanc_id)
            except OrthancError as exc:
                status = f"HTTP {exc.status_code}" if exc.status_code else "no answer"
                findings.append(
                    self.fail(f"could not fetch an instance from Orthanc ({status})", series=series.uid)
                )
                continue
            problem = decode_problem(data)
            if problem:
                severity, message = problem
                findings.append(self.finding(message, series=series.uid, severity=severity))
        return findings
