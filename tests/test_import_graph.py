"""No two modules of lion_nnunet import each other (STYLE.md: a record type moves down instead).

The import graph is read from the source (every ``import``/``from ... import``, also inside
functions and ``if TYPE_CHECKING:`` blocks), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lion_nnunet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the lion_nnunet modules it names in an import statement."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names.add(target)
                names.update(f"{target}.{a.name}" for a in node.names)  # from . import x
            elif isinstance(node, ast.ImportFrom):
                names.add(node.module or "")
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        graph[module] = {n for n in names if n.startswith("lion_nnunet")}
    return graph


def test_no_two_modules_import_each_other():
    graph = import_graph()
    mutual = sorted(
        f"{a} <-> {b}"
        for a, targets in graph.items()
        for b in targets
        if a < b and b in graph and a in graph[b] and a != "lion_nnunet"  # the package's API
    )
    assert mutual == []


def test_the_graph_sees_a_lazy_import():
    """The reader finds an import inside a function (model.py's old one of installed.py did)."""
    graph = import_graph()
    assert "lion_nnunet.inference.run_loop" in graph["lion_nnunet.cohort.predict"]
    assert "lion_nnunet.inference.model_info" in graph["lion_nnunet.inference.installed"]
