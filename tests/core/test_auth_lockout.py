"""Sign-in lockout (django-axes) on /login/ and POST /api/auth/token/, and the token endpoint's throttle.

AUTH_LOCKOUT_FAILURES (50) wrong passwords for one username from one address lock that pair for
AUTH_LOCKOUT_MINUTES (30) after the last failure; the right password is refused meanwhile; the
lock is audited. Time is moved with tests.core.auth_support.Clock, never slept.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command

from core.choices import Role
from core.models import AuditEntry
from tests.core.auth_support import PASSWORD
from tests.core.factories import UserFactory

pytestmark = pytest.mark.django_db
WRONG = "not-the-password-1"
OTHER_ADDRESS = "10.20.30.40"


@pytest.fixture(autouse=True)
def _roomy_token_throttle(settings):
    # These tests make 50+ token requests from one address; the throttle has its own test below.
    settings.AUTH_THROTTLE_RATE = "1000/min"


def _web(client, username, password, address="127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def _api(client, username, password, address="127.0.0.1"):
    return client.post("/api/auth/token/", {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def _actions():
    entries = AuditEntry.objects.filter(action__startswith="auth.").order_by("id")
    return list(entries.values_list("action", flat=True))


def test_the_defaults_are_fifty_failures_and_thirty_minutes(settings):
    assert (settings.AUTH_LOCKOUT_FAILURES, settings.AUTH_LOCKOUT_MINUTES) == (50, 30)
    assert settings.AXES_FAILURE_LIMIT == 50
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 30 * 60


def test_fifty_wrong_passwords_lock_the_web_login_until_the_cool_off_passes(client, clock):
    user = UserFactory(username="dana", roles=[Role.DISPATCHER])

    for attempt in range(1, 50):
        response = _web(client, "dana", WRONG)
        assert response.status_code == 200, attempt  # the form again, with its error
    assert _actions() == ["auth.login_failed"] * 49
    locking = _web(client, "dana", WRONG)
    assert locking.status_code == 429
    assert locking["Retry-After"] == str(30 * 60)
    assert "Sign-in is locked" in locking.content.decode() and "30 more minutes" in locking.content.decode()

    [lockout] = AuditEntry.objects.filter(action="auth.lockout")
    assert lockout.actor_id is None and lockout.source_ip == "127.0.0.1"
    assert lockout.details_data == {"channel": "web", "username": "dana", "failures": 50, "minutes": 30}
    assert _actions() == ["auth.login_failed"] * 50 + ["auth.lockout"]

    clock.advance(minutes=10)
    refused = _web(client, "dana", PASSWORD)
    assert refused.status_code == 429 and not _signed_in(client)
    assert "20 more minutes" in refused.content.decode()
    assert int(refused["Retry-After"]) == 20 * 60
    last = AuditEntry.objects.order_by("-id").first()
    assert (last.action, last.details_data) == (
        "auth.login_failed",
        {"channel": "web", "username": "dana", "reason": "locked_out"},
    )

    clock.advance(minutes=20, seconds=-1)  # one second before the lock ends: still refused
    assert _web(client, "dana", PASSWORD).status_code == 429 and not _signed_in(client)

    clock.advance(seconds=2)
    signed_in = _web(client, "dana", PASSWORD)
    assert signed_in.status_code == 302 and _signed_in(client)
    assert AuditEntry.objects.filter(action="auth.login", actor=user).count() == 1
    assert AuditEntry.objects.filter(action="auth.lockout").count() == 1
    assert not AccessAttempt.objects.exists()  # a success clears the pair's failures


def test_fifty_wrong_passwords_lock_the_token_endpoint(client, clock):
    user = UserFactory(username="api-user", roles=[Role.RADIOLOGIST])

    statuses = [_api(client, "api-user", WRONG).status_code for _ in range(50)]
    assert statuses == [400] * 49 + [429]
    [lockout] = AuditEntry.objects.filter(action="auth.lockout")
    assert lockout.details_data == {"channel": "api", "username": "api-user", "failures": 50, "minutes": 30}

    refused = _api(client, "api-user", PASSWORD)
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": "Too many failed sign-ins for this account from your address; try again in 30 minutes.",
        "code": "locked_out",
    }
    assert refused["Retry-After"] == str(30 * 60)
    assert "token" not in refused.json()
    assert user.auth_token_set.count() == 0

    clock.advance(minutes=30, seconds=1)
    granted = _api(client, "api-user", PASSWORD)
    assert granted.status_code == 200 and len(granted.json()["token"]) == 64
    assert user.auth_token_set.count() == 1


def test_web_and_api_failures_count_together(client):
    UserFactory(username="dana", roles=[Role.DISPATCHER])
    for _ in range(25):
        _web(client, "dana", WRONG)
    for _ in range(24):
        assert _api(client, "dana", WRONG).status_code == 400
    assert _api(client, "dana", WRONG).status_code == 429
    assert _web(client, "dana", PASSWORD).status_code == 429


def test_the_lock_holds_one_username_at_one_address_only(client):
    UserFactory(username="dana", roles=[Role.DISPATCHER])
    UserFactory(username="lee", roles=[Role.DISPATCHER])
    for _ in range(50):
        _web(client, "dana", WRONG)
    assert _web(client, "dana", PASSWORD).status_code == 429

    # The attacker's address cannot lock dana out of her own workstation...
    assert _api(client, "dana", PASSWORD, address=OTHER_ADDRESS).status_code == 200
    assert _web(client, "dana", PASSWORD, address=OTHER_ADDRESS).status_code == 302
    client.logout()
    # ...nor lock a colleague out by failing as dana.
    assert _web(client, "lee", PASSWORD).status_code == 302


def test_failures_below_the_limit_are_forgotten_after_a_success(client):
    UserFactory(username="dana", roles=[Role.DISPATCHER])
    for _ in range(49):
        _web(client, "dana", WRONG)
    assert _web(client, "dana", PASSWORD).status_code == 302
    client.logout()
    for _ in range(49):
        assert _web(client, "dana", WRONG).status_code == 200
    assert not AuditEntry.objects.filter(action="auth.lockout").exists()


def test_a_token_request_with_the_right_password_also_forgets_the_failures(client):
    user = UserFactory(username="api-user", roles=[Role.RADIOLOGIST])
    for _ in range(49):
        _api(client, "api-user", WRONG)
    assert _api(client, "api-user", PASSWORD).status_code == 200
    user.refresh_from_db()
    assert user.last_login is not None
    assert [_api(client, "api-user", WRONG).status_code for _ in range(49)] == [400] * 49
    assert _api(client, "api-user", PASSWORD).status_code == 200


def test_an_administrator_unlocks_with_axes_reset_username(client):
    UserFactory(username="dana", roles=[Role.DISPATCHER])
    for _ in range(50):
        _web(client, "dana", WRONG)
    assert _web(client, "dana", PASSWORD).status_code == 429

    call_command("axes_reset_username", "dana")

    assert _web(client, "dana", PASSWORD).status_code == 302 and _signed_in(client)


def test_the_limit_and_cool_off_are_settings(client, settings, clock):
    settings.AUTH_LOCKOUT_FAILURES = settings.AXES_FAILURE_LIMIT = 3
    settings.AUTH_LOCKOUT_MINUTES = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=5)
    UserFactory(username="dana", roles=[Role.DISPATCHER])

    assert [_web(client, "dana", WRONG).status_code for _ in range(3)] == [200, 200, 429]
    assert AuditEntry.objects.get(action="auth.lockout").details_data["minutes"] == 5
    clock.advance(minutes=5, seconds=1)
    assert _web(client, "dana", PASSWORD).status_code == 302


def test_token_endpoint_throttle_answers_429_with_retry_after(client, settings, clock):
    settings.AUTH_THROTTLE_RATE = "30/min"  # the default, which the autouse fixture raised
    UserFactory(username="api-user", roles=[Role.RADIOLOGIST])

    assert [_api(client, "api-user", PASSWORD).status_code for _ in range(30)] == [200] * 30
    throttled = _api(client, "api-user", PASSWORD)
    assert throttled.status_code == 429
    assert 1 <= int(throttled["Retry-After"]) <= 60
    # Another address has its own budget.
    assert _api(client, "api-user", PASSWORD, address=OTHER_ADDRESS).status_code == 200

    clock.advance(seconds=61)
    assert _api(client, "api-user", PASSWORD).status_code == 200


def test_the_lockout_exports_to_atna_as_a_security_alert(client):
    import xml.etree.ElementTree as ET

    from core.services.audit_export import atna_messages

    UserFactory(username="dana", roles=[Role.DISPATCHER])
    for _ in range(50):
        _web(client, "dana", WRONG)
    [message] = [
        ET.fromstring(xml) for xml in atna_messages(list(AuditEntry.objects.filter(action="auth.lockout")))
    ]
    assert message.find("EventIdentification").find("EventID").get("csd-code") == "110113"


def test_the_lockout_page_is_served_through_the_asgi_stack_too():
    # Production runs daphne: the middleware chain is async there (AxesMiddleware.__acall__).
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    UserFactory(username="dana", roles=[Role.DISPATCHER])
    client = AsyncClient()

    async def post(password):
        return await client.post("/login/", {"username": "dana", "password": password})

    statuses = [async_to_sync(post)(WRONG).status_code for _ in range(50)]
    assert statuses == [200] * 49 + [429]
    refused = async_to_sync(post)(PASSWORD)
    assert refused.status_code == 429 and "Sign-in is locked" in refused.content.decode()
