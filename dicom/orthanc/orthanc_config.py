"""Caravan's Orthanc configuration: the whitelist, the settings, and the JSON Orthanc reads.

Standard library only, like launcher.py, which starts Orthanc with what ``render()`` writes:
``orthanc.template.json`` (beside this file) filled in with ports, paths, credentials and the
whitelist. Keys are those of Orthanc 1.10's Configuration.json; docs/orthanc.md explains them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ORTHANC_BINARY = "/usr/sbin/Orthanc"
PLUGINS_DIR = "/usr/share/orthanc/plugins"
PYTHON_PLUGIN_NAME = "libOrthancPython.so"
DICOMWEB_PLUGIN_NAME = "libOrthancDicomWeb.so"
PLUGIN_SCRIPT = str(Path(__file__).resolve().with_name("plugin.py"))
# The fixed part of every rendered configuration; ``OrthancConfig.to_orthanc`` fills its nulls.
TEMPLATE_PATH = Path(__file__).resolve().with_name("orthanc.template.json")
NUDGE_PATH = "/api/dicom/orthanc/nudge/"
WORKLIST_PATH = "/api/dicom/orthanc/worklist/"
DICOMWEB_ROOT = "/dicom-web/"

CONFIG_NAME = "orthanc.json"
PID_NAME = "orthanc.pid"
LOG_NAME = "orthanc.log"

# The same development-only fallbacks as config/settings.py, refused in production.
DEV_USERNAME = "caravan"
DEV_PASSWORD = "caravan-orthanc-dev"
DEV_PLUGIN_SECRET = "caravan-plugin-dev-secret"
MIN_SECRET_LENGTH = 16

_AET_RE = re.compile(r"^[\x21-\x5b\x5d-\x7e](?:[\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$")


class LauncherError(RuntimeError):
    """Orthanc could not be configured, started or stopped; the message says why."""


def _check_aet(aet: str, what: str) -> str:
    # PS3.5: at most 16 characters of the default repertoire, no backslash, no control
    # characters; leading/trailing spaces are not significant, so refuse them to avoid
    # two spellings of one title in the whitelist.
    if not _AET_RE.match(aet):
        raise LauncherError(f"{what} {aet!r} is not a valid AE title (1-16 printable ASCII, no backslash)")
    return aet


def _check_port(port: int, what: str) -> int:
    if not 1 <= port <= 65535:
        raise LauncherError(f"{what} {port} is not a TCP port (1-65535)")
    return port


@dataclass(frozen=True)
class Modality:
    """One whitelisted DICOM peer: only these AE titles, from these hosts, may associate."""

    aet: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Modality:
        """Parse ``AET@host:port`` (IPv6 hosts in brackets: ``AET@[::1]:104``)."""
        aet, sep, address = text.strip().partition("@")
        host, colon, port_text = address.rpartition(":")
        if not sep or not colon or not host or not port_text.isdigit():
            raise LauncherError(f"modality {text!r} is not of the form AET@host:port")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return cls(
            aet=_check_aet(aet, "modality AE title"),
            host=host,
            port=_check_port(int(port_text), f"modality {aet} port"),
        )

    def to_orthanc(self) -> dict[str, object]:
        return {
            "AET": self.aet,
            "Host": self.host,
            "Port": self.port,
            "AllowEcho": True,
            "AllowStore": True,
            # Study-level C-FIND would let any van query every hospital's studies; scanners
            # only need the worklist. Retrieval goes through the platform's DICOMweb proxy.
            "AllowFind": False,
            "AllowFindWorklist": True,
            "AllowGet": False,
            "AllowMove": False,
            # Scanners ask for storage commitment before they delete their local copy.
            "AllowStorageCommitment": True,
        }


def parse_modalities(items: Sequence[str] | str) -> tuple[Modality, ...]:
    """Parse a comma-separated string or a list of ``AET@host:port`` entries."""
    if isinstance(items, str):
        items = items.split(",")
    modalities = tuple(Modality.parse(item) for item in items if item.strip())
    seen: set[str] = set()
    for modality in modalities:
        if modality.aet in seen:
            raise LauncherError(f"modality AE title {modality.aet} is listed twice")
        seen.add(modality.aet)
    return modalities


@dataclass(frozen=True)
class OrthancConfig:
    """Everything needed to render a configuration and run one Orthanc."""

    run_dir: Path
    username: str
    password: str
    plugin_secret: str
    nudge_url: str
    http_port: int = 8042
    dicom_port: int = 4242
    aet: str = "CARAVAN"
    modalities: tuple[Modality, ...] = ()
    stable_age: int = 60
    name: str = "caravan"
    # Only for container networks, where the platform is not on loopback; auth stays on.
    remote_access_allowed: bool = False
    nudge_timeout: float = 3.0
    # Where the plugin fetches Modality Worklist items. Empty: not rendered, and the plugin
    # derives it from the nudge URL (same platform, WORKLIST_PATH).
    worklist_url: str = ""
    # A scanner waits for the C-FIND answer: keep this well under its DIMSE timeout.
    worklist_timeout: float = 5.0
    verbose: bool = False
    orthanc_binary: str = ORTHANC_BINARY
    python_plugin: str = os.path.join(PLUGINS_DIR, PYTHON_PLUGIN_NAME)
    dicomweb_plugin: str = os.path.join(PLUGINS_DIR, DICOMWEB_PLUGIN_NAME)
    plugin_script: str = PLUGIN_SCRIPT
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir).resolve())
        self.validate()

    def validate(self) -> None:
        if not self.username or ":" in self.username:
            raise LauncherError("Orthanc username must be non-empty and contain no ':'")
        if not self.password:
            raise LauncherError("Orthanc password must not be empty")
        if len(self.plugin_secret) < MIN_SECRET_LENGTH:
            raise LauncherError(f"plugin secret must be at least {MIN_SECRET_LENGTH} characters")
        if urlsplit(self.nudge_url).scheme not in {"http", "https"}:
            raise LauncherError(f"nudge URL {self.nudge_url!r} must be http:// or https://")
        if self.worklist_url and urlsplit(self.worklist_url).scheme not in {"http", "https"}:
            raise LauncherError(f"worklist URL {self.worklist_url!r} must be http:// or https://")
        if not 0 < self.worklist_timeout <= 60:
            raise LauncherError("worklist timeout must be within (0, 60] seconds")
        _check_port(self.http_port, "HTTP port")
        _check_port(self.dicom_port, "DICOM port")
        if self.http_port == self.dicom_port:
            raise LauncherError("HTTP and DICOM ports must differ")
        _check_aet(self.aet, "Orthanc AE title")
        if self.stable_age < 1:
            raise LauncherError("StableAge must be at least 1 second")
        for path in (self.python_plugin, self.dicomweb_plugin, self.plugin_script):
            if not os.path.isabs(path):
                raise LauncherError(f"{path!r} must be an absolute path")

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_NAME

    @property
    def pid_path(self) -> Path:
        return self.run_dir / PID_NAME

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_NAME

    @property
    def storage_dir(self) -> Path:
        return self.run_dir / "storage"

    @property
    def index_dir(self) -> Path:
        return self.run_dir / "index"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def caravan_section(self) -> dict[str, object]:
        """The "Caravan" section, read by plugin.py through ``orthanc.GetConfiguration()``."""
        section: dict[str, object] = {
            "NudgeUrl": self.nudge_url,
            "PluginSecret": self.plugin_secret,
            "NudgeTimeout": self.nudge_timeout,
        }
        if self.worklist_url:
            section["WorklistUrl"] = self.worklist_url
            section["WorklistTimeout"] = self.worklist_timeout
        return section

    def to_orthanc(self) -> dict[str, object]:
        """The Orthanc configuration document: ``orthanc.template.json`` (the fixed policy, keys
        as in Orthanc 1.10's Configuration.json) with its ``null`` values filled from this
        config, then ``extra`` on top. docs/orthanc.md explains each choice."""
        document = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
        values: dict[str, object] = {
            "Name": self.name,
            "StorageDirectory": str(self.storage_dir),
            # A separate directory keeps the SQLite index off the bulk storage volume.
            "IndexDirectory": str(self.index_dir),
            "StableAge": self.stable_age,
            # Orthanc 1.10 has no bind-address option, so it listens on every interface;
            # RemoteAccessAllowed=false makes it refuse every client that is not on loopback.
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": self.remote_access_allowed,
            "RegisteredUsers": {self.username: self.password},
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            # Only whitelisted AE titles, from their registered hosts (the template's checks).
            "DicomModalities": {m.aet: m.to_orthanc() for m in self.modalities},
            # By absolute path: the Debian plugins directory also holds ModalityWorklists and
            # ServeFolders, which must not be loaded. orthanc-python 4.0 reads the top-level
            # PythonScript key (the "Python" section is from 4.1 on).
            "Plugins": [self.python_plugin, self.dicomweb_plugin],
            "PythonScript": self.plugin_script,
            "Caravan": self.caravan_section(),
        }
        unknown = sorted(set(values) - set(document))
        if unknown:
            raise LauncherError(f"{TEMPLATE_PATH.name} has no key {', '.join(unknown)}")
        document.update(values)
        unset = sorted(key for key, value in document.items() if value is None)
        if unset:
            raise LauncherError(f"{TEMPLATE_PATH.name}: {', '.join(unset)} left unset")
        if document["DicomWeb"]["Root"] != DICOMWEB_ROOT:  # the platform's proxy forwards there
            raise LauncherError(f"{TEMPLATE_PATH.name}: DicomWeb.Root must be {DICOMWEB_ROOT}")
        document.update(self.extra)
        return document


# --- environment -----------------------------------------------------------------------------


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """NAME, or the contents of the file named by NAME_FILE (secrets mounted as files)."""
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise LauncherError(f"{name}_FILE={file_name}: cannot read ({exc})") from exc
    value = environ.get(name)
    return value if value else None


def env_int(
    environ: Mapping[str, str],
    name: str,
    default: int,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = env_value(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise LauncherError(f"{name}={value!r} is not an integer") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise LauncherError(f"{name}={number} is out of range [{minimum}, {maximum}]")
    return number


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = env_value(environ, name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise LauncherError(f"{name}={value!r} is not a boolean")


def _env_secret(environ: Mapping[str, str], name: str, dev_default: str, production: bool) -> str:
    value = env_value(environ, name)
    if value is None:
        if production:
            raise LauncherError(f"{name} (or {name}_FILE) must be set when CARAVAN_ENV=production")
        return dev_default
    return value


def nudge_url_for(platform_url: str) -> str:
    return platform_url.rstrip("/") + NUDGE_PATH


def worklist_url_for(platform_url: str) -> str:
    return platform_url.rstrip("/") + WORKLIST_PATH


def config_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    http_port: int | None = None,
    dicom_port: int | None = None,
) -> OrthancConfig:
    """Build the configuration from the same variables as config/settings.py reads."""
    env = os.environ if environ is None else environ
    production = env.get("CARAVAN_ENV", "development") == "production"
    orthanc_url = env_value(env, "ORTHANC_URL") or "http://127.0.0.1:8042"
    url_port = urlsplit(orthanc_url).port or 8042
    plugins_dir = env_value(env, "ORTHANC_PLUGINS_DIR") or PLUGINS_DIR
    platform_url = env_value(env, "PLATFORM_URL") or "http://127.0.0.1:8000"
    return OrthancConfig(
        run_dir=Path(run_dir or env_value(env, "ORTHANC_RUN_DIR") or "var/orthanc"),
        username=_env_secret(env, "ORTHANC_USERNAME", DEV_USERNAME, production),
        password=_env_secret(env, "ORTHANC_PASSWORD", DEV_PASSWORD, production),
        plugin_secret=_env_secret(env, "ORTHANC_PLUGIN_SECRET", DEV_PLUGIN_SECRET, production),
        nudge_url=env_value(env, "ORTHANC_NUDGE_URL") or nudge_url_for(platform_url),
        worklist_url=env_value(env, "ORTHANC_WORKLIST_URL") or worklist_url_for(platform_url),
        http_port=http_port or env_int(env, "ORTHANC_HTTP_PORT", url_port),
        dicom_port=dicom_port or env_int(env, "ORTHANC_DICOM_PORT", 4242),
        aet=env_value(env, "ORTHANC_AET") or "CARAVAN",
        modalities=parse_modalities(env_value(env, "ORTHANC_ALLOWED_MODALITIES") or ""),
        stable_age=env_int(env, "ORTHANC_STABLE_AGE", 60),
        name=env_value(env, "ORTHANC_NAME") or "caravan",
        remote_access_allowed=_env_bool(env, "ORTHANC_REMOTE_ACCESS_ALLOWED", False),
        verbose=_env_bool(env, "ORTHANC_VERBOSE", False),
        orthanc_binary=env_value(env, "ORTHANC_BINARY") or ORTHANC_BINARY,
        python_plugin=os.path.join(plugins_dir, PYTHON_PLUGIN_NAME),
        dicomweb_plugin=os.path.join(plugins_dir, DICOMWEB_PLUGIN_NAME),
    )


def render(config: OrthancConfig) -> Path:
    """Write the configuration (mode 0600: it holds the password and the plugin secret)."""
    config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.storage_dir.mkdir(exist_ok=True, mode=0o700)
    config.index_dir.mkdir(exist_ok=True, mode=0o700)
    tmp = config.config_path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config.to_orthanc(), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, config.config_path)
    return config.config_path
