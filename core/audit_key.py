"""The audit chain's HMAC key: read from a file the database never sees.

``settings.AUDIT_HMAC_KEY_FILE`` names the file. When the operator configured it, the settings
already refused a missing, empty or short file at start-up. When not (a fresh clone, ``make
run``), the default file under ``var/`` is created with a random key, mode 0600, on first use.

Two keys are derived from the file's key, so an entry's hash can never be replayed as a
checkpoint's signature or the other way round; the key id names the key in checkpoints (a
wrong key file then reads as "signed with another key", not as forgery).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MIN_KEY_CHARS = 32


@dataclass(frozen=True)
class AuditKeys:
    """The keys derived from one key file."""

    entry: bytes  # HMAC key of chain entries
    checkpoint: bytes  # HMAC key of checkpoint signatures
    key_id: str  # public name of the key (not secret: a one-way function of it)


# Per path, read once per process (a changed key file takes a restart, like any secret).
_cache: dict[str, AuditKeys] = {}


def derive_keys(secret: bytes) -> AuditKeys:
    def sub(label: str) -> bytes:
        return hmac.digest(secret, label.encode(), "sha256")

    return AuditKeys(
        entry=sub("caravan audit entry v2"),
        checkpoint=sub("caravan audit checkpoint v1"),
        key_id=sub("caravan audit key id").hex()[:16],
    )


def read_key_file(path: Path) -> bytes:
    """The key in ``path`` (content, stripped); ImproperlyConfigured if unreadable or short."""
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"AUDIT_HMAC_KEY_FILE={path}: cannot read the audit key ({exc})") from exc
    if len(secret) < MIN_KEY_CHARS:
        state = "is empty" if not secret else f"holds {len(secret)} characters"
        raise ImproperlyConfigured(
            f"AUDIT_HMAC_KEY_FILE={path} {state}; the audit key needs at least {MIN_KEY_CHARS} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return secret.encode()


def _generate(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(secrets.token_hex(32) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        # link() fails if the name exists: two processes racing keep the first key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def audit_keys() -> AuditKeys:
    """The derived keys of the configured key file (generated first when allowed)."""
    path = Path(settings.AUDIT_HMAC_KEY_FILE)
    keys = _cache.get(str(path))
    if keys is None:
        if not path.exists() and getattr(settings, "AUDIT_HMAC_KEY_GENERATE", False):
            _generate(path)
        keys = _cache[str(path)] = derive_keys(read_key_file(path))
    return keys
