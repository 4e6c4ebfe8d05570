import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from core.access import get_for_user, scope_for_user
from core.api.exception_handler import exception_handler
from core.choices import OrganisationKind, Role
from core.exceptions import AccessDenied, Conflict, InvalidInput, NotFound
from core.models import AuditEntry, Organisation, User
from core.roles import ROLE_PERMISSIONS
from core.services import audit_record, user_assign_role, user_create
from tests.core.factories import OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_every_role_has_a_group_with_exactly_its_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= set(Role.values)
    for role in Role.values:
        perms = {
            f"{app}.{code}"
            for app, code in Group.objects.get(name=role).permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        assert perms == ROLE_PERMISSIONS[role]


def test_user_create_assigns_roles_and_audits():
    hospital = OrganisationFactory(kind=OrganisationKind.HOSPITAL)
    user = user_create(
        actor=None, username="h1", password="s3cret-pass!", organisation=hospital, roles=["hospital_user"]
    )
    assert user.roles == {"hospital_user"}
    assert user.check_password("s3cret-pass!")
    actions = list(AuditEntry.objects.values_list("action", "object_id"))
    assert actions == [("user.create", str(user.pk)), ("user.role_assign", str(user.pk))]


def test_unknown_role_is_refused_and_nothing_created():
    hospital = OrganisationFactory(kind=OrganisationKind.HOSPITAL)
    with pytest.raises(InvalidInput, match="Unknown role 'surgeon'"):
        user_create(actor=None, username="x", password="pw", organisation=hospital, roles=["surgeon"])
    assert not User.objects.filter(username="x").exists()
    assert AuditEntry.objects.count() == 0


def test_unknown_role_on_the_command_line_fails_with_a_clear_message():
    OrganisationFactory(name="Zigui", kind=OrganisationKind.HOSPITAL)
    with pytest.raises(CommandError, match="Unknown role 'surgeon'; valid roles: dispatcher"):
        call_command("user_create", "x", "--organisation", "Zigui", "--role", "surgeon")
    assert not User.objects.filter(username="x").exists()


def test_role_must_fit_the_organisation_kind():
    user = UserFactory(organisation=OrganisationFactory(kind=OrganisationKind.HOSPITAL))
    with pytest.raises(
        InvalidInput, match="Role 'radiologist' belongs to organisations of kind reading_group"
    ):
        user_assign_role(actor=None, user=user, role="radiologist")
    assert user.groups.count() == 0


def test_duplicate_username_is_a_conflict():
    user = UserFactory()
    with pytest.raises(Conflict):
        user_create(
            actor=None, username=user.username, password=None, organisation=user.organisation, roles=[]
        )


def test_scoping_refuses_another_organisations_object():
    a, b = OrganisationFactory(), OrganisationFactory()
    alice = UserFactory(organisation=a, roles=["hospital_user"])
    bob = UserFactory(organisation=b, roles=["hospital_user"])
    assert get_for_user(alice, User.objects.all(), pk=alice.pk) == alice
    with pytest.raises(NotFound):
        get_for_user(alice, User.objects.all(), pk=bob.pk)
    assert list(scope_for_user(alice, Organisation.objects.all())) == [a]


def test_operator_staff_see_their_own_operator_only_superusers_all_and_anonymous_nothing():
    from django.contrib.auth.models import AnonymousUser

    from dicom.models import Order
    from tests.dicom.factories import OrderFactory
    from tests.fleet.factories import UnitFactory

    operator, rival = (OrganisationFactory(kind=OrganisationKind.OPERATOR) for _ in range(2))
    dispatcher = UserFactory(organisation=operator, roles=["dispatcher"])
    colleague = UserFactory(organisation=operator, roles=["qc_officer"])
    rival_dispatcher = UserFactory(organisation=rival, roles=["dispatcher"])
    mine = OrderFactory(unit=UnitFactory(operator=operator))  # any hospital's, on our van
    theirs = OrderFactory(unit=UnitFactory(operator=rival))
    hospital_user = mine.created_by
    root = UserFactory(is_superuser=True)

    # Their own operator's rows: its staff, and the orders booked on its vans (whatever hospital).
    assert get_for_user(dispatcher, User.objects.all(), pk=colleague.pk) == colleague
    assert set(scope_for_user(dispatcher, User.objects.all())) == {dispatcher, colleague}
    assert get_for_user(dispatcher, Order.objects.all(), pk=mine.pk) == mine
    assert list(scope_for_user(dispatcher, Order.objects.all())) == [mine]
    assert list(scope_for_user(dispatcher, Organisation.objects.all())) == [operator]
    # Not another operator's, nor a hospital's own users.
    for row, queryset in (
        (rival_dispatcher, User.objects.all()),
        (hospital_user, User.objects.all()),
        (theirs, Order.objects.all()),
    ):
        with pytest.raises(NotFound):
            get_for_user(dispatcher, queryset, pk=row.pk)
    assert list(scope_for_user(rival_dispatcher, Order.objects.all())) == [theirs]
    # A superuser sees every tenant's rows; signed out, nothing.
    assert set(scope_for_user(root, Order.objects.all())) == {mine, theirs}
    assert get_for_user(root, User.objects.all(), pk=rival_dispatcher.pk) == rival_dispatcher
    assert scope_for_user(AnonymousUser(), User.objects.all()).count() == 0
    assert scope_for_user(AnonymousUser(), Order.objects.all()).count() == 0


@pytest.mark.parametrize(
    ("error", "status"),
    [(InvalidInput("bad"), 400), (AccessDenied("no"), 403), (NotFound("?"), 404), (Conflict("x"), 409)],
)
def test_exception_handler_maps_domain_errors(error, status):
    response = exception_handler(error, {})
    assert response.status_code == status
    assert response.data["detail"] == error.message


def test_api_needs_authentication_and_token_auth_works():
    client = APIClient()
    assert client.get("/api/me/").status_code == 401
    user = UserFactory(roles=["hospital_user"])
    token = client.post("/api/auth/token/", {"username": user.username, "password": "pw-Caravan-123"}).data[
        "token"
    ]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = client.get("/api/me/").json()
    assert body == {
        "username": user.username,
        "organisation": user.organisation.name,
        "organisation_kind": "hospital",
        "roles": ["hospital_user"],
    }


def test_api_schema_is_served():
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/health/" in response.content


def test_admin_shows_audit_entries_read_only(admin_client):
    entry = audit_record(actor=None, action="probe")
    page = admin_client.get(f"/admin/core/auditentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(f"/admin/core/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
