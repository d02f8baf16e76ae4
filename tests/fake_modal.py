"""A FAKE of Modal's cloud, for tests only: the network edge and nothing more.

`FakeModalClient` stands in for the `modal` module where ModalBackend reaches Modal's
servers (Client, Volume, Function, FunctionCall); it raises Modal's real exception types
and lists with Modal's real FileEntry. `FakeModalVolume` is the `nerf-data` volume as a
local folder (the same folder the Modal functions' bodies see as their mount), recording
reload() and commit(). A "deployed" function runs a Python callable in a thread, which
may be the real body of a function in pipeline/modal_app.py.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import modal.exception
import modal.types

FAKE_TOKEN = ("ak-fake-token-id", "as-fake-token-secret")


class FakeModalVolume:
    """A Modal Volume kept in a local folder: the methods ModalBackend and the functions use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.events: list[str] = []
        self.uploads: list[tuple[str, bool]] = []  # (remote path, force)

    # inside a container
    def reload(self) -> None:
        self.events.append("reload")

    def commit(self) -> None:
        self.events.append("commit")

    # from outside
    def _local(self, path: str | PurePosixPath) -> Path:
        rel = PurePosixPath(str(path).lstrip("/"))
        assert ".." not in rel.parts, path
        return self.root / rel

    @contextlib.contextmanager
    def batch_upload(self, force: bool = False) -> Iterator[_FakeBatch]:
        batch = _FakeBatch(self, force)
        yield batch
        batch.flush()

    def listdir(self, path: str, *, recursive: bool = False) -> list[modal.types.FileEntry]:
        local = self._local(path)
        if not local.exists():
            raise modal.exception.NotFoundError(f"No such file or directory: {path}")
        if local.is_file():
            return [self._entry(local)]
        children = local.rglob("*") if recursive else local.iterdir()
        return [self._entry(p) for p in sorted(children)]

    def read_file(self, path: str) -> Iterator[bytes]:
        local = self._local(path)
        if not local.is_file():
            raise FileNotFoundError(f"No such file: {path}")
        with local.open("rb") as fh:
            while chunk := fh.read(64 * 1024):
                yield chunk

    def remove_file(self, path: str, recursive: bool = False) -> None:
        local = self._local(path)
        if not local.exists():
            raise FileNotFoundError(f"No such file or directory: {path}")
        if local.is_dir():
            if not recursive:
                raise modal.exception.InvalidError(f"{path} is a directory")
            shutil.rmtree(local)
        else:
            local.unlink()

    def _entry(self, local: Path) -> modal.types.FileEntry:
        kind = modal.types.FileEntryType.DIRECTORY if local.is_dir() \
            else modal.types.FileEntryType.FILE
        stat = local.stat()
        return modal.types.FileEntry(path=local.relative_to(self.root).as_posix(), type=kind,
                                     mtime=int(stat.st_mtime), size=stat.st_size)


class _FakeBatch:
    def __init__(self, volume: FakeModalVolume, force: bool) -> None:
        self.volume, self.force = volume, force
        self.pending: list[tuple[bytes, str]] = []

    def put_file(self, local_file: Path | str | io.BytesIO, remote_path: str) -> None:
        data = local_file.read() if hasattr(local_file, "read") else Path(local_file).read_bytes()
        self.pending.append((data, str(remote_path)))

    def put_directory(self, local_path: Path | str, remote_path: str) -> None:
        for path in sorted(Path(local_path).rglob("*")):
            if path.is_file():
                rel = path.relative_to(local_path).as_posix()
                self.put_file(path, f"{str(remote_path).rstrip('/')}/{rel}")

    def flush(self) -> None:
        # Like Modal: nothing is written unless the whole batch can be.
        for _, remote in self.pending:
            if self.volume._local(remote).exists() and not self.force:
                raise FileExistsError(f"{remote} exists; use force=True")
        for data, remote in self.pending:
            target = self.volume._local(remote)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            self.volume.uploads.append((remote, self.force))


