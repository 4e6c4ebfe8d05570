"""Expiring, hashed API tokens (django-rest-knox) on the DRF API, the websockets and the DICOMweb proxy.

A token stops working after API_TOKEN_TTL_HOURS (12), after its user's password changes, after
the user is deactivated and after the user revokes it; missing or bad credentials are a 401.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.forms import SetPasswordForm
from django.test import AsyncClient, Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from knox.models import AuthToken
from rest_framework.test import APIClient

from config.asgi import application
from core.choices import Role
from core.models import AuditEntry, User
from tests.core.auth_support import PASSWORD
from tests.core.factories import UserFactory

pytestmark = pytest.mark.django_db
ORIGIN = (b"origin", b"http://localhost")
NEW_PASSWORD = "another-Caravan-456"


def _issue(username: str, password: str = PASSWORD) -> str:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _me(key: str | None) -> int:
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/me/").status_code


def _post(path: str, key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.post(path).status_code


@pytest.fixture
def dana():
    return UserFactory(username="dana", roles=[Role.DISPATCHER])


def test_the_token_is_shown_once_and_stored_hashed_with_its_expiry(dana, settings):
    assert settings.API_TOKEN_TTL_HOURS == 12
    before = timezone.now()
    response = APIClient().post("/api/auth/token/", {"username": "dana", "password": PASSWORD})

    body = response.json()
    assert set(body) == {"token", "expiry"}
    key = body["token"]
    assert len(key) == 64 and int(key, 16) >= 0
    expiry = parse_datetime(body["expiry"])
    assert before + timedelta(hours=12) <= expiry <= timezone.now() + timedelta(hours=12)
    [stored] = AuthToken.objects.filter(user=dana)
    assert stored.digest == hashlib.sha512(key.encode()).hexdigest() != key
    assert stored.token_key == key[:15] and stored.expiry == expiry
    assert not AuthToken.objects.filter(digest=key).exists()
    # A second request is a second token; the first one goes on working.
    second = _issue("dana")
    assert second != key and AuthToken.objects.filter(user=dana).count() == 2
    assert _me(key) == 200 and _me(second) == 200


def test_a_token_stops_working_when_its_lifetime_is_over(dana, clock):
    key = _issue("dana")
    clock.advance(hours=12, seconds=-60)
    assert _me(key) == 200  # use does not extend it
    clock.advance(seconds=61)
    assert _me(key) == 401
    assert not AuthToken.objects.filter(user=dana).exists()  # knox deletes it on sight


def test_the_lifetime_is_a_setting(dana, settings, clock):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=1)}
    key = _issue("dana")
    clock.advance(minutes=61)
    assert _me(key) == 401


def test_missing_or_bad_credentials_are_401_with_www_authenticate(dana):
    for key in (None, "nope", "0" * 64):
        client = APIClient()
        if key is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = client.get("/api/me/")
        assert response.status_code == 401, key
        assert response["WWW-Authenticate"] == "Token"
    # A bad token is refused even when a valid session comes with it.
    client = APIClient()
    client.force_login(dana)
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    assert client.get("/api/me/").status_code == 401


def test_browser_sessions_still_work_and_still_need_csrf(dana):
    client = Client(enforce_csrf_checks=True)
    client.force_login(dana)
    assert client.get("/api/me/").json()["username"] == "dana"
    key = _issue("dana")

    assert client.post("/api/auth/logoutall/").status_code == 403  # no CSRF token
    assert _me(key) == 200
    client.cookies["csrftoken"] = "a" * 32
    assert client.post("/api/auth/logoutall/", HTTP_X_CSRFTOKEN="a" * 32).status_code == 204
    assert _me(key) == 401


def test_changing_the_password_ends_every_token(dana):
    keys = [_issue("dana"), _issue("dana")]
    other = UserFactory(username="lee", roles=[Role.DISPATCHER])
    others_key = _issue("lee")

    form = SetPasswordForm(dana, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert form.is_valid(), form.errors
    form.save()  # what the admin's and Django's password forms do

    assert [_me(key) for key in keys] == [401, 401]
    assert _me(others_key) == 200
    assert AuthToken.objects.filter(user=other).count() == 1
    [entry] = AuditEntry.objects.filter(action="auth.tokens_revoke")
    assert (entry.object_id, entry.details_data) == (
        str(dana.pk),
        {"reason": "password_changed", "tokens_revoked": 2},
    )
    assert _me(_issue("dana", NEW_PASSWORD)) == 200


def test_saving_a_user_without_a_new_password_keeps_the_tokens(dana):
    key = _issue("dana")
    dana.first_name = "Dana"
    dana.save()
    assert _me(key) == 200
    assert not AuditEntry.objects.filter(action="auth.tokens_revoke").exists()


def test_a_password_hash_upgrade_at_sign_in_is_not_a_password_change(dana, settings):
    key = _issue("dana")
    assert dana.password.startswith("md5$")
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert Client().post("/login/", {"username": "dana", "password": PASSWORD}).status_code == 302
    dana.refresh_from_db()
    assert dana.password.startswith("pbkdf2_sha256$")
    assert _me(key) == 200


def test_deactivation_ends_every_token_for_good(dana):
    key = _issue("dana")
    dana.is_active = False
    dana.save()
    assert _me(key) == 401
    assert not AuthToken.objects.filter(user=dana).exists()
    assert AuditEntry.objects.get(action="auth.tokens_revoke").details_data == {
        "reason": "deactivated",
        "tokens_revoked": 1,
    }
    dana.is_active = True
    dana.save()
    assert _me(key) == 401  # reactivation does not bring old tokens back


def test_an_inactive_users_token_is_refused_even_when_save_was_bypassed(dana):
    key = _issue("dana")
    User.objects.filter(pk=dana.pk).update(is_active=False)
    assert _me(key) == 401


def test_logout_revokes_only_the_token_it_carries(dana):
    first, second = _issue("dana"), _issue("dana")
    assert _post("/api/auth/logout/", first) == 204
    assert _me(first) == 401 and _me(second) == 200
    assert _post("/api/auth/logout/", first) == 401
    [entry] = AuditEntry.objects.filter(action="auth.logout")
    assert entry.actor_id == dana.pk
    assert entry.details_data == {"channel": "api", "tokens_revoked": 1}


def test_logout_needs_a_token_not_a_session(dana):
    client = APIClient()
    client.force_login(dana)
    assert client.post("/api/auth/logout/").status_code == 401


def test_logoutall_revokes_every_token_of_the_caller_only(dana):
    first, second = _issue("dana"), _issue("dana")
    UserFactory(username="lee", roles=[Role.DISPATCHER])
    others = _issue("lee")
    assert _post("/api/auth/logoutall/", first) == 204
    assert (_me(first), _me(second), _me(others)) == (401, 401, 200)
    [entry] = AuditEntry.objects.filter(action="auth.logout")
    assert entry.details_data == {"channel": "api", "tokens_revoked": 2, "scope": "all"}


# --- the websocket and the DICOMweb proxy read the same tokens ---------------------------------


def _websocket(path: str, subprotocols=None):
    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=[ORIGIN], subprotocols=subprotocols)
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_websocket_takes_a_valid_token_and_refuses_an_expired_or_revoked_one(clock):
    UserFactory(username="dana", roles=[Role.DISPATCHER])
    expiring, revoked = _issue("dana"), _issue("dana")
    assert _websocket(f"/ws/ping/?token={expiring}")[0] is True
    assert _websocket("/ws/ping/", subprotocols=[f"token.{revoked}"])[0] is True

    assert _post("/api/auth/logout/", revoked) == 204
    assert _websocket("/ws/ping/", subprotocols=[f"token.{revoked}"]) == (False, 4401)
    assert _websocket(f"/ws/ping/?token={revoked}") == (False, 4401)
    clock.advance(hours=12, seconds=1)
    assert _websocket(f"/ws/ping/?token={expiring}") == (False, 4401)


def _dicomweb(key: str) -> int:
    # An unknown study: a valid token gets past authentication to a 404 without reaching Orthanc.
    async def go():
        return await AsyncClient().get(
            "/dicom-web/studies/1.2.3.4.5/metadata", headers={"authorization": f"Token {key}"}
        )

    response = async_to_sync(go)()
    if response.status_code == 401:
        assert response["WWW-Authenticate"] == "Token"
    return response.status_code


@pytest.mark.django_db(transaction=True)
def test_dicomweb_proxy_refuses_an_expired_revoked_or_deactivated_users_token(clock):
    dana = UserFactory(username="dana", roles=[Role.RADIOLOGIST])
    UserFactory(username="lee", roles=[Role.RADIOLOGIST])
    expiring, revoked, leaving = _issue("dana"), _issue("dana"), _issue("lee")
    assert (_dicomweb(expiring), _dicomweb(revoked), _dicomweb(leaving)) == (404, 404, 404)

    assert _post("/api/auth/logout/", revoked) == 204
    lee = User.objects.get(username="lee")
    lee.is_active = False
    lee.save()
    assert (_dicomweb(revoked), _dicomweb(leaving)) == (401, 401)
    assert _dicomweb(expiring) == 404
    clock.advance(hours=12, seconds=1)
    assert _dicomweb(expiring) == 401
    assert not AuthToken.objects.filter(user=dana).exists()
