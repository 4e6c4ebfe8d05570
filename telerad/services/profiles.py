"""Reader profiles and shifts."""

from __future__ import annotations

from django.db import transaction

from core.choices import Role
from core.exceptions import InvalidInput
from core.models import User
from core.services import audit_record
from telerad.models import Radiologist


@transaction.atomic
def radiologist_profile_set(
    *,
    actor: User | None,
    user: User,
    subspecialties: list[str],
    licensed_regions: list[str],
    on_shift: bool,
    max_concurrent: int = 3,
) -> Radiologist:
    if not user.has_role(Role.RADIOLOGIST):
        raise InvalidInput(f"{user.username!r} does not hold the radiologist role")
    if max_concurrent < 1:
        raise InvalidInput("max_concurrent must be at least 1")
    profile, created = Radiologist.objects.update_or_create(
        user=user,
        defaults={
            "subspecialties": sorted(set(subspecialties)),
            "licensed_regions": sorted(set(licensed_regions)),
            "on_shift": on_shift,
            "max_concurrent": max_concurrent,
        },
    )
    audit_record(
        actor=actor,
        action="radiologist.profile_create" if created else "radiologist.profile_update",
        obj=profile,
        details={"on_shift": on_shift, "max_concurrent": max_concurrent},
    )
    return profile


@transaction.atomic
def radiologist_shift_set(*, actor: User | None, radiologist: Radiologist, on_shift: bool) -> Radiologist:
    """A reader comes on or goes off shift. Going off escalates what nobody on shift can read now."""
    from telerad.services.escalation import escalate_uncovered_tasks

    changed = (
        Radiologist.objects.filter(pk=radiologist.pk).exclude(on_shift=on_shift).update(on_shift=on_shift)
    )
    radiologist.refresh_from_db()
    if not changed:
        return radiologist
    audit_record(actor=actor, action="radiologist.shift", obj=radiologist, details={"on_shift": on_shift})
    if not on_shift:
        escalate_uncovered_tasks(pool_ids=radiologist.pools.values_list("pk", flat=True))
    return radiologist
