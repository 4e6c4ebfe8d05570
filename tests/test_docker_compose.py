"""The production compose stack, checked by reading its files (no Docker engine needed).

No test here builds or runs an image. Instead the files are held against what actually reads
them: the variables compose sets against the names config/settings.py and the Orthanc launcher
read, the URLs against the services they name, the Dockerfiles' COPY sources against the
repository, and the settings module and the Orthanc entry point are run, in subprocesses, with
the environment compose would give them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
APP_DOCKERFILE = DOCKER / "Dockerfile"
ORTHANC_DOCKERFILE = DOCKER / "orthanc.Dockerfile"
SETTINGS = ROOT / "config" / "settings.py"
LAUNCHER = ROOT / "dicom" / "orthanc" / "launcher.py"
ORTHANC_ENTRYPOINT = DOCKER / "orthanc_entrypoint.py"

APP_SERVICES = ("web", "worker", "beat", "migrate")
LONG_RUNNING_APP_SERVICES = ("web", "worker", "beat")
# No access log: request URLs carry study UIDs and patient IDs (docs/security.md).
# One daphne per core behind one port (core/management/commands/serve.py).
DAPHNE = ["python", "manage.py", "serve", "--bind", "0.0.0.0", "--port", "8000", "--access-log", "/dev/null"]
ORTHANC_HTTP_PORT = 8042
SHARED_WITH_ORTHANC = (
    "CARAVAN_ENV",
    "ORTHANC_URL",
    "ORTHANC_USERNAME",
    "ORTHANC_PASSWORD_FILE",
    "ORTHANC_PLUGIN_SECRET_FILE",
    "ORTHANC_DICOM_PORT",
    "ORTHANC_AET",
    "PLATFORM_URL",
)

# --- reading the files ------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = variables.get(name)
        # The colon forms treat an empty value like an unset one.
        missing = not value if op in (":-", ":?") else value is None
        if not missing:
            return value
        if op in (":?", "?"):
            raise KeyError(f"compose would refuse to start: {name} is required ({arg})")
        return arg if op in (":-", "-") else ""

    return _INTERPOLATION.sub(substitute, text)


def _interpolate_tree(node, variables):
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def referenced_variables(text: str) -> set[str]:
    return {m.group("name") for m in _INTERPOLATION.finditer(text) if m.group("name")}


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(example_env) -> dict:
    """compose.yaml as `docker compose config` would see it with .env.example as docker/.env."""
    return _interpolate_tree(yaml.safe_load(COMPOSE.read_text()), example_env)


def service_env(compose: dict, service: str) -> dict[str, str]:
    environment = compose["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {name: str(value) for name, value in environment.items()}


def names_read(source: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, source))


@pytest.fixture(scope="module")
def settings_names() -> set[str]:
    names = names_read(SETTINGS.read_text(), r"\benv_\w+\(\s*\"([A-Z][A-Z0-9_]*)\"")
    # Guards the regex: if settings changed style and nothing matched, every check would pass.
    assert {"DATABASE_URL", "REDIS_URL", "ORTHANC_URL", "SECRET_KEY", "CARAVAN_ENV", "DEBUG"} <= names
    return names


@pytest.fixture(scope="module")
def orthanc_names() -> set[str]:
    """Variables the Orthanc container reads: the launcher's (all of dicom/orthanc/) and the
    image entry point's."""
    if not LAUNCHER.exists():
        pytest.skip("dicom/orthanc/launcher.py is not written yet")
    names: set[str] = set()
    for module in sorted(LAUNCHER.parent.glob("*.py")):
        source = module.read_text()
        names |= names_read(source, r"\b_?env_\w+\(\s*env(?:iron)?,\s*\"([A-Z][A-Z0-9_]*)\"")
        names |= names_read(source, r"\b(?:env|environ)\.get\(\s*\"([A-Z][A-Z0-9_]*)\"")
    assert {"ORTHANC_URL", "ORTHANC_PASSWORD", "PLATFORM_URL", "CARAVAN_ENV"} <= names
    entrypoint = ORTHANC_ENTRYPOINT.read_text()
    names |= names_read(entrypoint, r"_(?:value|int)\(\s*environ,\s*\"([A-Z][A-Z0-9_]*)\"")
    assert "ORTHANC_POSTGRESQL_HOST" in names
    return names


