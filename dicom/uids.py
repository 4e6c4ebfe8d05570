"""The one UID generator: every UID the platform mints comes from here, under DICOM_UID_ROOT."""

from __future__ import annotations

from django.conf import settings
from pydicom.uid import generate_uid


def new_uid(entropy: list[str] | None = None) -> str:
    """A fresh UID under our root; with ``entropy`` the same inputs give the same UID."""
    return str(generate_uid(prefix=settings.DICOM_UID_ROOT, entropy_srcs=entropy))
