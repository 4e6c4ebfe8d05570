from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import demo_data as d
from core.choices import OrganisationKind, Role
from core.models import Organisation, User
from core.services import organisation_create, user_assign_role, user_create
from fleet.choices import CredentialKind, CrewRole, LicenceKind
from fleet.models import CrewCredential, CrewMember, EquipmentQC, Licence, Unit
from fleet.selectors import REQUIRED_LICENCES
from fleet.services import (
    crew_credential_add,
    crew_member_add,
    equipment_qc_record,
    licence_add,
    unit_register,
)
from telerad.models import Radiologist, ReadingPool
from telerad.services.profiles import radiologist_profile_set


def _org(name: str, kind: str, region: str, lat: float, lon: float, address: str = "") -> Organisation:
    existing = Organisation.objects.filter(name=name).first()
    if existing is not None:
        return existing
    return organisation_create(
        actor=None, name=name, kind=kind, region_code=region, latitude=lat, longitude=lon, address=address
    )


# A unit the demo keeps off the road: its radiation safety licence lapsed (name, modality, AE
# title, model, capacity, depot); the register shows it as not dispatchable, with the reason.
LAPSED_UNIT = (
    "DR Van 2",
    "DX",
    "CARAVAN_DX02",
    "Digital radiography, wireless detector",
    80,
    "Yichang depot",
)
LAPSED_LICENCE = LicenceKind.RADIATION_SAFETY
LICENCE_ISSUERS = {
    LicenceKind.INSTITUTION: "Hubei Provincial Health Commission",
    LicenceKind.LARGE_EQUIPMENT: "National Health Commission",
    LicenceKind.RADIATION_SAFETY: "Hubei Department of Ecology and Environment",
    LicenceKind.VEHICLE_REGISTRATION: "Yichang Vehicle Administration",
}
CREDENTIALS = {
    CrewRole.DRIVER: CredentialKind.DRIVING_LICENCE,
    CrewRole.RADIOGRAPHER: CredentialKind.RADIOGRAPHER,
    CrewRole.TECHNOLOGIST: CredentialKind.MR_SAFETY,
}
# Today's passing phantom check per modality, so the vans' worklists are served.
DEMO_QC = {
    "CT": {"hu_mean": 0.6, "noise_sd": 4.8, "uniformity_hu": 1.9},
    "MR": {"snr": 92.0, "piu_percent": 93.1},
    "DX": {"dead_pixels": 7, "uniformity_deviation_percent": 1.8},
}


def _user(username: str, org: Organisation, role: str, first: str = "", last: str = "") -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = user_create(
            actor=None,
            username=username,
            password=d.DEMO_PASSWORD,
            organisation=org,
            roles=[role],
            first_name=first,
            last_name=last,
        )
    elif not user.has_role(role):
        user_assign_role(actor=None, user=user, role=role)
    return user


