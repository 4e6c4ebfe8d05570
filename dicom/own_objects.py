"""The platform's own objects in Orthanc: what it stores back into a study (the signed report's
Encapsulated PDF), recognised so that ingest, QC and the image counts leave them out.

An own series is one whose Series Instance UID is under our root (``dicom.uids``, the one
generator) and whose Manufacturer is ``OWN_MANUFACTURER``, of a document modality. Either alone
is not enough: the default root is pydicom's shared one, and a scanner may call itself anything;
no modality writes a DOC or SR series under our root as "Caravan" (the synthetic scanner is
"Caravan Synthetic" and writes images).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

# Written into every object the platform stores in Orthanc (telerad.reports_render).
OWN_MANUFACTURER = "Caravan"
OWN_MODALITIES = frozenset({"DOC", "SR"})


def is_own_series(main_tags: Mapping[str, Any]) -> bool:
    """Whether a series (Orthanc's ``MainDicomTags`` of it) is one the platform stored itself."""
    uid = str(main_tags.get("SeriesInstanceUID") or "").strip()
    return (
        uid.startswith(settings.DICOM_UID_ROOT)
        and str(main_tags.get("Manufacturer") or "").strip() == OWN_MANUFACTURER
        and str(main_tags.get("Modality") or "").strip().upper() in OWN_MODALITIES
    )
