"""Imports point one way, down the layers of docs/architecture.md, and no package cycle exists.

The graph is built from the source with `ast`: every `import` and `from ... import` anywhere in a
module (top level, inside functions, under TYPE_CHECKING), so a late import cannot hide an upward one.
Starting a package as a program counts too: a command list `[..., "-m", "pkg.mod", ...]` needs `pkg`
installed and running, so a lower floor that starts the top floor's CLI is an upward edge.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom → top. A package may import its own modules and any package on a LOWER layer; packages
# sharing a layer may not import each other (training and model_api stay independent: serving
# code never loads training code; the registry browser ui/ and the monitor's analysis monitoring/ need
# neither).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("registry",),
    ("training", "model_api", "ui", "monitoring"),
    ("retraining",),
    ("unit_testing",),
    ("deploy",),
    ("mlops",),
)


@dataclass(frozen=True)
class Edge:
    """One import of package `target` by a module of package `source`, at path:line."""

    source: str
    target: str
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _module_name(root: Path, path: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(node: ast.AST, module: list[str], is_package: bool) -> list[str]:
    """The absolute dotted names one import statement reaches."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            return [node.module or ""]
        # Relative: from the module's package, one level up per extra dot.
        base = module if is_package else module[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        return [".".join([*base, node.module] if node.module else base)]
    return []


def _run_as_program(node: ast.AST) -> list[str]:
    """The modules a command list literal runs with `-m` (`[sys.executable, "-m", "mlops.cli", ...]`)."""
    if not isinstance(node, ast.List | ast.Tuple):
        return []
    items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
    return [str(name) for flag, name in itertools.pairwise(items) if flag == "-m" and isinstance(name, str)]


def import_edges(root: Path, packages: set[str]) -> list[Edge]:
    """Every import between two of `packages` in the .py files under root/<package>/."""
    edges = []
    for package in sorted(packages):
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(root, path)
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                names = _imported(node, module, path.name == "__init__.py") + _run_as_program(node)
                for name in names:
                    target = name.partition(".")[0]
                    if target in packages and target != package:
                        edges.append(Edge(package, target, str(path.relative_to(root)), node.lineno))
    return edges


def layer_violations(edges: list[Edge], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """Each import that points up a layer or sideways within one, naming file and line."""
    rank = {package: i for i, layer in enumerate(layers) for package in layer}
    problems = []
    for edge in edges:
        if rank[edge.target] > rank[edge.source]:
            problems.append(f"{edge.where()}: {edge.source} imports {edge.target}, a layer above it")
        elif rank[edge.target] == rank[edge.source]:
            problems.append(f"{edge.where()}: {edge.source} imports {edge.target}, on the same layer")
    return problems


def cycles(edges: list[Edge]) -> list[str]:
    """Each package cycle, as `a -> b -> a` with the file:line of every step."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
    found: set[tuple[str, ...]] = set()
    report = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, {})):
            if nxt in path:
                loop = path[path.index(nxt) :]
                start = loop.index(min(loop))  # one report per cycle, whatever node it was entered at
                key = tuple(loop[start:] + loop[:start])
                if key not in found:
                    found.add(key)
                    steps = [*key, key[0]]
                    where = ", ".join(graph[a][b].where() for a, b in itertools.pairwise(steps))
                    report.append(f"cycle {' -> '.join(steps)} ({where})")
            else:
                walk(nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return report


PACKAGES = {package for layer in LAYERS for package in layer}


def test_every_package_is_on_a_layer():
    """A new top-level package must be placed on a layer before it can import or be imported."""
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk == PACKAGES


def test_imports_point_down_the_layers():
    assert layer_violations(import_edges(ROOT, PACKAGES), LAYERS) == []


def test_no_import_cycle_between_packages():
    assert cycles(import_edges(ROOT, PACKAGES)) == []


def test_core_imports_nothing_else_of_ours():
    assert [e.where() for e in import_edges(ROOT, PACKAGES) if e.source == "core"] == []


# -- the checks can fail ---------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SMALL = (("low",), ("mid_a", "mid_b"), ("top",))


def test_an_upward_import_inside_a_function_is_reported_with_file_and_line(tmp_path):
    root = _tree(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/helpers.py": "import os\n\n\ndef late():\n    from top.cli import main\n    return main\n",
            "top/__init__.py": "",
            "top/cli.py": "from low import helpers\n",
        },
    )
    edges = import_edges(root, {"low", "top"})
    assert layer_violations(edges, (("low",), ("top",))) == [
        "low/helpers.py:5: low imports top, a layer above it"
    ]


def test_a_sideways_import_and_a_cycle_are_reported(tmp_path):
    root = _tree(
        tmp_path,
        {
            "mid_a/__init__.py": "from mid_b import thing\n",
            "mid_b/__init__.py": "thing = 1\n",
            "mid_b/late.py": "def f():\n    import mid_a.x\n",
            "mid_a/x.py": "",
        },
    )
    edges = import_edges(root, {"mid_a", "mid_b"})
    assert layer_violations(edges, SMALL) == [
        "mid_a/__init__.py:1: mid_a imports mid_b, on the same layer",
        "mid_b/late.py:2: mid_b imports mid_a, on the same layer",
    ]
    assert cycles(edges) == ["cycle mid_a -> mid_b -> mid_a (mid_a/__init__.py:1, mid_b/late.py:2)"]


def test_starting_a_higher_package_as_a_program_is_an_upward_edge(tmp_path):
    root = _tree(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/start.py": "import sys\nCMD = [sys.executable, '-m', 'top.cli', 'serve']\n",
            "low/self.py": "CMD = ('python', '-m', 'low', '--port', '8080')\n",
            "top/__init__.py": "",
        },
    )
    edges = import_edges(root, {"low", "top"})
    assert layer_violations(edges, (("low",), ("top",))) == [
        "low/start.py:2: low imports top, a layer above it"
    ]


def test_relative_and_type_checking_imports_count(tmp_path):
    root = _tree(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/sub/__init__.py": "from .. import helpers\nfrom . import leaf\n",
            "low/sub/leaf.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from top import T\n",
            "low/helpers.py": "",
            "top/__init__.py": "",
        },
    )
    edges = import_edges(root, {"low", "top"})
    assert [(e.source, e.target, e.where()) for e in edges] == [("low", "top", "low/sub/leaf.py:3")]


def test_the_real_graph_has_edges_to_check():
    """Guard against a checker that sees nothing: the CLI does import the areas below it."""
    targets = {e.target for e in import_edges(ROOT, PACKAGES) if e.source == "mlops"}
    assert {"core", "registry"} <= targets
