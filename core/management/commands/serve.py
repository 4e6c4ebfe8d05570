"""Serve HTTP and websockets with several daphne processes on one port.

daphne is one process on one core. A live event is written to each open websocket by the
process that holds it (about 25-60 us per socket), so 1,000 readers on one process take
25-60 ms per event on the last socket; spread over one process per core it is a fraction of
that (docs/benchmarks.md, "Live-update fan-out"). This command binds one listening socket per
process with SO_REUSEPORT on the same address (the kernel spreads new connections evenly over
them), starts ``daphne --fd`` on each, restarts a process that dies (its socket stays open
here, so connections wait in its backlog instead of being refused), and stops them all on
SIGTERM/SIGINT.

    manage.py serve --bind 0.0.0.0 --port 8000 --processes 2 --access-log /dev/null
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

RESTARTS_PER_MINUTE = 5
APPLICATION = "config.asgi:application"


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Command(BaseCommand):
    help = "Run N daphne processes on one address (one per core by default)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="daphne processes (default: WEB_PROCESSES, else one per core with Redis, 1 without)",
        )
        parser.add_argument("--access-log", default=None, help="passed to daphne (e.g. /dev/null)")

    def handle(self, *args, bind: str, port: int, processes: int | None, access_log: str | None, **options):
        # The in-memory channel layer lives inside one process: a live event emitted in one
        # daphne would never reach the websockets held by another.
        shared_layer = "InMemory" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]
        if processes is None:
            processes = int(os.environ.get("WEB_PROCESSES") or 0) or (
                (os.cpu_count() or 1) if shared_layer else 1
            )
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        if processes > 1 and not shared_layer:
            raise CommandError(
                "several processes need a shared channel layer: set REDIS_URL (the in-memory layer "
                "cannot carry live events between processes)"
            )
        try:
            sockets = [listening_socket(bind, port) for _ in range(processes)]
        except OSError as exc:
            raise CommandError(f"cannot listen on {bind}:{port}: {exc}") from None
        daphne = str(Path(sys.executable).with_name("daphne"))

        def start(sock: socket.socket) -> subprocess.Popen:
            command = [daphne, "--fd", str(sock.fileno())]
            if access_log is not None:
                command += ["--access-log", access_log]
            return subprocess.Popen([*command, APPLICATION], pass_fds=(sock.fileno(),))

        children = [start(sock) for sock in sockets]
        self.stdout.write(f"serve: {processes} daphne process(es) on {bind}:{port}", ending="\n")
        self.stdout.flush()
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        restarts: list[float] = []
        try:
            while not stopping:
                time.sleep(0.5)
                for n, child in enumerate(children):
                    code = child.poll()
                    if code is None or stopping:
                        continue
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < 60] + [now]
                    if len(restarts) > RESTARTS_PER_MINUTE:
                        raise CommandError(f"daphne keeps exiting (last code {code}); giving up")
                    self.stderr.write(f"serve: daphne process {n} exited with {code}; restarting")
                    children[n] = start(sockets[n])
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            for sock in sockets:
                sock.close()
