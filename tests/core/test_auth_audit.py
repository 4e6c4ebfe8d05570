"""Sign-in, failed sign-in and sign-out are audit entries, exported as ATNA User Authentication."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from core.choices import Role
from core.models import AuditEntry
from core.services.audit_export import atna_messages
from tests.core.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Caravan-123"


def _entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_web_sign_in_failure_and_sign_out_are_audited(client):
    user = UserFactory(username="dana", roles=[Role.DISPATCHER])

    failed = client.post("/login/", {"username": "dana", "password": "wrong-guess-123"})
    assert failed.status_code == 200  # the form again, with its error
    client.post("/login/", {"username": "dana", "password": PASSWORD})
    client.post("/logout/")

    [miss] = _entries("auth.login_failed")
    assert miss.actor_id is None and miss.details_data == {"channel": "web", "username": "dana"}
    assert "wrong-guess" not in miss.details and miss.source_ip == "127.0.0.1"
    [login] = _entries("auth.login")
    assert (login.actor_id, login.object_id, login.details_data) == (
        user.pk,
        str(user.pk),
        {"channel": "web"},
    )
    [logout] = _entries("auth.logout")
    assert logout.actor_id == user.pk


def test_api_token_requests_are_audited(client):
    user = UserFactory(username="api-user", roles=[Role.RADIOLOGIST])
    bad = client.post("/api/auth/token/", {"username": "api-user", "password": "nope"})
    assert bad.status_code == 400
    good = client.post("/api/auth/token/", {"username": "api-user", "password": PASSWORD})
    assert good.status_code == 200 and len(good.json()["token"]) == 64
    assert [e.details_data for e in _entries("auth.login_failed")] == [
        {"channel": "api", "username": "api-user"}
    ]
    assert [(e.actor_id, e.details_data) for e in _entries("auth.login")] == [(user.pk, {"channel": "api"})]


def test_authentication_events_export_as_atna_user_authentication(client):
    UserFactory(username="dana", roles=[Role.DISPATCHER])
    client.post("/login/", {"username": "dana", "password": "wrong-guess-123"})
    client.post("/login/", {"username": "dana", "password": PASSWORD})
    entries = list(AuditEntry.objects.filter(action__startswith="auth.").order_by("id"))

    messages = [ET.fromstring(xml) for xml in atna_messages(entries)]

    for message, outcome in zip(messages, ["4", "0"], strict=True):
        event = message.find("EventIdentification")
        assert event.get("EventOutcomeIndicator") == outcome
        assert event.find("EventID").get("csd-code") == "110114"
        assert event.find("EventTypeCode").get("csd-code") == "110122"  # Login
