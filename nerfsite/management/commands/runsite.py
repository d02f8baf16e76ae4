"""Serve the site and run a django-q2 worker beside it, until Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve the site on HOST:PORT (default 127.0.0.1:8000) with a django-q2 worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport",
            nargs="?",
            default=f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}",
        )

    def handle(self, *args, addrport: str, **options) -> None:
        signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` stops both, as Ctrl-C does
        manage = [sys.executable, "manage.py"]
        children = {
            "web": subprocess.Popen([*manage, "runserver", addrport, "--noreload"]),
            "worker": subprocess.Popen([*manage, "qcluster"]),
        }
        self.stdout.write(self.style.SUCCESS(
            f"Serving http://{addrport}/ with a worker. Press Ctrl-C to stop both."
        ))
        try:
            while True:
                for name, proc in children.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"The {name} process exited ({proc.returncode}).")
                        return
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            # Ctrl-C in a terminal reaches the children too (same process group); this
            # covers `kill`, a child that exited on its own, and children started from a
            # background shell, which ignore SIGINT.
            for proc in children.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in children.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
