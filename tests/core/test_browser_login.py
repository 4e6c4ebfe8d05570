import os

import pytest
from playwright.sync_api import expect, sync_playwright

from core.choices import OrganisationKind, Role
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.core.factories import OrganisationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        yield context.new_page()
        context.close()
        browser.close()


def test_dispatcher_logs_in_and_sees_the_dispatch_workspace(live_server, page):
    org = OrganisationFactory(name="Caravan Mobile Imaging", kind=OrganisationKind.OPERATOR)
    UserFactory(
        username="dana", first_name="Dana", last_name="Ortiz", organisation=org, roles=[Role.DISPATCHER]
    )
    requested: list[str] = []
    failed: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "response",
        lambda response: response.status < 400 or failed.append(f"{response.status} {response.url}"),
    )

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill("pw-Caravan-123")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Welcome, Dana Ortiz")).to_be_visible()
    dispatch_card = page.locator('[data-workspace-card="dispatch"]')
    expect(dispatch_card).to_be_visible()
    expect(page.locator("[data-workspace-card]")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Caravan Mobile Imaging")
    # Pico and caravan.css really applied (not just referenced): the header takes its colour.
    header_bg = page.locator(".site-header").evaluate("el => getComputedStyle(el).backgroundColor")
    assert header_bg == "rgb(15, 59, 87)"
    assert page.evaluate("typeof window.htmx") == "object"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home-dispatcher.png"), full_page=True)

    dispatch_card.get_by_role("link", name="Dispatch").click()
    expect(page).to_have_url(f"{live_server.url}/workspace/dispatch/")
    expect(page.get_by_text("Still to come:")).to_be_visible()
    expect(page.get_by_role("link", name="Visit plans")).to_be_visible()

    assert failed == []
    off_site = [url for url in requested if not url.startswith(live_server.url)]
    assert off_site == []
