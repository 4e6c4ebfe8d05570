"""Protocol limits for acquisition QC: slice thickness ranges, CT dose reference levels, tolerances.

The defaults below are overridden, key by key, by the Django setting ``QC_PROTOCOLS``::

    QC_PROTOCOLS = {
        "slice_thickness_mm": {"CT": {"HEAD": [0.5, 5.0]}},        # modality -> body part|"*" -> [min, max]
        "ct_drl": {"HEAD": {"ctdivol_mgy": 47, "dlp_mgy_cm": 790}}, # body part -> levels
        "dose_fail_factor": 2.0,      # above factor x DRL is a failure, above the DRL a warning
        "slice_gap_factor": 1.5,      # a gap beyond factor x median slice spacing fails a series
        "body_part_aliases": {"HEAD": ["HEAD", "BRAIN", "SKULL"]},  # booked part -> accepted terms
    }

A bad value raises ImproperlyConfigured when the protocols are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ANY_BODY_PART = "*"

# Site protocol defaults (not a published standard): the reconstruction thicknesses a
# diagnostic read expects. Thin 3D MR and CT reconstructions start around 0.5 mm; thicker
# than 5 mm (CT) or 6 mm (2D MR) loses small findings.
DEFAULT_SLICE_THICKNESS_MM: dict[str, dict[str, tuple[float, float]]] = {
    "CT": {ANY_BODY_PART: (0.5, 5.0)},
    "MR": {
        ANY_BODY_PART: (0.5, 6.0),
        "SPINE": (0.5, 5.0),
        "CSPINE": (0.5, 4.0),
        "LSPINE": (0.5, 5.0),
        "KNEE": (0.5, 4.0),
        "HAND": (0.5, 3.0),
        "EXTREMITY": (0.5, 4.0),
    },
}

# Adult CT national diagnostic reference levels of the UK (UKHSA, "National Diagnostic Reference
# Levels (NDRLs) from 20 November 2024", Table 1, values adopted 2022): CTDIvol per sequence and
# DLP per complete examination. Head = acute stroke 47 mGy / 790 mGy.cm; cervical spine =
# fracture 16 / 400; chest = lung cancer 8.5 / 290; abdomen and pelvis = abscess 10 / 530.
# Older European levels (EC Radiation Protection 180, 2014) are higher (head ~60 / 1000); a
# deployment sets its own local DRLs through QC_PROTOCOLS["ct_drl"].
DEFAULT_CT_DRL: dict[str, dict[str, float]] = {
    "HEAD": {"ctdivol_mgy": 47.0, "dlp_mgy_cm": 790.0},
    "CSPINE": {"ctdivol_mgy": 16.0, "dlp_mgy_cm": 400.0},
    "CHEST": {"ctdivol_mgy": 8.5, "dlp_mgy_cm": 290.0},
    "ABDOMEN": {"ctdivol_mgy": 10.0, "dlp_mgy_cm": 530.0},
    "PELVIS": {"ctdivol_mgy": 10.0, "dlp_mgy_cm": 530.0},
}

# Body Part Examined terms (DICOM PS3.16 Annex L) a scanner may write for each part we book.
DEFAULT_BODY_PART_ALIASES: dict[str, tuple[str, ...]] = {
    "HEAD": ("HEAD", "BRAIN", "SKULL", "HEADNECK"),
    "NECK": ("NECK", "HEADNECK"),
    "CHEST": ("CHEST", "THORAX", "LUNG", "CHESTABDOMEN", "CHESTABDPELVIS"),
    "ABDOMEN": ("ABDOMEN", "ABDOMENPELVIS", "ABDPELV", "CHESTABDOMEN", "CHESTABDPELVIS"),
    "PELVIS": ("PELVIS", "ABDOMENPELVIS", "ABDPELV", "HIP", "CHESTABDPELVIS"),
    "SPINE": ("SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "WHOLESPINE"),
    "CSPINE": ("CSPINE",),
    "LSPINE": ("LSPINE",),
    "EXTREMITY": (
        "EXTREMITY", "ARM", "LEG", "KNEE", "HAND", "FOOT", "ANKLE", "ELBOW", "WRIST", "SHOULDER",
        "HIP", "FINGER", "TOE", "FEMUR", "TIBIA", "HUMERUS", "FOREARM", "LOWERLEG", "UPPERARM",
    ),
    "KNEE": ("KNEE",),
    "HAND": ("HAND", "FINGER", "WRIST"),
}  # fmt: skip

_KEYS = {"slice_thickness_mm", "ct_drl", "dose_fail_factor", "slice_gap_factor", "body_part_aliases"}


@dataclass(frozen=True)
class ThicknessRange:
    min_mm: float
    max_mm: float

    def __contains__(self, value: float) -> bool:
        # DS values are rounded by scanners: 5.0000001 is 5.
        return self.min_mm - 1e-3 <= value <= self.max_mm + 1e-3


@dataclass(frozen=True)
class DoseLevels:
    ctdivol_mgy: float
    dlp_mgy_cm: float


@dataclass(frozen=True)
class QCProtocols:
    slice_thickness_mm: Mapping[str, Mapping[str, ThicknessRange]]
    ct_drl: Mapping[str, DoseLevels]
    body_part_aliases: Mapping[str, frozenset[str]]
    dose_fail_factor: float = 2.0
    slice_gap_factor: float = 1.5

    def thickness_range(self, modality: str | None, body_part: str | None) -> ThicknessRange | None:
        by_part = self.slice_thickness_mm.get((modality or "").upper())
        if not by_part:
            return None
        return by_part.get((body_part or "").upper()) or by_part.get(ANY_BODY_PART)

    def body_part_matches(self, booked: str, examined: str) -> bool:
        booked, examined = booked.upper(), normalise_body_part(examined)
        return examined == booked or examined in self.body_part_aliases.get(booked, frozenset())

    def canonical_body_part(self, examined: str | None, among: Mapping[str, Any] | None = None) -> str | None:
        """The booked-part key (restricted to ``among`` if given) a Body Part Examined term means."""
        if not examined:
            return None
        term = normalise_body_part(examined)
        keys = list(among) if among is not None else list(self.body_part_aliases)
        if term in keys:
            return term
        return next((key for key in keys if term in self.body_part_aliases.get(key, frozenset())), None)


def normalise_body_part(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def get_protocols(overrides: Mapping[str, Any] | None = None) -> QCProtocols:
    """Defaults merged with ``overrides`` (default: ``settings.QC_PROTOCOLS``), validated."""
    if overrides is None:
        overrides = getattr(settings, "QC_PROTOCOLS", None) or {}
    if not isinstance(overrides, Mapping):
        raise ImproperlyConfigured("QC_PROTOCOLS must be a dict")
    unknown = set(overrides) - _KEYS
    if unknown:
        raise ImproperlyConfigured(f"QC_PROTOCOLS: unknown keys {sorted(unknown)}; expected {sorted(_KEYS)}")

    thickness: dict[str, dict[str, ThicknessRange]] = {
        modality: {part: ThicknessRange(*limits) for part, limits in parts.items()}
        for modality, parts in DEFAULT_SLICE_THICKNESS_MM.items()
    }
    for modality, parts in _mapping(overrides, "slice_thickness_mm").items():
        for part, limits in _mapping_value(parts, f"slice_thickness_mm[{modality!r}]").items():
            where = f"slice_thickness_mm[{modality!r}][{part!r}]"
            if not isinstance(limits, list | tuple) or len(limits) != 2:
                raise ImproperlyConfigured(f"QC_PROTOCOLS {where} must be [min_mm, max_mm]")
            low, high = (_positive(value, where) for value in limits)
            if low > high:
                raise ImproperlyConfigured(f"QC_PROTOCOLS {where}: min {low} > max {high}")
            thickness.setdefault(str(modality).upper(), {})[str(part).upper()] = ThicknessRange(low, high)

    drl = {part: DoseLevels(**levels) for part, levels in DEFAULT_CT_DRL.items()}
    for part, levels in _mapping(overrides, "ct_drl").items():
        where = f"ct_drl[{part!r}]"
        levels = _mapping_value(levels, where)
        if set(levels) != {"ctdivol_mgy", "dlp_mgy_cm"}:
            raise ImproperlyConfigured(f"QC_PROTOCOLS {where} needs exactly ctdivol_mgy and dlp_mgy_cm")
        drl[str(part).upper()] = DoseLevels(
            ctdivol_mgy=_positive(levels["ctdivol_mgy"], where),
            dlp_mgy_cm=_positive(levels["dlp_mgy_cm"], where),
        )

    aliases = {part: frozenset(terms) for part, terms in DEFAULT_BODY_PART_ALIASES.items()}
    for part, terms in _mapping(overrides, "body_part_aliases").items():
        if not isinstance(terms, list | tuple | set | frozenset) or not all(
            isinstance(t, str) for t in terms
        ):
            raise ImproperlyConfigured(f"QC_PROTOCOLS body_part_aliases[{part!r}] must be a list of terms")
        aliases[str(part).upper()] = frozenset(normalise_body_part(term) for term in terms)

    fail_factor = _positive(overrides.get("dose_fail_factor", 2.0), "dose_fail_factor")
    gap_factor = _positive(overrides.get("slice_gap_factor", 1.5), "slice_gap_factor")
    if fail_factor < 1 or gap_factor <= 1:
        raise ImproperlyConfigured("QC_PROTOCOLS: dose_fail_factor must be >= 1 and slice_gap_factor > 1")
    return QCProtocols(
        slice_thickness_mm=thickness,
        ct_drl=drl,
        body_part_aliases=aliases,
        dose_fail_factor=fail_factor,
        slice_gap_factor=gap_factor,
    )


def protocols_from_settings() -> QCProtocols:
    """The protocols in force: defaults overridden by ``settings.QC_PROTOCOLS``."""
    return get_protocols()


def _mapping(overrides: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _mapping_value(overrides.get(key) or {}, key)


def _mapping_value(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"QC_PROTOCOLS {where} must be a dict")
    return value


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(f"QC_PROTOCOLS {where}: {value!r} is not a positive number")
    return float(value)
