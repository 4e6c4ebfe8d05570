"""Phantom-like pixel data, fast: one radius map per study, one noise bank, a LUT per slice.

A slice is ``lut[radius_index] + noise`` where the LUT maps the (elliptical) distance from the
centre to a tissue value for that slice's position. Two numpy calls per slice into a reused
buffer, no Python loop over pixels.
"""

from __future__ import annotations

import numpy as np

# Stored-value profiles: (fraction of the slice radius, value) from the centre outwards.
# CT values are HU + 1024 (RescaleIntercept -1024); MR and DX are arbitrary 12-bit intensities.
_PROFILES: dict[str, list[tuple[float, int]]] = {
    "CT_HEAD": [(0.18, 1034), (0.88, 1064), (1.0, 2100)],  # CSF, brain, skull
    "CT_BODY": [(0.15, 1400), (0.85, 1074), (1.0, 924)],  # spine-ish core, soft tissue, fat
    "MR_T1": [(0.18, 250), (0.88, 700), (1.0, 1100)],
    "MR_T2": [(0.18, 1500), (0.88, 650), (1.0, 900)],
    "MR_FLAIR": [(0.18, 80), (0.88, 800), (1.0, 700)],
    "DX": [(0.12, 3000), (0.9, 1900), (1.0, 1500)],
}
_BACKGROUND = {"CT": 24, "MR": 12, "DX": 150}  # air: -1000 HU; MR noise floor; direct exposure
_NOISE_SIGMA = {"CT": 8.0, "MR": 6.0, "DX": 20.0}
_MAX_VALUE = 4095  # BitsStored 12


class PhantomGenerator:
    """Slices of one study's phantom; ``slice(position)`` reuses one output buffer."""

    def __init__(self, rows: int, columns: int, modality: str, profile: str, *, seed: int, elliptic: bool):
        self.rows, self.columns = rows, columns
        self.background = _BACKGROUND[modality]
        rng = np.random.default_rng(seed)
        y, x = np.ogrid[:rows, :columns]
        # Outer radius in pixels at the widest slice; bodies are wider than deep.
        self.radius = 0.44 * min(rows, columns)
        aspect = 0.72 if elliptic else 0.92
        r = np.sqrt((x - (columns - 1) / 2) ** 2 + ((y - (rows - 1) / 2) / aspect) ** 2)
        self.max_index = int(np.ceil(r.max())) + 1
        self.radius_index = np.minimum(np.rint(r), self.max_index - 1).astype(np.intp)
        sigma = _NOISE_SIGMA[modality]
        # Clipped to +-3 sigma and offset by 3 sigma so it adds to uint16 without wrapping;
        # the LUT is lowered by the same offset.
        self.offset = int(np.ceil(3 * sigma))
        noise = np.clip(rng.normal(0.0, sigma, rows * columns + 8192), -3 * sigma, 3 * sigma)
        self.noise = np.rint(noise + self.offset).astype(np.uint16)
        self.rng = rng
        self.radii = np.arange(self.max_index, dtype=np.float64)
        self.out = np.empty((rows, columns), dtype=np.uint16)
        self.set_profile(profile)

    def set_profile(self, profile: str) -> None:
        self.profile = _PROFILES[profile]

    def slice(self, position: float) -> bytes:
        """Little-endian uint16 pixels for a slice at ``position`` in [-1, 1] across the volume."""
        # The body narrows towards both ends of the volume, like a head or a trunk.
        outer = self.radius * float(np.sqrt(max(0.05, 1.0 - 0.7 * position * position)))
        lut = np.full(self.max_index, self.background, dtype=np.int32)
        for fraction, value in reversed(self.profile):  # outermost first, inner rings overwrite
            lut[self.radii < outer * fraction] = value
        lut = np.clip(lut - self.offset, 0, _MAX_VALUE - 2 * self.offset).astype(np.uint16)
        np.take(lut, self.radius_index, out=self.out)
        start = int(self.rng.integers(0, 8192))
        self.out += self.noise[start : start + self.rows * self.columns].reshape(self.rows, self.columns)
        return self.out.astype("<u2", copy=False).tobytes()


def profile_for(modality: str, body_part: str, series_index: int) -> str:
    if modality == "CT":
        return "CT_HEAD" if body_part == "HEAD" else "CT_BODY"
    if modality == "MR":
        return ("MR_T1", "MR_T2", "MR_FLAIR")[series_index % 3]
    return "DX"
