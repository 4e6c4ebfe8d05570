"""Environment reading that fails loudly.

django-environ reads the values; these wrappers refuse anything ambiguous (``DEBUG=maybe``)
instead of silently falling back, and support ``NAME_FILE`` for secrets mounted as files.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    """The value of NAME, or the contents of the file named by NAME_FILE."""
    file_var = f"{name}_FILE"
    if file_var in os.environ:
        path = Path(os.environ[file_var])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{file_var}={path}: cannot read secret file ({exc})") from exc
    return os.environ.get(name)


def env_str(name: str, default: str | None = None) -> str:
    value = _raw(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"Environment variable {name} is required but not set")
        return default
    return value


def env_optional(name: str) -> str | None:
    value = _raw(name)
    return value if value else None


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"Environment variable {name}={value!r} is not a boolean; use one of "
        f"{sorted(_TRUE)} or {sorted(_FALSE - {''})}"
    )


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise ImproperlyConfigured(
            f"Environment variable {name}={number} is out of range [{minimum}, {maximum}]"
        )
    return number


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not a number") from None
    if (
        number != number
        or minimum is not None
        and number < minimum
        or maximum is not None
        and number > maximum
    ):
        raise ImproperlyConfigured(
            f"Environment variable {name}={number} is out of range [{minimum}, {maximum}]"
        )
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None = None, *, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name) or default
    if not value:
        return None
    return _check_url(name, value, schemes)


def env_url_or_default(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    return _check_url(name, _raw(name) or default, schemes)


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"Environment variable {name} must be a URL with scheme {' or '.join(schemes)}; "
            f"got {scheme or 'none'}"
        )
    return value


def env_database(name: str, default: str) -> dict:
    value = _raw(name) or default
    try:
        config = env.db_url_config(value)
    except Exception as exc:  # environ raises a bare ImproperlyConfigured/KeyError on unknown schemes
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from exc
    if config.get("ENGINE") not in {"django.db.backends.sqlite3", "django.db.backends.postgresql"}:
        raise ImproperlyConfigured(
            f"{name}: unsupported database scheme {value.split(':', 1)[0]!r}; use sqlite:/// or postgres://"
        )
    return config
