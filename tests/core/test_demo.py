import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core.choices import OrganisationKind, Role
from core.models import AuditEntry, Organisation, User
from core.services import audit_verify
from dicom.models import Order
from fleet.models import CrewMember, Unit
from telerad.models import Radiologist

pytestmark = pytest.mark.django_db


def _counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for app in ("core", "fleet", "telerad", "dicom")
        for model in apps.get_app_config(app).get_models()
    }


def test_demo_loads_the_documented_world():
    call_command("demo")
    assert Organisation.objects.filter(kind=OrganisationKind.OPERATOR).count() == 1
    assert Organisation.objects.filter(kind=OrganisationKind.HOSPITAL).count() == 12
    assert Organisation.objects.filter(kind=OrganisationKind.READING_GROUP).count() == 2
    assert sorted(Unit.objects.values_list("modality", flat=True)) == ["CT", "CT", "DX", "DX", "MR"]
    assert CrewMember.objects.count() == 8
    assert Radiologist.objects.count() == 6
    assert set(Radiologist.objects.values_list("user__organisation__name", flat=True)) == set(
        Organisation.objects.filter(kind=OrganisationKind.READING_GROUP).values_list("name", flat=True)
    )
    for role in Role.values:
        assert User.objects.filter(groups__name=role).exists(), role
    for username in ("dispatcher", "tech", "radiologist", "hospital", "qc", "admin"):
        assert User.objects.get(username=username).check_password("caravan-demo")
    hospitals = Organisation.objects.filter(kind=OrganisationKind.HOSPITAL)
    assert all(29 < h.latitude < 33 and 109 < h.longitude < 113 for h in hospitals)  # Hubei
    orders = Order.objects.filter(scheduled_date=timezone.localdate())
    assert sorted(orders.values_list("modality", flat=True)) == ["CT", "CT", "CT", "DX", "MR"]
    assert {o.unit.modality for o in orders} == {"CT", "MR", "DX"}
    # Geofences around every hospital and both depots; today's visits carry the booked exams.
    from fleet.models import Site, Visit

    assert (
        Site.objects.filter(kind="hospital").count() == 12 and Site.objects.filter(kind="depot").count() == 2
    )
    visits = Visit.objects.filter(date=timezone.localdate())
    assert sum(v.exams_booked for v in visits) == orders.count()
    assert {(v.unit_id, v.hospital_id) for v in visits} == {(o.unit_id, o.hospital_id) for o in orders}
    from fleet.selectors import visit_check_crew

    assert [visit_check_crew(v) for v in visits] == [[] for _ in visits]  # crewed: exams may start
    # The planner's world: every hospital contracted for CT, MRI and DR; twelve requests to plan,
    # and vans the planner can use (licensed and crewed), the lapsed DR van excepted.
    import datetime as dt

    from fleet.models import ServiceContract, ServiceRequest
    from fleet.planning.inputs import plan_input_build

    assert ServiceContract.objects.count() == 36
    assert ServiceRequest.objects.filter(status="submitted").count() == 12
    operator = Organisation.objects.get(kind=OrganisationKind.OPERATOR)
    inp = plan_input_build(operator_id=operator.pk, start=timezone.localdate() + dt.timedelta(days=1), days=7)
    assert len(inp.requests) == 12
    working = {Unit.objects.get(pk=u.id).name for u in inp.units if u.available_days}
    assert working == set(Unit.objects.exclude(name="DR Van 2").values_list("name", flat=True))
    # Tenancy: the demo's operator staff belong to the operator whose vans scan; they see every
    # order booked on them, and its QC officer and admin the studies acquired for them.
    from core.access import scope_for_user
    from dicom.study_access import studies_visible_to
    from tests.dicom.factories import StudyFactory

    staff = {name: User.objects.get(username=name) for name in ("dispatcher", "qc", "admin")}
    assert {user.organisation for user in staff.values()} == {operator}
    assert set(Unit.objects.values_list("operator_id", flat=True)) == {operator.pk}
    for user in staff.values():
        assert set(scope_for_user(user, Order.objects.all())) == set(Order.objects.all())
    study = StudyFactory(order=orders.first())  # as ingest leaves it: the order's van and hospital
    assert [list(studies_visible_to(staff[name])) for name in ("qc", "admin")] == [[study], [study]]
    assert list(studies_visible_to(staff["dispatcher"])) == []
    assert audit_verify().ok


def test_demo_is_idempotent():
    call_command("demo")
    first = _counts()
    call_command("demo")
    assert _counts() == first
    assert first["core.AuditEntry"] == AuditEntry.objects.count() > 0


def test_demo_refuses_production_without_force(settings):
    settings.CARAVAN_ENV = "production"
    with pytest.raises(CommandError, match="production"):
        call_command("demo")
    assert User.objects.count() == 0