class FakeFunctionCall:
    """A spawned call: runs its callable in a thread; get(timeout=0) never waits."""

    _ids = itertools.count(1)

    def __init__(self, body: Callable[..., Any], args: tuple, options: dict[str, Any]) -> None:
        self.object_id = f"fc-fake-{next(self._ids):04d}"
        self.args, self.options = args, options
        self.cancelled: list[bool] = []  # terminate_containers of each cancel()
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(body,), daemon=True)
        self._thread.start()

    def _run(self, body: Callable[..., Any]) -> None:
        try:
            self._result = body(*self.args)
        except BaseException as exc:  # re-raised by get(), as Modal does
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float = 600) -> None:
        assert self._done.wait(timeout), "the fake call did not finish"

    def get(self, timeout: float | None = None) -> Any:
        if self.cancelled:
            raise modal.exception.InputCancellation("Input was cancelled by the user")
        if not self._done.wait(timeout):
            raise TimeoutError()
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self, terminate_containers: bool = False) -> None:
        self.cancelled.append(terminate_containers)


class _FakeFunction:
    def __init__(self, cloud: FakeModalClient, app: str, name: str,
                 options: dict[str, Any] | None = None) -> None:
        self.cloud, self.app, self.name, self.options = cloud, app, name, options or {}

    def with_options(self, **options: Any) -> _FakeFunction:
        return _FakeFunction(self.cloud, self.app, self.name, {**self.options, **options})

    def spawn(self, *args: Any) -> FakeFunctionCall:
        if self.app != self.cloud.app_name or self.name not in self.cloud.functions:
            # The message Modal gives for a lookup of an app that is not deployed.
            raise modal.exception.NotFoundError(
                f"Lookup failed for Function '{self.name}' from the '{self.app}' app: "
                f"App '{self.app}' not found in environment 'main'.")
        call = FakeFunctionCall(self.cloud.functions[self.name], args, self.options)
        self.cloud.calls[call.object_id] = call
        self.cloud.spawned.append((self.name, args, self.options))
        return call


class FakeModalClient:
    """Stands in for the `modal` module at the network edge (see the module docstring).

    `functions` maps a deployed function's name to the callable a spawn runs.
    """

    exception = modal.exception
    types = modal.types

    def __init__(self, volume: FakeModalVolume, functions: dict[str, Callable[..., Any]],
                 *, app_name: str = "nerf-test", valid_token: tuple[str, str] = FAKE_TOKEN,
                 token_file: dict[str, str] | None = None) -> None:
        self.volume, self.functions, self.app_name = volume, functions, app_name
        self.valid_token = valid_token
        self.calls: dict[str, FakeFunctionCall] = {}
        self.spawned: list[tuple[str, tuple, dict[str, Any]]] = []
        self.connections: list[tuple[str, str]] = []
        self.config = SimpleNamespace(config=dict(token_file or {}))  # ~/.modal.toml
        cloud = self

        class Client:
            @staticmethod
            def from_credentials(token_id: str, token_secret: str) -> SimpleNamespace:
                # Modal's client says hello on creation; a wrong token fails right there.
                cloud.connections.append((token_id, token_secret))
                if (token_id, token_secret) != cloud.valid_token:
                    raise modal.exception.AuthError("Token ID is malformed or invalid.")
                return SimpleNamespace(token=(token_id, token_secret))

        class Volume:
            @staticmethod
            def from_name(name: str, *, create_if_missing: bool = False,
                          client: Any = None) -> FakeModalVolume:
                assert name == "nerf-data" and create_if_missing
                cloud.client_in_use = client
                return cloud.volume

        class Function:
            @staticmethod
            def from_name(app: str, name: str, *, client: Any = None) -> _FakeFunction:
                cloud.client_in_use = client
                return _FakeFunction(cloud, app, name)

        class FunctionCall:
            @staticmethod
            def from_id(call_id: str, client: Any = None) -> FakeFunctionCall:
                cloud.client_in_use = client
                try:
                    return cloud.calls[call_id]
                except KeyError:
                    raise modal.exception.NotFoundError(f"No function call {call_id}") from None

        self.Client, self.Volume, self.Function, self.FunctionCall = (
            Client, Volume, Function, FunctionCall)
        self.client_in_use: Any = None
