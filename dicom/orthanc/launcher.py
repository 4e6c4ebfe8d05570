"""Start and stop Caravan's Orthanc from a run directory (configuration: orthanc_config.py).

Standard library only: ``manage.py orthanc``, the test fixture and the Orthanc container image
all use this file, and the image has neither Django nor the platform's virtualenv. The
configuration names are re-exported here, so callers need only this module.

Command line (values come from the environment, see docs/orthanc.md)::

    python3 dicom/orthanc/launcher.py render|start|stop|run|status [--run-dir DIR]
        [--http-port N] [--dicom-port N]

``start`` detaches Orthanc, writes its PID and waits until ``GET /system`` answers with the
platform's credentials; ``run`` replaces the current process with Orthanc (containers, where
Orthanc must be PID 1 to receive the stop signal); ``stop`` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

if not __package__:
    # Run as a script (the container image): make the ``dicom.orthanc`` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dicom.orthanc.orthanc_config import (  # noqa: E402
    CONFIG_NAME,
    DICOMWEB_PLUGIN_NAME,
    NUDGE_PATH,
    ORTHANC_BINARY,
    PID_NAME,
    PLUGINS_DIR,
    PYTHON_PLUGIN_NAME,
    LauncherError,
    Modality,
    OrthancConfig,
    config_from_env,
    env_int,
    env_value,
    nudge_url_for,
    parse_modalities,
    render,
)

__all__ = [
    "DICOMWEB_PLUGIN_NAME",
    "NUDGE_PATH",
    "ORTHANC_BINARY",
    "PLUGINS_DIR",
    "PYTHON_PLUGIN_NAME",
    "LauncherError",
    "Modality",
    "OrthancConfig",
    "check_installed",
    "config_from_env",
    "env_int",
    "env_value",
    "nudge_url_for",
    "orthanc_environment",
    "parse_modalities",
    "read_pid",
    "render",
    "run_foreground",
    "start",
    "stop",
    "wait_ready",
]

# Environment variables that would point the Python embedded in Orthanc at the platform's
# virtualenv or site; the plugin is written for the system interpreter's standard library.
_PYTHON_ENV_BLOCKLIST = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def check_installed(config: OrthancConfig) -> None:
    missing = [
        path
        for path in (
            config.orthanc_binary,
            config.python_plugin,
            config.dicomweb_plugin,
            config.plugin_script,
        )
        if not os.path.exists(path)
    ]
    if missing:
        raise LauncherError(
            "Orthanc is not installed completely; missing: "
            + ", ".join(missing)
            + " (Debian: apt-get install orthanc orthanc-python orthanc-dicomweb)"
        )


def orthanc_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _PYTHON_ENV_BLOCKLIST}
    # DCMTK, Orthanc's DICOM stack, reads TCP_NODELAY from the environment to decide whether to
    # disable Nagle's algorithm; set it rather than depend on the build's default, because with
    # Nagle on, small DIMSE responses wait for a delayed ACK and every C-STORE pays for it.
    env["TCP_NODELAY"] = "1"
    # The plugin script lives in the (possibly read-only) source tree.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _command(config: OrthancConfig) -> list[str]:
    command = [config.orthanc_binary]
    if config.verbose:
        command.append("--verbose")
    command.append(str(config.config_path))
    return command


def _basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def probe(url: str, username: str, password: str, timeout: float = 2.0) -> dict[str, object]:
    """``GET /system`` with credentials; raises OSError/HTTPError when Orthanc does not answer."""
    if not url.startswith(("http://", "https://")):
        raise LauncherError(f"{url!r} is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url.rstrip("/") + "/system", headers={"Authorization": _basic_auth(username, password)}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def proc_stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the command name (Linux): [0] state, [11] utime,
    [12] stime (clock ticks), [16] nice. The name may hold spaces and parentheses, hence the
    split at the last ")"."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _is_alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall back to a signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie still answers kill(0); its state letter is the first field after the name.
        return proc_stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_orthanc(pid: int, config_path: Path) -> bool:
    # A stale PID file may name a recycled PID; only signal a process whose command line
    # carries this run directory's configuration.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc (not Linux): trust the PID file
    return str(config_path).encode() in cmdline


def read_pid(run_dir: str | os.PathLike[str]) -> int | None:
    """The PID of the Orthanc running from ``run_dir``, or None (stale files are removed)."""
    run_path = Path(run_dir).resolve()
    pid_path = run_path / PID_NAME
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _is_alive(pid) and _is_our_orthanc(pid, run_path / CONFIG_NAME):
        return pid
    pid_path.unlink(missing_ok=True)
    return None


def wait_ready(config: OrthancConfig, *, timeout: float = 30.0, pid: int | None = None) -> dict[str, object]:
    """Poll ``GET /system`` until it answers 200 with the configured credentials."""
    deadline = time.monotonic() + timeout
    last_error: object = None
    while time.monotonic() < deadline:
        if pid is not None and not _is_alive(pid):
            tail = _log_tail(config.log_path)
            raise LauncherError(f"Orthanc exited during start-up; last lines of {config.log_path}:\n{tail}")
        try:
            return probe(config.url, config.username, config.password, timeout=1.0)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                # Something else owns the port, or an old Orthanc with other credentials.
                raise LauncherError(f"{config.url} refused the configured credentials (401)") from exc
            last_error = exc
        except (OSError, ValueError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise LauncherError(
        f"Orthanc did not answer {config.url}/system within {timeout:.0f} s ({last_error}); "
        f"last lines of {config.log_path}:\n{_log_tail(config.log_path)}"
    )


def start(config: OrthancConfig, *, timeout: float = 30.0) -> int:
    """Render, start Orthanc detached from this process, wait until it answers; return its PID."""
    check_installed(config)
    running = read_pid(config.run_dir)
    if running is not None:
        raise LauncherError(f"Orthanc is already running from {config.run_dir} (pid {running})")
    render(config)
    log_fd = os.open(config.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            _command(config),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=config.run_dir,
            env=orthanc_environment(),
            # Its own session: a Ctrl-C in the terminal that ran `manage.py orthanc` must not
            # reach it; it is stopped by PID.
            start_new_session=True,
            umask=0o077,
        )
    finally:
        os.close(log_fd)
    config.pid_path.write_text(f"{process.pid}\n")
    try:
        wait_ready(config, timeout=timeout, pid=process.pid)
    except BaseException:
        _terminate(process.pid, timeout=5.0)
        config.pid_path.unlink(missing_ok=True)
        raise
    return process.pid


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return True
        time.sleep(0.05)
    return not _is_alive(pid)


def _terminate(pid: int, *, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _is_alive(pid)  # reap it if it was our child
        return
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def stop(run_dir: str | os.PathLike[str], *, timeout: float = 15.0) -> bool:
    """Stop the Orthanc of ``run_dir`` (SIGTERM, SIGKILL after ``timeout``). False if none ran."""
    run_path = Path(run_dir).resolve()
    pid = read_pid(run_path)
    if pid is None:
        return False
    _terminate(pid, timeout=timeout)
    (run_path / PID_NAME).unlink(missing_ok=True)
    return True


def run_foreground(config: OrthancConfig) -> None:
    """Replace this process with Orthanc, logging to stdout (never returns)."""
    check_installed(config)
    running = read_pid(config.run_dir)
    if running is not None:
        raise LauncherError(f"Orthanc is already running from {config.run_dir} (pid {running})")
    render(config)
    config.pid_path.write_text(f"{os.getpid()}\n")  # exec keeps the PID
    os.chdir(config.run_dir)
    os.umask(0o077)
    command = _command(config)
    os.execve(command[0], command, orthanc_environment())  # noqa: S606 (fixed argv, no shell)


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="launcher.py", description="Render, start and stop Caravan's Orthanc (see docs/orthanc.md)."
    )
    parser.add_argument("action", choices=["render", "start", "stop", "run", "status"])
    parser.add_argument("--run-dir", help="run directory (default: $ORTHANC_RUN_DIR or var/orthanc)")
    parser.add_argument("--http-port", type=int, help="HTTP port (default: port of $ORTHANC_URL)")
    parser.add_argument("--dicom-port", type=int, help="DICOM port (default: $ORTHANC_DICOM_PORT or 4242)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for start/stop")
    args = parser.parse_args(argv)
    try:
        if args.action in {"stop", "status"}:
            run_dir = Path(args.run_dir or os.environ.get("ORTHANC_RUN_DIR") or "var/orthanc")
            if args.action == "status":
                pid = read_pid(run_dir)
                print(f"running (pid {pid})" if pid else "not running")
                return 0 if pid else 3
            print("stopped" if stop(run_dir, timeout=args.timeout) else "not running")
            return 0
        config = config_from_env(run_dir=args.run_dir, http_port=args.http_port, dicom_port=args.dicom_port)
        if args.action == "render":
            print(render(config))
        elif args.action == "start":
            pid = start(config, timeout=args.timeout)
            print(f"Orthanc started (pid {pid}) at {config.url}, DICOM {config.aet}@{config.dicom_port}")
        else:
            run_foreground(config)
    except LauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
