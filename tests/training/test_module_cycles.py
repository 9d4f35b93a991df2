"""Inside training/ and retraining/, modules import each other one way: no file-level cycle.

Every import counts (top level, inside functions, under TYPE_CHECKING), as in tests/test_architecture.py,
whose parsing this reuses; here the nodes are modules, not packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

from test_architecture import ROOT, Edge, _imported, _module_name, _tree, cycles

STAGED = ("training", "retraining")


def module_edges(root: Path, packages: tuple[str, ...]) -> list[Edge]:
    """Every import from one module of `packages` to another (`from pkg import mod` names the module)."""
    paths = {
        ".".join(_module_name(root, p)): p for package in packages for p in (root / package).rglob("*.py")
    }
    edges = []
    for name, path in sorted(paths.items()):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = _imported(node, name.split("."), path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                targets += [f"{targets[0]}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in paths and target != name:
                    edges.append(Edge(name, target, str(path.relative_to(root)), node.lineno))
    return edges


def test_no_module_cycle_in_training_or_retraining():
    assert cycles(module_edges(ROOT, STAGED)) == []


def test_the_real_module_graph_has_edges_to_check():
    """Guard against a checker that sees nothing: the compositions do import the stages."""
    edges = {(e.source, e.target) for e in module_edges(ROOT, STAGED)}
    assert ("training.train", "training.stages") in edges
    assert ("retraining.retrain", "training.stages") in edges


def test_a_late_import_cycle_between_modules_is_reported(tmp_path):
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def late():\n    from pkg.a import thing\n",
        },
    )
    assert cycles(module_edges(root, ("pkg",))) == ["cycle pkg.a -> pkg.b -> pkg.a (pkg/a.py:1, pkg/b.py:2)"]
