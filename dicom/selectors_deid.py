"""Reads of de-identified exports (dicom/services/deid.py), for QC officers and admins."""

from __future__ import annotations

from django.db.models import QuerySet

from core.access import scope_for_user
from core.exceptions import NotFound
from dicom.models import DeidExport, Study
from dicom.services.deid import ALLOWED_ROLES
from dicom.study_access import studies_visible_to, user_sees_all_studies


def study_for_export(user, study_id: int) -> Study:
    """A study ``user`` may see, else ``NotFound`` (the same answer for one that does not exist)."""
    study = studies_visible_to(user).filter(pk=study_id).first()
    if study is None:
        raise NotFound("No study matches the given id")
    return study


def deid_export_list_for_user(
    user, *, study: int | None = None, project: str | None = None
) -> QuerySet[DeidExport]:
    """Exports of the studies ``user`` may see, newest first; the UID maps are not loaded."""
    if not (getattr(user, "is_authenticated", False) and user.has_role(*ALLOWED_ROLES)):
        return DeidExport.objects.none()
    exports = scope_for_user(user, DeidExport.objects.all())
    if not user_sees_all_studies(user):
        exports = exports.filter(study__in=studies_visible_to(user))
    if study is not None:
        exports = exports.filter(study_id=study)
    if project:
        exports = exports.filter(project=project)
    # The original-to-copy UID maps can hold thousands of entries and are never shown.
    return (
        exports.select_related("requested_by")
        .defer("instance_uids", "series_uids", "frame_of_reference_uids")
        .order_by("-created_at", "-pk")
    )


def deid_export_get_for_user(user, pk: int) -> DeidExport:
    export = deid_export_list_for_user(user).filter(pk=pk).first()
    if export is None:
        raise NotFound("No de-identified export matches the given id")
    return export
