"""The house's rules, read from the source: each stage name and each workspace path has one
definition, the project's modules import each other without a circle, and the worker's
modules reach no HTTP code.

Fast: the source is read with `ast` (imports inside functions count too); only the engine's
catalogue and workspace (Django-free) and, for one check, the Job model are imported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline.engine import catalogue, workspace

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("accounts", "nerfsite", "notifications", "pipeline", "products")


def project_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            ids.add(id(body[0].value))
    # A string right after an assignment documents it.
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


def strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal in the file but its docstrings."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in skip:
            yield node.lineno, node.value


# --- stage names ------------------------------------------------------------------------
def _stage_literal(node: ast.AST) -> bool:
    """A list of stage names, or constants keyed by stage names: a stage definition."""
    def is_stage(n: ast.AST | None) -> bool:
        return isinstance(n, ast.Constant) and n.value in catalogue.STAGES

    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return sum(map(is_stage, node.elts)) >= 2
    if isinstance(node, ast.Dict):
        return (sum(map(is_stage, node.keys)) >= 2
                and all(isinstance(v, ast.Constant) for v in node.values))
    return False


def test_every_stage_is_named_once_in_the_catalogue():
    found = []
    for path in project_files():
        if path == ROOT / "pipeline" / "engine" / "catalogue.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        found += [f"{rel(path)}:{node.lineno}" for node in ast.walk(tree)
                  if _stage_literal(node)]
    assert found == [], "stage names listed outside pipeline/engine/catalogue.py"


def test_the_catalogue_drives_the_job_and_the_settings(settings):
    from pipeline.models import Job

    assert [s for s in Job.Stage.values if s not in ("pending", "done")] == list(
        catalogue.STAGE_NAMES)
    assert {s: Job.Stage(s).label for s in catalogue.STAGES} == {
        s.name: s.label for s in catalogue.STAGES.values()}
    assert tuple(settings.JOB_STAGE_TIME_LIMITS) == catalogue.ENGINE_STAGES


# --- workspace paths --------------------------------------------------------------------
# The site's own frames folder (pipeline.delivery.previews, .storage) has a manifest.json
# too: another folder, not the workspace's.
OTHER_FOLDERS = {("pipeline/delivery/previews.py", "manifest.json"),
                 ("pipeline/delivery/storage.py", "manifest.json")}


def workspace_paths() -> set[str]:
    """The workspace's file names and relative paths (those with a dot or a slash)."""
    return {value for name, value in vars(workspace).items()
            if name.isupper() and isinstance(value, str) and ("." in value or "/" in value)}


def test_every_workspace_path_is_named_once_in_workspace_py():
    paths = workspace_paths()
    assert {"images.zip", "progress.json", "frames/manifest.json", "model/object.json",
            "dataset/transforms.json", "frames/compare"} <= paths
    found = []
    for path in project_files():
        if path == ROOT / "pipeline" / "engine" / "workspace.py":
            continue
        for line, text in strings(path):
            if " " in text or (rel(path), text) in OTHER_FOLDERS:
                continue
            if any(text == p or text.endswith("/" + p) for p in paths):
                found.append(f"{rel(path)}:{line} {text!r}")
    assert found == [], "workspace paths spelled outside pipeline/engine/workspace.py"


# --- the import graph -------------------------------------------------------------------
def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in project_files()}


def imported_names(module: str) -> set[str]:
    """Every dotted name `module` imports, at the top or inside a function."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *filter(None, [base])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def project_module(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project module -> the project modules it imports, -> the other modules it imports)"""
    inner: dict[str, set[str]] = {}
    outer: dict[str, set[str]] = {}
    for module in MODULES:
        names = imported_names(module)
        inner[module] = {m for m in map(project_module, names) if m and m != module}
        outer[module] = {n for n in names if project_module(n) is None}
    return inner, outer


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_circle():
    inner, _ = import_graph()
    assert circles(inner) == []


# What the worker runs: django-q2 calls these functions by their dotted path, and the job
# task loads its backend by dotted path (pipeline.backends.base.get_backend).
WORKER_ENTRIES = ("pipeline.jobs.tasks", "pipeline.videos.tasks", "pipeline.jobs.recovery",
                  "pipeline.delivery.cleanup", "notifications.tasks", "products.services",
                  "pipeline.tasks", "pipeline.video_tasks", "pipeline.recovery",
                  "pipeline.cleanup", "pipeline.backends.local", "pipeline.backends.modal")
HTTP = ("django.http", "django.shortcuts", "django.views", "django.template.response",
        "ninja")


def worker_modules() -> set[str]:
    inner, _ = import_graph()
    seen: set[str] = set()
    todo = [m for m in WORKER_ENTRIES if m in MODULES]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(inner[module])
    return seen


def test_the_worker_imports_no_http_code():
    _, outer = import_graph()
    reached = worker_modules()
    assert {"pipeline.jobs.tasks", "pipeline.backends.local", "pipeline.models"} <= reached
    http = {module: sorted(n for n in outer[module] if n.startswith(HTTP))
            for module in sorted(reached)}
    assert {m: names for m, names in http.items() if names} == {}


def test_tasks_queued_before_the_packages_still_find_their_functions():
    from django.utils.module_loading import import_string

    from pipeline.delivery.cleanup import cleanup_workspaces
    from pipeline.jobs import recovery, transitions
    from pipeline.jobs.schedules import SCHEDULES
    from pipeline.jobs.tasks import run_job
    from pipeline.videos import services as video_services
    from pipeline.videos.tasks import make_video

    assert import_string("pipeline.tasks.run_job") is run_job
    assert import_string("pipeline.video_tasks.make_video") is make_video
    assert import_string("pipeline.recovery.recover_stale_jobs") is recovery.recover_stale_jobs
    assert import_string("pipeline.recovery.resend_lost_tasks") is recovery.resend_lost_tasks
    assert import_string("pipeline.cleanup.cleanup_workspaces") is cleanup_workspaces
    # What is queued from now on names the packages.
    assert import_string(transitions.TASK) is run_job
    assert import_string(video_services.TASK) is make_video
    for spec in SCHEDULES.values():
        assert callable(import_string(spec["func"]))
