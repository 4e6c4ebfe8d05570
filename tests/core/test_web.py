import re
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from core.choices import OrganisationKind, Role
from core.workspaces import WORKSPACES, workspace_for_role
from tests.core.factories import OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-Caravan-123"  # set by UserFactory
ALL_SLUGS = {ws.slug for ws in WORKSPACES}


class AssetRefs(HTMLParser):
    """Collects the URLs a page makes the browser fetch by itself."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in {"script", "img", "iframe"} and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def asset_urls(html: str) -> list[str]:
    parser = AssetRefs()
    parser.feed(html)
    return parser.urls


def cards(response) -> set[str]:
    return set(re.findall(r'data-workspace-card="([^"]+)"', response.content.decode()))


def login(client, user, password=PASSWORD):
    return client.post(reverse("login"), {"username": user.username, "password": password}, follow=True)


# --- authentication ---------------------------------------------------------------------------


def test_anonymous_home_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_login_page_renders_labelled_form(client):
    response = client.get("/login/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'name="csrfmiddlewaretoken"' in html
    # No nav items for anonymous visitors, only the product name.
    assert "Sign out" not in html
    assert "data-workspace-card" not in html


@pytest.mark.parametrize("role", Role.values)
def test_login_lands_on_home_with_exactly_the_roles_workspace(client, role):
    user = UserFactory(roles=[role])
    response = login(client, user)
    assert response.redirect_chain == [("/", 302)]
    assert response.status_code == 200
    expected = workspace_for_role(role)
    assert cards(response) == {expected.slug}
    html = response.content.decode()
    for other in WORKSPACES:
        if other.slug != expected.slug:
            # (An administrator's links may point at pages inside another workspace, such as the
            # quality dashboards; the other workspace's own page is what must not be offered.)
            assert f'href="{reverse(other.url_name)}"' not in html, (
                f"{other.slug} leaked into a {role}'s page"
            )
    assert int(client.session["_auth_user_id"]) == user.pk


def test_home_shows_a_card_per_role_held(client):
    user = UserFactory(roles=[Role.DISPATCHER, Role.QC_OFFICER])
    client.force_login(user)
    response = client.get("/")
    assert cards(response) == {"dispatch", "quality"}


def test_nav_shows_name_organisation_and_roles(client):
    org = OrganisationFactory(name="Northside County Hospital", kind=OrganisationKind.OPERATOR)
    user = UserFactory(
        first_name="Dana", last_name="Ortiz", organisation=org, roles=[Role.DISPATCHER, Role.QC_OFFICER]
    )
    client.force_login(user)
    html = client.get("/").content.decode()
    nav = html[html.index("<nav") : html.index("</nav>")]
    assert "Dana Ortiz" in nav
    assert "Northside County Hospital" in nav
    assert "Dispatcher, QC officer" in nav
    # The nav lists the same workspaces as the cards, from the same registry.
    nav_links = re.findall(r'href="/workspace/([a-z]+)/" class="nav-workspace"', nav)
    assert set(nav_links) == {"dispatch", "quality"}


def test_admin_card_links_to_django_admin_and_api_docs(client):
    client.force_login(UserFactory(roles=[Role.ADMIN]))
    response = client.get("/")
    assert cards(response) == {"admin"}
    html = response.content.decode()
    assert 'href="/admin/"' in html
    assert 'href="/api/docs/"' in html


def test_superuser_sees_every_workspace(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    response = client.get("/")
    assert cards(response) == ALL_SLUGS
    assert "Superuser" in response.content.decode()


def test_user_without_role_is_told_to_contact_an_admin(client):
    client.force_login(UserFactory())
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert cards(response) == set()
    assert "No role assigned" in html
    assert "contact your administrator" in html
    assert "/workspace/" not in html


def test_wrong_password_shows_error_and_creates_no_session(client):
    user = UserFactory(roles=[Role.DISPATCHER])
    response = login(client, user, password="not-the-password")
    html = response.content.decode()
    assert response.status_code == 200
    assert response.redirect_chain == []
    assert "Please enter a correct username and password" in html
    assert 'aria-invalid="true"' in html
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302


def test_signed_in_user_visiting_login_goes_home(client):
    client.force_login(UserFactory(roles=[Role.DISPATCHER]))
    response = client.get("/login/")
    assert response.status_code == 302
    assert response["Location"] == "/"


# --- workspaces -------------------------------------------------------------------------------


@pytest.mark.parametrize("workspace", WORKSPACES, ids=lambda ws: ws.slug)
def test_workspace_opens_for_its_role_and_says_what_is_coming(client, workspace):
    client.force_login(UserFactory(roles=[workspace.role]))
    response = client.get(f"/workspace/{workspace.slug}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-workspace-page="{workspace.slug}"' in html
    # What is still to come is said only where something is; the links are always there.
    assert ("Still to come:" in html) == bool(workspace.coming)
    assert escape(workspace.coming) in html
    for _, href in workspace.links:
        assert f'href="{href}"' in html
    assert f'href="/workspace/{workspace.slug}/" class="nav-workspace" aria-current="page"' in html


@pytest.mark.parametrize("workspace", WORKSPACES, ids=lambda ws: ws.slug)
def test_workspace_of_another_role_is_forbidden(client, workspace):
    other_role = next(role for role in Role.values if role != workspace.role)
    client.force_login(UserFactory(roles=[other_role]))
    response = client.get(f"/workspace/{workspace.slug}/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "data-workspace-page" not in html
    assert not workspace.coming or escape(workspace.coming) not in html
    assert "Access denied" in html


def test_user_without_role_is_forbidden_everywhere(client):
    client.force_login(UserFactory())
    for ws in WORKSPACES:
        assert client.get(f"/workspace/{ws.slug}/").status_code == 403


def test_superuser_enters_every_workspace(client):
    client.force_login(UserFactory(is_superuser=True))
    for ws in WORKSPACES:
        assert client.get(f"/workspace/{ws.slug}/").status_code == 200


def test_anonymous_workspace_redirects_to_login(client):
    response = client.get("/workspace/reading/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/workspace/reading/"


# --- logout -----------------------------------------------------------------------------------


def test_logout_by_get_is_refused_and_keeps_the_session(client):
    user = UserFactory(roles=[Role.DISPATCHER])
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    assert int(client.session["_auth_user_id"]) == user.pk
    assert client.get("/").status_code == 200


def test_logout_form_posts_with_csrf_and_ends_the_session():
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(roles=[Role.DISPATCHER]))
    html = client.get("/").content.decode()
    form = re.search(r'<form method="post" action="/logout/".*?</form>', html, re.S).group(0)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)

    assert client.post("/logout/").status_code == 403  # without the token
    assert "_auth_user_id" in client.session

    response = client.post("/logout/", {"csrfmiddlewaretoken": token}, follow=True)
    assert response.redirect_chain == [("/login/", 302)]
    assert "You have signed out." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302


def test_htmx_requests_carry_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(roles=[Role.DISPATCHER]))
    html = client.get("/").content.decode()
    token = re.search(r"""<body hx-headers='\{"X-CSRFToken": "([^"]+)"\}'>""", html).group(1)
    response = client.post("/logout/", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


# --- assets: local only -----------------------------------------------------------------------


def test_api_docs_use_the_vendored_swagger_ui(client):
    response = client.get("/api/docs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<script src="/static/vendor/swagger-ui-dist/swagger-ui-bundle.js">' in html
    assert 'href="/static/vendor/swagger-ui-dist/swagger-ui.css"' in html
    assert all(url.startswith("/static/vendor/swagger-ui-dist/") for url in asset_urls(html))
    assert "cdn" not in html.lower()


def _pages(client):
    yield "login", client.get("/login/").content.decode()
    yield "api docs", client.get("/api/docs/").content.decode()
    client.force_login(UserFactory(is_superuser=True))
    yield "home", client.get("/").content.decode()
    yield "workspace", client.get("/workspace/dispatch/").content.decode()
    no_role = Client()
    no_role.force_login(UserFactory())
    forbidden = no_role.get("/workspace/dispatch/")
    assert forbidden.status_code == 403
    yield "403", forbidden.content.decode()


def test_pages_load_no_off_site_assets(client):
    for name, html in _pages(client):
        urls = asset_urls(html)
        assert urls, f"{name}: no assets found; the parser is not seeing the page"
        off_site = [url for url in urls if re.match(r"^(https?:)?//", url)]
        assert off_site == [], f"{name} loads {off_site}"
        assert not re.search(r"""(src|href)=["']https?://""", html), name


def test_every_static_asset_a_page_references_is_installed(client):
    """Catches a template and scripts/install_assets.sh disagreeing on a path."""
    for name, html in _pages(client):
        for url in asset_urls(html):
            if url.startswith("data:"):
                continue
            assert url.startswith("/static/"), f"{name}: {url}"
            path = url.removeprefix("/static/")
            assert finders.find(path), f"{name} references {url}, which is missing: run `make assets`"
