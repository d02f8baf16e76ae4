"""Errors the engine reports to its caller as a one-line reason and an exit code."""

from __future__ import annotations


class EngineError(Exception):
    """A failure the user can act on: its message is shown as is, on one line.

    Exit codes: 2 is argparse's usage error; 3 bad or insufficient input (photos,
    workspace); 4 a resource limit (memory, size); 1 is left for unexpected crashes.
    """

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class InputError(EngineError):
    """The photos or the workspace cannot produce a result as they are."""

    exit_code = 3


class ResourceError(EngineError):
    """The request does not fit this machine (memory, frame size)."""

    exit_code = 4
