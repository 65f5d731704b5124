"""The package layers: the training core (`mfff.train`) never imports run operations (`mfff.runs`), analysis or the
CLI, data and model import none of those either, and no two modules import each other."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mfff"
UPPER = ("mfff.runs", "mfff.analyze", "mfff.cli", "mfff.calculator")


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports() -> dict[str, set[str]]:
    """Each module's imports of mfff modules, those only a type checker sees included (they tie modules too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        nodes = ast.walk(ast.parse(path.read_text()))
        graph[_module(path)] = {
            n.module for n in nodes if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mfff")
        }
    return graph


def test_lower_layers_never_import_upper_ones():
    upward = [(module, target) for module, targets in imports().items()
              if module.startswith(("mfff.train", "mfff.data", "mfff.model")) for target in targets
              if target.startswith(UPPER)]  # fmt: skip
    assert not upward


def test_no_import_cycles():
    graph = imports()
    # a package importing its own modules (re-exports), or a module its package, is no cycle between modules
    edges = {m: {t for t in targets if t in graph and not (t.startswith(m + ".") or m.startswith(t + "."))}
             for m, targets in graph.items()}  # fmt: skip
    try:
        tuple(TopologicalSorter(edges).static_order())
    except CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None
