"""The house's rules, read from the source: each stage name and each workspace path has one
definition.

Fast: the source is read with `ast`; only the engine's catalogue and workspace (Django-free)
are imported.
"""

from __future__ import annotations

import ast
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
# The site's own frames folder (pipeline.previews, pipeline.storage) has a manifest.json
# too: another folder, not the workspace's.
OTHER_FOLDERS = {("pipeline/previews.py", "manifest.json"),
                 ("pipeline/storage.py", "manifest.json")}


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
