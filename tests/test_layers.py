"""advgap's packages import each other without cycles, and the verifier stays free of torch."""

import ast
from graphlib import CycleError, TopologicalSorter

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "advgap"


def _imports(path) -> set[str]:
    """advgap modules/packages a file imports anywhere (lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "advgap" and len(parts) > 1 else None


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        unit = rel[0].removesuffix(".py")
        if unit in ("__init__", "__main__", "api"):
            continue  # the top level re-exports everything
        deps = {u for m in _imports(path) if (u := _unit(m)) and u != unit}
        graph.setdefault(unit, set()).update(deps)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle between packages: {exc.args[1]}") from None
    assert order.index("verify") < order.index("formats") < order.index("models") < order.index("experiment")


def test_the_verifier_does_not_import_torch():
    for path in (PACKAGE / "verify").rglob("*.py"):
        assert not any(m == "torch" or m.startswith("torch.") for m in _imports(path)), path