def _is_read(name: str, names: set[str]) -> bool:
    # Both config/env.py and the launcher read NAME_FILE for every NAME.
    return name in names or (name.endswith("_FILE") and name.removesuffix("_FILE") in names)


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path.name} ends in a continuation line"
    return instructions


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"use the exec (JSON) form: {arguments}"
    return value


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def copies(instructions: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not from another stage)."""
    result = []
    for keyword, arguments in instructions:
        if keyword != "COPY":
            continue
        tokens = shlex.split(arguments)
        if any(token.startswith("--from") for token in tokens):
            continue
        paths = [token for token in tokens if not token.startswith("--")]
        result.append((paths[:-1], paths[-1]))
    return result


def healthcheck_code(instructions: list[tuple[str, str]]) -> str:
    arguments = next(arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK")
    command = exec_form(arguments[arguments.index("CMD") + 3 :].strip())
    assert command[1] == "-c", command
    return command[2]


def _published(service: dict) -> list[tuple[str | None, int]]:
    """(published, target) of each published port, short or long syntax."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            result.append((str(port.get("published")), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        result.append((parts[-2] if len(parts) > 1 else None, int(parts[-1])))
    return result


# --- services, images, commands -------------------------------------------------------------------


def test_expected_services_exist(compose):
    assert {"postgres", "redis", "orthanc", "web", "worker", "beat", "migrate"} <= set(compose["services"])
    assert compose["services"]["postgres"]["image"].split(":") == ["postgres", "15"]
    assert compose["services"]["redis"]["image"].split(":") == ["redis", "7"]


