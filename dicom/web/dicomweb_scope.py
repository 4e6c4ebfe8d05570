"""What of Orthanc one granted study is: its series and instances, for the DICOMweb proxy.

Orthanc keeps one study per (PatientID, StudyInstanceUID), so a Study Instance UID can name two
studies there (docs/ingest.md, "The same Study Instance UID under two patients"), and Orthanc's
DICOMweb routes, which address studies by UID only, answer with both. The platform grants a
user one of them: the ``Study`` row (never a ``uid_conflict`` copy) whose ``orthanc_id`` is the
Orthanc study. ``StudyScope`` is that Orthanc study as the proxy checks it: its PatientID, its
series UIDs and, per series, its SOP Instance UIDs, read from Orthanc's REST API (by Orthanc
id, never by UID) and cached for ``SCOPE_TTL`` seconds; a UID not in a cached scope is looked
up once more before it is refused, so a late series is not refused for a minute.

``keeps(item)`` decides whether one DICOM JSON item (a QIDO result or a metadata entry) belongs
to the scope; docs/viewer.md describes where the proxy applies it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

SCOPE_TTL = 60
_SCOPE_KEY = "caravan:dicomweb-scope:{orthanc_id}"

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
PATIENT_ID = "00100020"

# GET a path of Orthanc's REST API, answered as parsed JSON (the proxy's, with its errors).
OrthancGet = Callable[[str], Awaitable[Any]]


def item_value(item: Any, tag: str) -> str | None:
    """The first value of ``tag`` in a DICOM JSON item as a string; "" if empty, None if absent."""
    if not isinstance(item, dict) or tag not in item:
        return None
    element = item[tag]
    values = element.get("Value") if isinstance(element, dict) else None
    if not values:
        return ""
    return str(values[0])


@dataclass(frozen=True)
class StudyScope:
    """One Orthanc study: PatientID and {SeriesInstanceUID: SOP Instance UIDs}."""

    orthanc_id: str
    study_uid: str
    patient_id: str
    series: dict[str, frozenset[str]]

    def has(self, series_uid: str, sop_uid: str | None = None) -> bool:
        if series_uid not in self.series:
            return False
        return sop_uid is None or sop_uid in self.series[series_uid]

    def keeps(self, item: Any) -> bool:
        """Whether a DICOM JSON item is of this Orthanc study (absent tags do not decide)."""
        if not isinstance(item, dict):
            return False
        study_uid = item_value(item, STUDY_UID)
        if study_uid is not None and study_uid != self.study_uid:
            return False
        patient_id = item_value(item, PATIENT_ID)
        if patient_id is not None and patient_id != self.patient_id:
            return False
        series_uid = item_value(item, SERIES_UID)
        if series_uid is not None and series_uid not in self.series:
            return False
        sop_uid = item_value(item, SOP_UID)
        if sop_uid is not None:
            if series_uid is not None:
                return sop_uid in self.series[series_uid]
            return any(sop_uid in sops for sops in self.series.values())
        return True


async def _read_scope(get: OrthancGet, orthanc_id: str) -> StudyScope:
    study = await get(f"studies/{orthanc_id}")
    series = await get(f"studies/{orthanc_id}/series")
    instances = await get(f"studies/{orthanc_id}/instances")
    series_uids = {s["ID"]: s.get("MainDicomTags", {}).get("SeriesInstanceUID", "") for s in series}
    members: dict[str, set[str]] = {uid: set() for uid in series_uids.values() if uid}
    for instance in instances:
        series_uid = series_uids.get(instance.get("ParentSeries", ""), "")
        sop_uid = instance.get("MainDicomTags", {}).get("SOPInstanceUID", "")
        if series_uid and sop_uid:
            members[series_uid].add(sop_uid)
    return StudyScope(
        orthanc_id=orthanc_id,
        study_uid=study.get("MainDicomTags", {}).get("StudyInstanceUID", ""),
        patient_id=study.get("PatientMainDicomTags", {}).get("PatientID", ""),
        series={uid: frozenset(sops) for uid, sops in members.items()},
    )


async def scope_load(get: OrthancGet, orthanc_id: str, *, fresh: bool = False) -> StudyScope:
    """The scope of the Orthanc study ``orthanc_id`` (cached; ``fresh`` reads Orthanc again)."""
    key = _SCOPE_KEY.format(orthanc_id=orthanc_id)
    if not fresh:
        cached = await cache.aget(key)
        if isinstance(cached, StudyScope):
            return cached
    scope = await _read_scope(get, orthanc_id)
    await cache.aset(key, scope, SCOPE_TTL)
    return scope


async def scope_with(
    get: OrthancGet, orthanc_id: str, series_uid: str, sop_uid: str | None = None
) -> StudyScope:
    """The scope, read again from Orthanc if it lacks ``series_uid``/``sop_uid`` (a late series)."""
    scope = await scope_load(get, orthanc_id)
    if not scope.has(series_uid, sop_uid):
        scope = await scope_load(get, orthanc_id, fresh=True)
    return scope
