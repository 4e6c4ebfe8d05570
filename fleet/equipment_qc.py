"""Daily phantom checks: the tolerances (in one place) and the pure pass/fail evaluation.

Defaults follow common acceptance practice for the phantoms the vans carry; a site may
override any value with the ``FLEET_QC_TOLERANCES`` setting, e.g.
``{"MR": {"snr_min": 60}}`` (merged over the defaults per modality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.exceptions import InvalidInput
from fleet.choices import Modality

DEFAULT_QC_TOLERANCES: dict[str, dict[str, float]] = {
    # Water phantom: mean CT number of water, image noise (SD), and the largest
    # |centre ROI - edge ROI| difference.
    Modality.CT: {"hu_mean_abs_max": 4.0, "noise_sd_max": 6.0, "uniformity_hu_max": 5.0},
    # Uniform phantom: signal-to-noise ratio and percent integral uniformity (PIU).
    Modality.MR: {"snr_min": 50.0, "piu_percent_min": 80.0},
    # Flat-field detector check: dead pixels and the largest regional deviation from the mean.
    Modality.DX: {"dead_pixels_max": 100.0, "uniformity_deviation_percent_max": 5.0},
}


@dataclass(frozen=True)
class Check:
    """One measurement compared against one tolerance."""

    key: str  # measurement name the client sends
    label: str  # how a message names it
    unit: str  # "HU", "%", ""
    tolerance: str  # key in the modality's tolerance dict
    kind: str  # "abs_max" (|value| <= limit), "max" (value <= limit), "min" (value >= limit)


CHECKS: dict[str, tuple[Check, ...]] = {
    Modality.CT: (
        Check("hu_mean", "water HU mean", "HU", "hu_mean_abs_max", "abs_max"),
        Check("noise_sd", "noise", "HU", "noise_sd_max", "max"),
        Check("uniformity_hu", "uniformity", "HU", "uniformity_hu_max", "max"),
    ),
    Modality.MR: (
        Check("snr", "SNR", "", "snr_min", "min"),
        Check("piu_percent", "uniformity (PIU)", "%", "piu_percent_min", "min"),
    ),
    Modality.DX: (
        Check("dead_pixels", "dead pixels", "", "dead_pixels_max", "max"),
        Check(
            "uniformity_deviation_percent",
            "uniformity deviation",
            "%",
            "uniformity_deviation_percent_max",
            "max",
        ),
    ),
}


def qc_tolerances(modality: str) -> dict[str, float]:
    """The tolerances for ``modality``: defaults, overridden by ``settings.FLEET_QC_TOLERANCES``."""
    if modality not in DEFAULT_QC_TOLERANCES:
        raise InvalidInput(f"No daily QC is defined for modality {modality!r}")
    merged = dict(DEFAULT_QC_TOLERANCES[modality])
    overrides = getattr(settings, "FLEET_QC_TOLERANCES", None) or {}
    merged.update(overrides.get(modality, {}))
    return merged


def _fmt(value: float) -> str:
    return f"{value:g}"


def _with_unit(value: float, unit: str) -> str:
    if not unit:
        return _fmt(value)
    return f"{_fmt(value)} %" if unit == "%" else f"{_fmt(value)} {unit}"


def _number(measurements: dict[str, Any], key: str) -> float:
    value = measurements.get(key)
    # bool is an int subclass; True is not a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"measurements.{key} must be a number", code="invalid_measurements")
    return float(value)


def qc_evaluate(modality: str, measurements: Any) -> tuple[list[str], dict[str, float]]:
    """Compare ``measurements`` with the tolerances: (failure messages, tolerances used).

    No failures means a pass. Missing or non-numeric measurements are ``InvalidInput``: a
    check that was not done is not recorded as one that failed.
    """
    tolerances = qc_tolerances(modality)
    if not isinstance(measurements, dict):
        raise InvalidInput("measurements must be an object", code="invalid_measurements")
    checks = CHECKS[modality]
    expected = {check.key for check in checks}
    missing = sorted(expected - measurements.keys())
    if missing:
        raise InvalidInput(
            f"A {modality} daily QC needs measurements: {', '.join(missing)}", code="invalid_measurements"
        )
    unknown = sorted(measurements.keys() - expected)
    if unknown:
        raise InvalidInput(
            f"Unknown measurements for {modality}: {', '.join(unknown)}; "
            f"expected {', '.join(sorted(expected))}",
            code="invalid_measurements",
        )
    failures: list[str] = []
    for check in checks:
        value = _number(measurements, check.key)
        limit = tolerances[check.tolerance]
        if check.kind == "abs_max" and abs(value) > limit:
            failures.append(f"{check.label} {_with_unit(value, check.unit)} outside 0±{_fmt(limit)}")
        elif check.kind == "max" and value > limit:
            failures.append(f"{check.label} {_with_unit(value, check.unit)} > {_fmt(limit)}")
        elif check.kind == "min" and value < limit:
            failures.append(f"{check.label} {_with_unit(value, check.unit)} < {_fmt(limit)}")
    return failures, tolerances
