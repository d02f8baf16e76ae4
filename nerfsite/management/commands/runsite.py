"""Serve the site and run a django-q2 worker beside it, until Ctrl-C or SIGTERM stops both.

The web server is Django's runserver in development and gunicorn with
ENVIRONMENT=production (`make serve`; its settings are in gunicorn.conf.py). A worker that
dies is started again: its processes and engine stages died with it (see the qcluster
command), and the recovery schedule resumes its job. A worker that dies WORKER_RESTARTS
times within RESTART_WINDOW_S cannot start (a broker that does not answer, say), and a web
server that dies is a broken site: then everything stops and the command exits with status
1, for the platform's restart policy (systemd's Restart=on-failure, Docker's --restart).

Each child runs in its own session, so a signal meant for the whole group (a service
manager's SIGTERM, which make also passes on) reaches it once, from here: django-q2's
sentinel dies on a SIGTERM of its own and can leave the cluster's main process waiting on a
lock it held. Each child also dies with this process, even when it is killed with SIGKILL
(PARENT_PID_ENV: see pipeline.engine.lifeline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pipeline.engine.lifeline import PARENT_PID_ENV

WORKER_RESTARTS = 5
RESTART_WINDOW_S = 300.0
STOP_GRACE_S = 20.0  # gunicorn.conf.py's graceful_timeout fits inside it


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = ("Serve the site on HOST:PORT (default 127.0.0.1:8000) with a django-q2 worker: "
            "runserver in development, gunicorn with ENVIRONMENT=production.")

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport",
            nargs="?",
            default=f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}",
        )

    def handle(self, *args, addrport: str, **options) -> None:
        signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` stops both, as Ctrl-C does
        children = {"web": self._start_web(addrport), "worker": self._start_worker()}
        server = "gunicorn" if settings.PRODUCTION else "runserver"
        self.stdout.write(self.style.SUCCESS(
            f"Serving http://{addrport}/ ({server}) with a worker. Press Ctrl-C to stop both."
        ))
        restarts: deque[float] = deque()
        try:
            while True:
                time.sleep(0.5)
                if (code := children["web"].poll()) is not None:
                    raise CommandError(f"The web server exited ({code}); stopping the worker.")
                if (code := children["worker"].poll()) is not None:
                    now = time.monotonic()
                    while restarts and now - restarts[0] > RESTART_WINDOW_S:
                        restarts.popleft()
                    if len(restarts) >= WORKER_RESTARTS:
                        raise CommandError(
                            f"The worker exited ({code}) {WORKER_RESTARTS + 1} times within "
                            f"{RESTART_WINDOW_S / 60:.0f} minutes; stopping. See its log above.")
                    restarts.append(now)
                    self.stderr.write(f"The worker exited ({code}); starting it again.")
                    children["worker"] = self._start_worker()
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            # Once: a second signal (make passes SIGTERM on to us) must not cut this short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for proc in children.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in children.values():
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    @staticmethod
    def _start_web(addrport: str) -> subprocess.Popen:
        if settings.PRODUCTION:
            # gunicorn reads gunicorn.conf.py from the project root; HOST:PORT from here.
            return _start_child(["-m", "gunicorn", "--bind", addrport])
        return _start_child(["manage.py", "runserver", addrport, "--noreload"])

    @staticmethod
    def _start_worker() -> subprocess.Popen:
        return _start_child(["manage.py", "qcluster"])


def _start_child(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=settings.BASE_DIR,
                            env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
                            start_new_session=True)