class Command(BaseCommand):
    help = "Load the demo world (idempotent): operator, hospitals, vans, crews, readers, one user per role."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="allow in production (demo passwords!)")

    @transaction.atomic
    def handle(self, *args, force=False, **options):
        if settings.CARAVAN_ENV == "production" and not force:
            raise CommandError("Refusing to load demo users with known passwords in production (use --force)")
        op_name, op_region, op_lat, op_lon, op_address = d.OPERATOR
        operator = _org(op_name, OrganisationKind.OPERATOR, op_region, op_lat, op_lon, op_address)
        hospitals = [_org(n, OrganisationKind.HOSPITAL, r, lat, lon) for n, r, lat, lon in d.HOSPITALS]
        groups = [_org(n, OrganisationKind.READING_GROUP, r, lat, lon) for n, r, lat, lon in d.READING_GROUPS]

        units = {}
        for name, modality, aet, model, capacity, depot in [*d.UNITS, LAPSED_UNIT]:
            unit = Unit.objects.filter(name=name).first()
            if unit is None:
                lat, lon = d.DEPOTS[depot]
                unit = unit_register(
                    actor=None,
                    operator=operator,
                    name=name,
                    modality=modality,
                    ae_title=aet,
                    capacity_per_day=capacity,
                    depot_name=depot,
                    depot_latitude=lat,
                    depot_longitude=lon,
                    scanner_model=model,
                )
            units[name] = unit

        owners = {"operator": operator}
        owners.update({f"hospital:{i}": h for i, h in enumerate(hospitals)})
        owners.update({f"group:{i}": g for i, g in enumerate(groups)})
        staff = {username: _user(username, owners[org_key], role) for username, role, org_key in d.STAFF}
        admin = staff["admin"]
        if not admin.is_superuser:
            admin.is_staff = admin.is_superuser = True
            admin.save(update_fields=["is_staff", "is_superuser"])

        for full_name, crew_role, unit_name, username in d.CREW:
            if not CrewMember.objects.filter(operator=operator, full_name=full_name).exists():
                crew_member_add(
                    actor=None,
                    operator=operator,
                    full_name=full_name,
                    role=crew_role,
                    unit=units[unit_name],
                    user=staff.get(username) if username else None,
                )

        for username, first, last, group_idx, subs, regions, on_shift in d.RADIOLOGISTS:
            user = _user(username, groups[group_idx], Role.RADIOLOGIST, first, last)
            if not Radiologist.objects.filter(user=user).exists():
                radiologist_profile_set(
                    actor=None, user=user, subspecialties=subs, licensed_regions=regions, on_shift=on_shift
                )

        self._register(units)
        self._reading_pools(groups)
        from fleet.demo import demo_planning_load

        # Contracts and today's visits first: a hospital books only on a contracted van's visit.
        demo_planning_load(operator=operator, hospitals=hospitals, requester=staff["hospital"])
        self._sites_and_visits(hospitals, units, staff["hospital"])
        self._book_orders(staff["hospital"], units)

        self.stdout.write(
            f"Demo ready: {Organisation.objects.count()} organisations, {Unit.objects.count()} units, "
            f"{CrewMember.objects.count()} crew, {Radiologist.objects.count()} radiologists, "
            f"{ReadingPool.objects.count()} reading pools, "
            f"{User.objects.count()} users. Demo password for every demo user: {d.DEMO_PASSWORD}"
        )

    def _register(self, units: dict[str, Unit]) -> None:
        """Licences, crew credentials and today's daily QC (idempotent: only what is missing)."""
        from datetime import timedelta

        from django.utils import timezone

        today = timezone.localdate()
        for unit in units.values():
            for kind in REQUIRED_LICENCES[unit.modality]:
                if Licence.objects.filter(unit=unit, kind=kind).exists():
                    continue
                lapsed = unit.name == LAPSED_UNIT[0] and kind == LAPSED_LICENCE
                licence_add(
                    actor=None,
                    unit=unit,
                    kind=kind,
                    number=f"{unit.ae_title}-{kind.upper()[:3]}-{today.year}",
                    issuer=LICENCE_ISSUERS[LicenceKind(kind)],
                    expires_on=today - timedelta(days=12) if lapsed else today + timedelta(days=300),
                )
            if not EquipmentQC.objects.filter(unit=unit, day=today).exists():
                equipment_qc_record(actor=None, unit=unit, measurements=dict(DEMO_QC[unit.modality]))
        for member in CrewMember.objects.filter(unit__in=units.values()):
            kind = CREDENTIALS[CrewRole(member.role)]
            if not CrewCredential.objects.filter(crew_member=member, kind=kind).exists():
                crew_credential_add(
                    actor=None,
                    crew_member=member,
                    kind=kind,
                    number=f"DEMO-{member.pk:04d}",
                    expires_on=today + timedelta(days=400),
                )

    def _reading_pools(self, groups: list[Organisation]) -> None:
        """One reading contract per demo group, its radiologists as members (idempotent by name)."""
        from telerad.services.routing import reading_pool_create

        for name, group_idx, regions, modalities, lead_username, sla in d.READING_POOLS:
            group = groups[group_idx]
            members = list(Radiologist.objects.filter(user__organisation=group))
            existing = ReadingPool.objects.filter(name=name).first()
            if existing is not None:
                existing.readers.add(*members)  # a reader added to the group since joins too
                continue
            reading_pool_create(
                actor=None,
                reading_group=group,
                name=name,
                regions=regions,
                modalities=modalities,
                lead=User.objects.get(username=lead_username),
                readers=members,
                sla_minutes=sla,
            )

    def _book_orders(self, hospital_user: User, units: dict) -> None:
        from datetime import date

        from django.utils import timezone

        from dicom.services.orders import order_create

        today = timezone.localdate()
        hospital = hospital_user.organisation
        if hospital is None:
            raise CommandError("the demo hospital user has no organisation")
        for i, (unit_name, procedure, modality, body_part, priority, pid, name, sex, birth) in enumerate(
            d.ORDERS
        ):
            # One key per demo booking and day: re-running the demo books nothing twice.
            order_create(
                actor=hospital_user,
                hospital=hospital,
                unit=units[unit_name],
                scheduled_date=today,
                requested_procedure=procedure,
                modality=modality,
                body_part=body_part,
                priority=priority,
                patient_id=pid,
                patient_name=name,
                patient_sex=sex,
                patient_birth_date=date.fromisoformat(birth),
                client_request_id=f"demo-{today.isoformat()}-{i}",
            )

    def _sites_and_visits(self, hospitals: list[Organisation], units: dict, hospital_user: User) -> None:
        """Geofences around every demo hospital and depot; today's visits for the demo's exams."""
        from django.utils import timezone

        from dicom.services.order_moves import orders_attach_visit
        from fleet.choices import SiteKind
        from fleet.models import Site, Visit

        for hospital in hospitals:
            if hospital.latitude is not None and hospital.longitude is not None:
                Site.objects.get_or_create(
                    kind=SiteKind.HOSPITAL,
                    name=hospital.name,
                    defaults={
                        "organisation": hospital,
                        "latitude": hospital.latitude,
                        "longitude": hospital.longitude,
                    },
                )
        for depot, (lat, lon) in d.DEPOTS.items():
            Site.objects.get_or_create(
                kind=SiteKind.DEPOT, name=depot, defaults={"latitude": lat, "longitude": lon}
            )
        today = timezone.localdate()
        if hospital_user.organisation_id is None:
            raise CommandError("the demo hospital user has no organisation")
        booked: dict[tuple[int, int], int] = {}
        for unit_name, *_ in d.ORDERS:
            key = (units[unit_name].pk, hospital_user.organisation_id)
            booked[key] = booked.get(key, 0) + 1
        for (unit_id, hospital_id), exams in booked.items():
            visit, created = Visit.objects.get_or_create(
                unit_id=unit_id, hospital_id=hospital_id, date=today, defaults={"exams_booked": exams}
            )
            if created:  # the van's own crew, credentialed above, so its exams may start
                visit.crew.set(CrewMember.objects.filter(unit_id=unit_id))
            orders_attach_visit(visit=visit)