def test_platform_services_run_the_app_image(compose):
    services = compose["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, images
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "docker/Dockerfile"
    orthanc_build = services["orthanc"]["build"]
    assert (COMPOSE.parent / orthanc_build["context"]).resolve() == ROOT
    assert orthanc_build["dockerfile"] == "docker/orthanc.Dockerfile"
    assert services["orthanc"]["image"] not in images


def test_platform_commands(compose):
    services = compose["services"]
    assert services["web"]["command"] == DAPHNE
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # A one-shot job that restarted would re-run forever and never count as "completed".
    assert services["migrate"]["restart"] == "no"
    # The image's HEALTHCHECK probes daphne; the other app containers must not inherit it.
    for name in ("worker", "beat", "migrate"):
        assert "healthcheck" in services[name], name


def test_beat_is_not_scaled_and_writes_its_schedule_where_it_may(compose):
    beat = compose["services"]["beat"]
    assert "deploy" not in beat or beat["deploy"].get("replicas", 1) == 1
    schedule = next(arg for arg in beat["command"] if arg.startswith("--schedule="))
    # /app is root-owned in the image; only /app/var belongs to the app user.
    assert schedule.removeprefix("--schedule=").startswith("/app/var/")


# --- environment --------------------------------------------------------------------------------


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_environment_names_are_read_by_settings(compose, settings_names, service):
    env = service_env(compose, service)
    unknown = sorted(name for name in env if not _is_read(name, settings_names))
    assert not unknown, f"{service} sets variables config/settings.py never reads: {unknown}"
    for required in ("DATABASE_URL", "REDIS_URL", "ORTHANC_URL", "CARAVAN_ENV"):
        assert env.get(required), f"{service}: {required} is not set"
    assert env.get("SECRET_KEY") or env.get("SECRET_KEY_FILE"), f"{service}: no SECRET_KEY(_FILE)"
    assert env["CARAVAN_ENV"] == "production"
    assert env["DEBUG"] == "false"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_get_the_same_configuration(compose, service):
    # The only difference: migrate connects as the owner of the tables. The database
    # connections are bounded by the defaults (a pool in the web, none in Celery), not per service.
    differing = {"DATABASE_URL"}
    web = service_env(compose, "web")
    env = service_env(compose, service)
    assert {k: v for k, v in env.items() if k not in differing} == {
        k: v for k, v in web.items() if k not in differing
    }
    assert "DB_CONN_MAX_AGE" not in env
    if service != "migrate":
        assert env["DATABASE_URL"] == web["DATABASE_URL"]


def test_orthanc_environment_names_are_read_by_the_launcher(compose, orthanc_names):
    env = service_env(compose, "orthanc")
    unknown = sorted(name for name in env if not _is_read(name, orthanc_names))
    assert not unknown, f"orthanc sets variables neither the launcher nor the entry point reads: {unknown}"


def test_platform_and_orthanc_agree(compose):
    app = service_env(compose, "web")
    orthanc = service_env(compose, "orthanc")
    for name in SHARED_WITH_ORTHANC:
        assert app[name] == orthanc[name], name
    assert "ORTHANC_HTTP_PORT" not in orthanc or int(orthanc["ORTHANC_HTTP_PORT"]) == ORTHANC_HTTP_PORT
    assert orthanc["ORTHANC_REMOTE_ACCESS_ALLOWED"] == "true"
    # The plugin's nudges go to the web service by its compose name, which Django must accept.
    platform = urlsplit(orthanc["PLATFORM_URL"])
    assert platform.hostname == "web"
    assert platform.port == 8000
    assert "web" in app["ALLOWED_HOSTS"].split(",")


def test_secrets_are_files_granted_to_the_service(compose, example_env):
    declared = compose["secrets"]
    for name, service in compose["services"].items():
        granted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
        for var, value in service_env(compose, name).items():
            if not var.endswith("_FILE"):
                continue
            assert value.startswith("/run/secrets/"), f"{name}: {var}={value}"
            secret = value.removeprefix("/run/secrets/")
            assert secret in granted, f"{name}: {var} names secret {secret}, not granted to it"
            assert secret in declared, f"{secret} is not declared under top-level secrets"
    for source in declared.values():
        assert example_env.get(source["environment"]), f"{source['environment']} missing from .env.example"


def test_secret_values_never_sit_in_plain_variables(compose):
    for name in APP_SERVICES:
        env = service_env(compose, name)
        for secret in ("SECRET_KEY", "ORTHANC_PASSWORD", "ORTHANC_PLUGIN_SECRET"):
            assert secret not in env and f"{secret}_FILE" in env, f"{name}: {secret}"


def test_every_compose_variable_is_documented_in_env_example(example_env):
    raw = COMPOSE.read_text()
    secret_sources = {s["environment"] for s in yaml.safe_load(raw)["secrets"].values()}
    used = referenced_variables(raw) | secret_sources
    assert sorted(used - set(example_env)) == []
    assert sorted(set(example_env) - used) == [], "stale entries in .env.example"


def test_compose_refuses_to_start_without_the_required_values():
    # The first value required is a password, so a half-filled .env stops `compose up`.
    with pytest.raises(KeyError, match="CARAVAN_DB_PASSWORD"):
        _interpolate_tree(yaml.safe_load(COMPOSE.read_text()), {})


# --- URLs point at the services -----------------------------------------------------------------


@pytest.mark.parametrize(("service", "role"), [("web", "caravan"), ("migrate", "caravan_owner")])
def test_database_url_points_at_the_postgres_service(compose, example_env, service, role):
    url = urlsplit(service_env(compose, service)["DATABASE_URL"])
    assert url.scheme in ("postgres", "postgresql")
    assert url.hostname == "postgres" and "postgres" in compose["services"]
    assert url.port in (None, 5432)
    assert url.path == "/caravan"
    assert url.username == role
    # The password is the one the init script gives the role, through that role's secret.
    init = compose["configs"]["postgres_roles_and_databases"]["content"]
    variable = re.search(rf"CREATE ROLE {role} LOGIN PASSWORD :'(\w+)';", init).group(1)
    secret = re.search(rf"\\set {variable} `cat /run/secrets/(\w+)`", init).group(1)
    assert secret in compose["services"]["postgres"]["secrets"]
    assert url.password == example_env[compose["secrets"][secret]["environment"]]


def test_runtime_role_owns_nothing(compose):
    init = compose["configs"]["postgres_roles_and_databases"]["content"]
    assert "CREATE DATABASE caravan OWNER caravan_owner;" in init
    grants = re.findall(r"GRANT ([A-Z, ]+) ON (TABLES|SEQUENCES) TO caravan;", init)
    assert ("SELECT, INSERT, UPDATE, DELETE", "TABLES") in grants
    assert "TRUNCATE" not in init and "SUPERUSER" not in init
    # Connecting as the superuser would undo the split.
    for name in APP_SERVICES:
        assert urlsplit(service_env(compose, name)["DATABASE_URL"]).username != "postgres"


def test_redis_url_points_at_the_redis_service(compose):
    url = urlsplit(service_env(compose, "web")["REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis" and "redis" in compose["services"]
    assert url.port in (None, 6379)


def test_orthanc_url_points_at_the_orthanc_http_port(compose):
    url = urlsplit(service_env(compose, "web")["ORTHANC_URL"])
    assert url.scheme == "http"
    assert url.hostname == "orthanc" and "orthanc" in compose["services"]
    assert url.port == ORTHANC_HTTP_PORT


def test_orthanc_publishes_dicom_but_not_http(compose):
    orthanc = compose["services"]["orthanc"]
    targets = [target for _, target in _published(orthanc)]
    assert ORTHANC_HTTP_PORT not in targets, "Orthanc's HTTP port must stay inside the compose network"
    assert int(service_env(compose, "orthanc")["ORTHANC_DICOM_PORT"]) in targets
    assert "network_mode" not in orthanc


def test_only_web_and_orthanc_publish_ports(compose):
    publishing = {name for name, service in compose["services"].items() if service.get("ports")}
    assert publishing == {"web", "orthanc"}
    assert [target for _, target in _published(compose["services"]["web"])] == [8000]


def test_orthanc_index_lives_in_its_own_postgres_database(compose):
    orthanc = service_env(compose, "orthanc")
    assert orthanc["ORTHANC_POSTGRESQL_HOST"] == "postgres"
    database = orthanc["ORTHANC_POSTGRESQL_DATABASE"]
    role = orthanc["ORTHANC_POSTGRESQL_USERNAME"]
    assert database != urlsplit(service_env(compose, "web")["DATABASE_URL"]).path.strip("/")
    init = compose["configs"]["postgres_roles_and_databases"]["content"]
    assert f"CREATE DATABASE {database} OWNER {role};" in init
    assert f"CREATE ROLE {role} LOGIN PASSWORD" in init
    # Both sides read the role's password from the same secret.
    secret = orthanc["ORTHANC_POSTGRESQL_PASSWORD_FILE"]
    assert f"`cat {secret}`" in init
    assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;" in init
    assert secret.removeprefix("/run/secrets/") in compose["services"]["postgres"]["secrets"]
    mounts = compose["services"]["postgres"]["configs"]
    assert mounts[0]["target"].startswith("/docker-entrypoint-initdb.d/")


def test_state_lives_in_named_volumes(compose):
    volumes = set(compose["volumes"])
    expected = {
        "postgres": "/var/lib/postgresql/data",
        "redis": "/data",
        # Not the whole run directory: it also holds each instance's rendered configuration and
        # PID file, which instances sharing the storage must not share.
        "orthanc": service_env(compose, "orthanc")["ORTHANC_RUN_DIR"] + "/storage",
    }
    for service, target in expected.items():
        mounts = [m.split(":") for m in compose["services"][service]["volumes"]]
        assert [source for source, mount_target in mounts if mount_target == target], service
        assert all(source in volumes for source, _ in mounts), service


# --- start-up order -----------------------------------------------------------------------------


def test_depends_on_conditions(compose):
    services = compose["services"]
    for name in LONG_RUNNING_APP_SERVICES:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "orthanc": {"condition": "service_healthy"},
        }, name
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["orthanc"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_services_waited_on_have_a_healthcheck(compose):
    services = compose["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    # Orthanc's comes from its image.
    assert "disable" not in services["orthanc"].get("healthcheck", {})
    assert any(keyword == "HEALTHCHECK" for keyword, _ in parse_dockerfile(ORTHANC_DOCKERFILE))


# --- Dockerfiles --------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, ORTHANC_DOCKERFILE], ids=lambda p: p.name)
def test_dockerfile_copy_sources_exist(dockerfile):
    instructions = parse_dockerfile(dockerfile)
    sources = [source for paths, _ in copies(instructions) for source in paths]
    assert sources
    for source in sources:
        if source == "dicom/orthanc/" and not LAUNCHER.exists():
            continue  # written by another change; checked once it lands
        assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which is not in the repository"
    # Secrets and local state must not reach an image through the build context.
    ignore = Path(f"{dockerfile}.dockerignore").read_text().split()
    assert {".venv", "docker/.env", "docker/secrets", "var"} <= set(ignore)


def test_app_dockerfile():
    instructions = parse_dockerfile(APP_DOCKERFILE)
    *build_stages, final = stages(instructions)
    assert build_stages, "node belongs in a build stage of its own"
    assert final[0][1].split()[0] == "python:3.11-slim-bookworm"
    assert not any(
        "node" in arguments or "npm" in arguments for keyword, arguments in final if keyword == "RUN"
    )
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "pip install -r /tmp/requirements.txt" in runs
    assert (["requirements.txt", "constraints.txt"], "/tmp/") in copies(instructions)  # with its lock
    assert "requirements-dev" not in APP_DOCKERFILE.read_text()
    assert "bash scripts/install_assets.sh" in runs and (ROOT / "scripts" / "install_assets.sh").exists()
    assert "manage.py collectstatic --noinput" in runs
    user = [arguments for keyword, arguments in final if keyword == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    cmd = [arguments for keyword, arguments in final if keyword == "CMD"]
    assert exec_form(cmd[-1]) == DAPHNE
    code = healthcheck_code(final)
    assert "/api/health/" in code and ":8000" in code
    compile(code, "HEALTHCHECK", "exec")


def test_orthanc_dockerfile(compose):
    instructions = parse_dockerfile(ORTHANC_DOCKERFILE)
    assert instructions[0] == ("FROM", "debian:bookworm-slim")
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    for package in ("orthanc", "orthanc-python", "orthanc-dicomweb", "orthanc-postgresql", "python3"):
        assert re.search(rf"\s{re.escape(package)}(\s|$)", runs), package
    env = " ".join(arguments for keyword, arguments in instructions if keyword == "ENV")
    assert re.search(r"\bTCP_NODELAY=1\b", env)
    user = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    entrypoint = exec_form(next(a for k, a in instructions if k == "ENTRYPOINT"))
    assert entrypoint[0] == "python3" and entrypoint[-1] == "run"
    # The entry point finds the launcher next to itself, where the COPYs put it.
    destinations = {paths[0]: destination for paths, destination in copies(instructions)}
    script = Path(entrypoint[1])
    assert destinations["docker/orthanc_entrypoint.py"] == str(script)
    assert destinations["dicom/orthanc/"].rstrip("/") == str(script.parent / "dicom" / "orthanc")
    compile(healthcheck_code(instructions), "HEALTHCHECK", "exec")
    # The volume is mounted on storage/: the image must create it, owned by Orthanc's user, or
    # a fresh volume would be root-owned and Orthanc could not write.
    storage = service_env(compose, "orthanc")["ORTHANC_RUN_DIR"] + "/storage"
    assert re.search(rf"install -d -o orthanc -g orthanc -m 0700 .*{re.escape(storage)}(\s|$)", runs)


# --- the environment, applied -------------------------------------------------------------------


def _secret_files(compose, example_env, service: str, directory: Path) -> dict[str, str]:
    """The service's environment with each /run/secrets/X replaced by a file holding X's value."""
    env = service_env(compose, service)
    for var, value in list(env.items()):
        if var.endswith("_FILE") and value.startswith("/run/secrets/"):
            secret = value.removeprefix("/run/secrets/")
            path = directory / secret
            path.write_text(example_env[compose["secrets"][secret]["environment"]] + "\n")
            env[var] = str(path)
    return env


def _run_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup();"
        "from django.conf import settings as s; db = s.DATABASES['default'];"
        "print(json.dumps({'env': s.CARAVAN_ENV, 'debug': s.DEBUG, 'engine': db['ENGINE'],"
        " 'host': db['HOST'], 'name': db['NAME'], 'user': db['USER'], 'conn_max_age': db['CONN_MAX_AGE'],"
        " 'pool': db['OPTIONS'].get('pool'),"
        " 'secret_key': s.SECRET_KEY, 'redis': s.REDIS_URL, 'broker': s.CELERY_BROKER_URL,"
        " 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'orthanc_url': s.ORTHANC_URL,"
        " 'orthanc_password': s.ORTHANC_PASSWORD, 'plugin_secret': s.ORTHANC_PLUGIN_SECRET,"
        " 'allowed_hosts': s.ALLOWED_HOSTS}))"
    )
    # Only the compose environment: the developer's or CI's DATABASE_URL must not leak in.
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("service", APP_SERVICES)
def test_settings_start_with_the_compose_environment(compose, example_env, tmp_path, service):
    env = _secret_files(compose, example_env, service, tmp_path)
    result = _run_settings(env)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["env"] == "production"
    assert loaded["debug"] is False
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["host"], loaded["name"]) == ("postgres", "caravan")
    assert loaded["user"] == ("caravan_owner" if service == "migrate" else "caravan")
    assert loaded["conn_max_age"] == 0
    assert loaded["pool"] == {"min_size": 1, "max_size": 10, "timeout": 30.0, "max_idle": 60.0}
    assert loaded["secret_key"] == example_env["SECRET_KEY"]
    assert loaded["redis"] == loaded["broker"] == "redis://redis:6379/0"
    assert loaded["eager"] is False
    assert loaded["orthanc_url"] == f"http://orthanc:{ORTHANC_HTTP_PORT}"
    assert loaded["orthanc_password"] == example_env["ORTHANC_PASSWORD"]
    assert loaded["plugin_secret"] == example_env["ORTHANC_PLUGIN_SECRET"]
    assert loaded["allowed_hosts"] == [example_env["ALLOWED_HOSTS"], "web"]


def test_process_entry_points_load_with_the_compose_environment(compose, example_env, tmp_path):
    # What daphne and `celery -A config` import, under the production environment.
    env = _secret_files(compose, example_env, "web", tmp_path)
    code = (
        "import config.asgi; from celery.app.utils import find_app;"
        "print(type(config.asgi.application).__name__, find_app('config').main)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ProtocolTypeRouter", "caravan"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"SECRET_KEY_FILE": None}, "SECRET_KEY"),
        ({"SECRET_KEY_FILE": "/nonexistent/secret_key"}, "SECRET_KEY_FILE"),
        ({"DATABASE_URL": "mysql://caravan:pw@postgres:3306/caravan"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://redis:6379/0"}, "REDIS_URL"),
        ({"CARAVAN_ENV": "prod"}, "CARAVAN_ENV"),
        ({"MAP_TILE_URL": "https://tiles.example/{z}/{x}.png"}, "MAP_TILE_URL"),
    ],
    ids=[
        "debug-maybe",
        "no-secret-key",
        "unreadable-secret-file",
        "mysql",
        "redis-scheme",
        "env-typo",
        "tile-url",
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(compose, example_env, tmp_path, change, named):
    env = _secret_files(compose, example_env, "web", tmp_path)
    for name, value in change.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = _run_settings(env)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and named in last_line, result.stderr


def _image_layout(dockerfile: Path, root: Path) -> None:
    """Copy what the Dockerfile's COPY instructions put in the image under ``root``."""
    for paths, destination in copies(parse_dockerfile(dockerfile)):
        for source in paths:
            src = ROOT / source
            target = root / destination.lstrip("/")
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


def test_orthanc_entry_point_renders_the_compose_configuration(compose, example_env, tmp_path):
    if not LAUNCHER.exists():
        pytest.skip("dicom/orthanc/launcher.py is not written yet")
    image = tmp_path / "image"
    _image_layout(ORTHANC_DOCKERFILE, image)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    env = _secret_files(compose, example_env, "orthanc", secrets)
    env["ORTHANC_RUN_DIR"] = str(tmp_path / "run")
    entrypoint = exec_form(next(a for k, a in parse_dockerfile(ORTHANC_DOCKERFILE) if k == "ENTRYPOINT"))
    script = image / entrypoint[1].lstrip("/")
    result = subprocess.run(
        [sys.executable, str(script), "render"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(Path(result.stdout.strip()).read_text())
    # Rendered from the files as the Dockerfile lays them out, not from the repository.
    assert Path(config["PythonScript"]).is_relative_to(image)
    assert Path(config["PythonScript"]).is_file()

    app = service_env(compose, "web")
    assert config["HttpPort"] == urlsplit(app["ORTHANC_URL"]).port
    assert config["DicomPort"] == int(app["ORTHANC_DICOM_PORT"])
    assert config["DicomAet"] == app["ORTHANC_AET"]
    assert config["RemoteAccessAllowed"] is True
    assert config["AuthenticationEnabled"] is True
    assert config["RegisteredUsers"] == {app["ORTHANC_USERNAME"]: example_env["ORTHANC_PASSWORD"]}
    nudge = urlsplit(config["Caravan"]["NudgeUrl"])
    assert (nudge.hostname, nudge.port) == ("web", 8000)
    assert config["Caravan"]["PluginSecret"] == example_env["ORTHANC_PLUGIN_SECRET"]
    vans = {entry.split("@")[0] for entry in example_env["ORTHANC_ALLOWED_MODALITIES"].split(",")}
    assert set(config["DicomModalities"]) == vans

    postgresql = config["PostgreSQL"]
    assert postgresql["EnableIndex"] is True and postgresql["EnableStorage"] is False
    assert (postgresql["Host"], postgresql["Port"]) == ("postgres", 5432)
    assert (postgresql["Database"], postgresql["Username"]) == ("orthanc", "orthanc")
    assert postgresql["Password"] == example_env["ORTHANC_DB_PASSWORD"]
    assert postgresql["Lock"] is False, "a locked index admits only one Orthanc"
    plugins = [Path(plugin).name for plugin in config["Plugins"]]
    assert plugins == ["libOrthancPython.so", "libOrthancDicomWeb.so", "libOrthancPostgreSQLIndex.so"]
    # The rendered configuration holds passwords.
    assert Path(result.stdout.strip()).stat().st_mode & 0o077 == 0


def test_orthanc_entry_point_refuses_a_postgres_host_without_password(compose, example_env, tmp_path):
    if not LAUNCHER.exists():
        pytest.skip("dicom/orthanc/launcher.py is not written yet")
    env = _secret_files(compose, example_env, "orthanc", tmp_path)
    env.pop("ORTHANC_POSTGRESQL_PASSWORD_FILE")
    env["ORTHANC_RUN_DIR"] = str(tmp_path / "run")
    image = tmp_path / "image"
    _image_layout(ORTHANC_DOCKERFILE, image)
    result = subprocess.run(
        [sys.executable, str(image / "opt/caravan/orthanc_entrypoint.py"), "render"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ORTHANC_POSTGRESQL_PASSWORD" in result.stderr
    assert not (tmp_path / "run" / "orthanc.json").exists()


def test_orthanc_healthcheck_imports_what_it_probes_with(compose, example_env, tmp_path):
    if not LAUNCHER.exists():
        pytest.skip("dicom/orthanc/launcher.py is not written yet")
    image = tmp_path / "image"
    _image_layout(ORTHANC_DOCKERFILE, image)
    env = _secret_files(compose, example_env, "orthanc", tmp_path)
    env["ORTHANC_RUN_DIR"] = str(tmp_path / "run")
    code = healthcheck_code(parse_dockerfile(ORTHANC_DOCKERFILE)).replace("'/opt/", f"'{image}/opt/")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # No Orthanc listens here: the probe must get as far as the connection, which proves the
    # imports, the configuration from the environment and the call itself are right.
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(
            ("urllib.error.URLError", "urllib.error.HTTPError", "ConnectionRefusedError")
        ), result.stderr
