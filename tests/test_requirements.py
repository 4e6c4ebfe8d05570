"""The dependency pins: every requirement exact, and the lock (constraints.txt) equal to what is
installed, so a fresh clone resolves the same tree as the one the suite ran on."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[a-z0-9,_-]+\])?==([A-Za-z0-9.+!-]+)$")
NOT_LOCKED = {"pip", "setuptools"}  # the venv's own tooling


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#") or line.startswith(("-r ", "-c ")):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}:{number}: {line!r} is not pinned as name==version"
        pins[_name(match.group(1))] = match.group(3)
    return pins


def test_every_requirement_is_pinned_and_agrees_with_the_lock():
    lock = _pins(ROOT / "constraints.txt")
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text().splitlines()
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in _pins(ROOT / name).items():
            assert lock.get(package) == version, (
                f"{name} pins {package}=={version}, the lock {lock.get(package)}"
            )


def test_the_lock_is_exactly_the_installed_tree():
    installed = {
        _name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if _name(dist.metadata["Name"]) not in NOT_LOCKED
    }
    lock = _pins(ROOT / "constraints.txt")
    missing = {name: version for name, version in installed.items() if lock.get(name) != version}
    extra = sorted(set(lock) - set(installed))
    assert not missing, f"installed but not locked at that version (regenerate constraints.txt): {missing}"
    assert not extra, f"locked but not installed: {extra}"
