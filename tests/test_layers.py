"""The import-layer contract of the package: the layers below, lowest first. A module may import its
own layer and the layers below it, never one above; siblings marked independent never import each
other; and no import circle exists among the package's modules. Every import counts: at module level,
inside functions and classes, and under ``if TYPE_CHECKING:`` (read from the source with ``ast``,
nothing is imported). A new module of the package must be placed in a layer here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pnag"

LAYERS: list[tuple[str, ...]] = [  # lowest first; "pnag" alone is the package's own __init__
    ("pnag.errors", "pnag._io", "pnag._progress"),  # errors, atomic file writing, progress lines
    ("pnag.space",),                            # value types and search spaces (Arch, MBV3Space, ...)
    ("pnag.nn", "pnag.zoo", "pnag.export"),     # networks and their cost, the published models, export
    ("pnag.data",),                             # records, registry, readers, NAS-Bench-201, the collection format
    ("pnag.latency",),                          # measurement, tables, the latency-source interface
    ("pnag.predict", "pnag.evaluate"),          # predictors and proxies; ImageNet evaluation
    ("pnag.sources",),                          # every accuracy / latency spec, for every command
    ("pnag.search", "pnag.collect"),            # training and generating; collecting a dataset
    ("pnag", "pnag.api"),                       # the package's face: pnag.train, pnag.search (imported on first use)
    ("pnag.cli", "pnag.__main__"),              # the `pnag` command
]
INDEPENDENT = [("pnag.predict", "pnag.evaluate"), ("pnag.search", "pnag.collect")]


def module_files(root: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) of every module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def imports_of(source: str, module: str, is_pkg: bool, known: set[str]) -> set[str]:
    """The package's modules that ``source`` imports anywhere (``from X import name`` counts as
    ``X.name`` where that is a module, else as ``X``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names)
    return {m for m in found if m in known and m != module}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = module_files(root)
    return {m: imports_of(p.read_text(encoding="utf-8"), m, pkg, set(mods)) for m, (p, pkg) in mods.items()}


def entry_of(module: str) -> str | None:
    """The LAYERS entry that holds ``module`` (the longest prefix; ``pnag`` itself only exactly)."""
    best = None
    for layer in LAYERS:
        for e in layer:
            if module == e or (e != "pnag" and module.startswith(e + ".")):
                best = e if best is None or len(e) > len(best) else best
    return best


def layer_of(module: str) -> int:
    entry = entry_of(module)
    return next(i for i, layer in enumerate(LAYERS) if entry in layer)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every breach of the contract, one line each: an unplaced module, an upward import, an import
    between independent siblings, an import circle."""
    bad = [f"{m}: in no layer of tests/test_layers.py" for m in sorted(graph) if entry_of(m) is None]
    placed = {m for m in graph if entry_of(m) is not None}
    for m in sorted(placed):
        for t in sorted(graph[m] & placed):
            if layer_of(t) > layer_of(m):
                bad.append(f"{m} imports {t}: layer {layer_of(t)} {LAYERS[layer_of(t)]} is above "
                           f"layer {layer_of(m)} {LAYERS[layer_of(m)]}")
            elif {entry_of(m), entry_of(t)} in [set(pair) for pair in INDEPENDENT]:
                bad.append(f"{m} imports {t}: {entry_of(m)} and {entry_of(t)} are independent")
    bad += [f"import circle: {' <-> '.join(c)}" for c in cycles(graph)]
    return bad


def test_package_keeps_its_layers():
    graph = import_graph()
    assert len(graph) > 50 and "pnag.sources" in graph
    assert violations(graph) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "pnag" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "pnag"


@pytest.mark.parametrize("files, expected", [
    # a function-level import closing a circle (the kind the package once hid)
    ({"__init__.py": "", "data/__init__.py": "", "data/readers.py": "from ..latency import base\n",
      "latency/__init__.py": "", "latency/base.py": "def f():\n    from ..data import readers\n"},
     ["pnag.data.readers imports pnag.latency.base: layer 4", "import circle: pnag.data.readers <-> "
      "pnag.latency.base"]),
    # an upward import inside a method, absolute spelling
    ({"__init__.py": "", "space/__init__.py": "", "space/mbv3.py":
      "class A:\n    def m(self):\n        import pnag.search.run\n", "search/__init__.py": "", "search/run.py": ""},
     ["pnag.space.mbv3 imports pnag.search.run: layer 7"]),
    # independent siblings, and a module no layer holds
    ({"__init__.py": "", "predict/__init__.py": "", "predict/mlp.py": "from ..evaluate.imagenet import x\n",
      "evaluate/__init__.py": "", "evaluate/imagenet.py": "", "plugins.py": ""},
     ["pnag.plugins: in no layer", "pnag.predict.mlp imports pnag.evaluate.imagenet: pnag.predict and "
      "pnag.evaluate are independent"]),
])
def test_contract_catches_breaches(tmp_path, files, expected):
    found = violations(import_graph(_tree(tmp_path, files)))
    assert len(found) == len(expected)
    for line, want in zip(sorted(found), sorted(expected)):
        assert line.startswith(want), (line, want)


def test_relative_imports_resolve(tmp_path):
    root = _tree(tmp_path, {"__init__.py": "from .space import mbv3\n", "space/__init__.py": "from . import mbv3\n",
                            "space/mbv3.py": "from .. import errors\nfrom .base import X\n", "space/base.py": "",
                            "errors.py": ""})
    assert import_graph(root) == {"pnag": {"pnag.space.mbv3"}, "pnag.space": {"pnag.space.mbv3"},
                                  "pnag.space.mbv3": {"pnag.errors", "pnag.space.base"}, "pnag.space.base": set(),
                                  "pnag.errors": set()}
