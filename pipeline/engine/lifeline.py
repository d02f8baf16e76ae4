"""Processes that die with their parent, so a killed worker leaves nothing running a job.

Linux's PR_SET_PDEATHSIG has the kernel send a signal to a process when the thread that
started it exits, however it exits (SIGKILL included). fork() clears the setting and
exec() keeps it, so each generation sets it for itself:

- forked children (django-q2's sentinel, workers, monitor and pusher; an engine stage's
  forked helpers) through children_die_with_parent(), an at-fork hook;
- an engine stage, a new program started by the local backend, through
  die_with_parent_from_env() at its start: the backend names its own pid in PARENT_PID_ENV.

The signal is SIGKILL: it cannot be caught or ignored, and it does not wait for a long C
call (a pycolmap mapping, a torch step) to return to Python. Stdlib only: the engine
imports nothing from Django. Elsewhere than Linux these do nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_PID_ENV = "NERF_DIE_WITH_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_LINUX = sys.platform.startswith("linux")

_parent_pid = 0  # the forking process, remembered before each fork for its child
_hooked = False


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent (the thread that started it) exits."""
    if not _LINUX:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    # The parent may have died before the call above, and then no signal will ever come:
    # die now, as the signal would have made us.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def children_die_with_parent() -> None:
    """Every process forked from now on, by this process or its forked descendants, dies
    with the process (the thread, in fact) that forked it."""
    global _hooked
    if not _LINUX or _hooked:
        return
    os.register_at_fork(before=_remember_parent, after_in_child=_bind_to_parent)
    _hooked = True


def die_with_parent_from_env() -> None:
    """Die with the parent named in PARENT_PID_ENV, if any, and so do our forked children.

    The variable is taken out of the environment: a program we start has another parent.
    """
    value = os.environ.pop(PARENT_PID_ENV, "").strip()
    if value:
        die_with_parent(int(value))
        children_die_with_parent()


def _remember_parent() -> None:
    global _parent_pid
    _parent_pid = os.getpid()


def _bind_to_parent() -> None:
    die_with_parent(_parent_pid)
