"""Who may see a study's images and data: the one access function for patient data in studies.

- radiologist: eligible for the study's reading task, assigned to it, or holding its claim;
- hospital user: the study was acquired for their hospital;
- QC officer or administrator of an operator: the studies that operator's vans acquired;
- QC officer of a reading group: the studies routed to that group's pools;
- superuser: every study;
- anyone else (dispatchers, technologists on the API...): none. (A technologist sees their own
  van's recent studies on the van's QC page, through ``dicom.selectors.unit_recent_studies``.)

Out-of-scope studies are reported as not found (``NotFound``, HTTP 404), so another
hospital's Study Instance UID reveals nothing, not even that it exists.

Opening a study is audited through ``study_audit_open``: one entry per user and study per
viewing session (``OPEN_AUDIT_WINDOW`` seconds of inactivity end a session), not one per
frame, so a viewer fetching hundreds of frames leaves one ``study.open`` entry.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from core.access import user_is_platform_wide, user_organisation_kind
from core.choices import OrganisationKind, Role
from core.exceptions import NotFound
from core.services.audit import audit_record
from dicom.models import Study

# A viewer session: a (user, study) pair unseen for this long is audited again when reopened.
OPEN_AUDIT_WINDOW = 30 * 60
_OPEN_KEY = "caravan:study-open:{user}:{study}:{orthanc_id}"


def _active_user(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def user_sees_all_studies(user) -> bool:
    """Only superusers see every study; every other role sees its own tenant's."""
    return user_is_platform_wide(user)


def studies_visible_to(user) -> QuerySet[Study]:
    """Every study ``user`` may see (a selector; no audit: listing is not opening)."""
    studies = Study.objects.all()
    if not _active_user(user):
        return studies.none()
    if user_sees_all_studies(user):
        return studies
    kind = user_organisation_kind(user)
    allowed: list[Q] = []
    if kind == OrganisationKind.OPERATOR and user.has_role(Role.QC_OFFICER, Role.ADMIN):
        allowed.append(Q(unit__operator_id=user.organisation_id))
    if kind == OrganisationKind.READING_GROUP and user.has_role(Role.QC_OFFICER):
        allowed.append(Q(reading_task__pool__reading_group_id=user.organisation_id))
    if kind == OrganisationKind.HOSPITAL and user.has_role(Role.HOSPITAL_USER):
        allowed.append(Q(hospital_id=user.organisation_id))
    if kind == OrganisationKind.READING_GROUP and user.has_role(Role.RADIOLOGIST):
        # Imported here: telerad depends on dicom, not the other way round at import time.
        from telerad.models import ReadingTask

        reader = Q(claimed_by=user) | Q(assigned_to__user=user) | Q(eligible__user=user)
        allowed.append(Q(pk__in=ReadingTask.objects.filter(reader).values("study_id")))
    if not allowed:
        return studies.none()
    condition = allowed[0]
    for extra in allowed[1:]:
        condition |= extra
    return studies.filter(condition)


def study_visible_to(user, study: Study) -> bool:
    if not _active_user(user):
        return False
    if user_sees_all_studies(user):
        return True
    return studies_visible_to(user).filter(pk=study.pk).exists()


def study_get_for_user(user, study_instance_uid: str) -> Study:
    """The study with this Study Instance UID if ``user`` may see it, else ``NotFound``.

    The same error for a study that does not exist and one the user may not see.
    """
    study = studies_visible_to(user).filter(study_instance_uid=study_instance_uid).first()
    if study is None:
        raise NotFound("No study matches the given Study Instance UID")
    return study


def _open_key(user, study: Study) -> str:
    # The Orthanc id (a hash of patient and study UIDs) keeps a reused primary key, e.g. after
    # a restored backup or a rolled-back test, from inheriting another study's session.
    return _OPEN_KEY.format(user=user.pk, study=study.pk, orthanc_id=study.orthanc_id)


def study_audit_open(*, user, study: Study, request: HttpRequest | None = None, via: str = "") -> bool:
    """Record ``study.open`` unless this user opened this study within the window.

    Returns whether an entry was written. ``cache.add`` is atomic (Redis SET NX), so parallel
    first requests (metadata and frames fetched at once) still write one entry; later
    requests slide the window. If the audit write fails, the mark is removed so the next
    request tries again: data is never served unaudited on a stale mark.
    """
    key = _open_key(user, study)
    if not cache.add(key, 1, timeout=OPEN_AUDIT_WINDOW):
        cache.touch(key, timeout=OPEN_AUDIT_WINDOW)
        return False
    try:
        audit_record(
            actor=user,
            action="study.open",
            obj=study,
            patient_data=True,
            patient_id=study.patient_id,
            details={"via": via} if via else None,
            request=request,
        )
    except BaseException:
        cache.delete(key)
        raise
    return True


def study_open_for_user(
    user, study_instance_uid: str, *, request: HttpRequest | None = None, via: str = ""
) -> Study:
    """``study_get_for_user`` plus the ``study.open`` audit: for views that show a study's data."""
    study = study_get_for_user(user, study_instance_uid)
    study_audit_open(user=user, study=study, request=request, via=via)
    return study
