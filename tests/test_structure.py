"""The layout rule: stages meet only through Redis and the ``firstmotion`` spine.

A stage is ``stream`` or one ``workers`` module family (``workers.polarity``,
``workers.mechanism``, ``workers.reprocess``, ``workers.stress``, the associator
``workers.associate*``, the catalog ``workers.catalog*`` with its web pages ``workers.web*``).
A stage may import the spine and itself, never another stage; the spine imports no stage. Imports
inside functions count as well: the rule is about what a stage depends on, not when it loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("firstmotion", "stream", "workers")


def stage_of(module: str) -> str:
    """The stage a dotted module name belongs to (``firstmotion`` for the spine)."""
    parts = module.split(".")
    if parts[0] != "workers" or len(parts) == 1:
        return parts[0]
    name = parts[1]
    if name.startswith("associate"):
        return "workers.associate"
    if name.startswith(("catalog", "web")):
        return "workers.catalog"
    return f"workers.{name}"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path`` under the project's packages."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in PACKAGES]
    return found


def crossings() -> list[str]:
    bad = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mine = stage_of(module)
            for line, other in imported_modules(path):
                theirs = stage_of(other)
                if theirs != mine and theirs != "firstmotion":
                    bad.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {other}")
    return bad


def test_stage_of_names_the_stage_families():
    assert stage_of("workers.associate_online") == stage_of("workers.associate")
    assert stage_of("workers.web_data") == stage_of("workers.catalog_export")
    assert stage_of("workers.polarity.classifier") == "workers.polarity"
    assert stage_of("stream.scenario.build") == "stream"
    assert stage_of("firstmotion.quakeml") == "firstmotion"
    assert stage_of("workers.mechanism.worker") != stage_of("workers.reprocess.outputs")


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from workers.mechanism.plot import x\n    import numpy\n")
    assert imported_modules(path) == [(2, "workers.mechanism.plot")]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_is_scanned(package):
    assert any((ROOT / package).rglob("*.py"))


def test_stages_import_only_the_spine_and_themselves():
    assert crossings() == []
