"""Imports run one way: a module never imports one in a higher layer (docs/design-notes.md, "Layers").

A small AST walk over src/retrainer, lazy (function-level) imports included: a lazy import
hides a dependency from import time, not from the design. Two exceptions, both explicit:
``cli`` is the top and may import anything lazily (it is the program), and an
``if __name__ == "__main__":`` block is a program too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "retrainer"

# Top to bottom. Modules in one layer may import each other; a module may import any lower layer.
LAYERS: list[set[str]] = [
    {"cli"},
    {"demo", "reference"},  # reference renders docs from config, triggers and (given) the CLI app
    {"simulate"},  # replays history with the same train/evaluate/gate code as the flows
    {"flows"},
    {"tasks"},
    {"deployments.serving"},  # the prediction service: reads who serves from the rollout side
    {"deployments.rollout"},  # rollout decisions and promotion: never imports serving
    {"testing"},  # the kit for trigger-plugin authors: fakes over triggers and the store
    {"triggers"},
    {"registry", "registry_alias", "store"},  # registry_alias: one alias read without importing MLflow
    {"stats", "profiles"},  # a reference profile is the stats summary of a training table
    # The base: plain types and rules every layer may use.
    {"config", "errors", "durations", "identifiers", "windows", "metrics",
     "frozen", "champion_info", "model_safety", "fleet_config"},
]
LAYER_OF = {name: depth for depth, names in enumerate(LAYERS) for name in names}


# Packages split into layers of their own: their subpackages are the components.
_SPLIT = {"deployments"}


def _component(module: str) -> str | None:
    """The layer component of a dotted module name (``retrainer.tasks.load`` -> ``tasks``,
    ``retrainer.deployments.serving.app`` -> ``deployments.serving``)."""
    parts = module.split(".")
    if parts[0] != "retrainer" or len(parts) < 2:
        return None  # a third-party module, or the package root (a facade of base types)
    if parts[1] in _SPLIT:
        return ".".join(parts[1:3]) if len(parts) > 2 else None  # the bare package: a docstring only
    return parts[1]


def _imported(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the importing module's package
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # ``from retrainer import tasks`` imports the subpackage ``retrainer.tasks``; other names
        # imported from the package root (``__version__``) belong to the root facade.
        return [f"{prefix}.{a.name}" if prefix == "retrainer" and a.name in LAYER_OF else prefix for a in node.names]
    return []


def _is_main_guard(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """``"importer -> imported"`` for every import in ``source`` that points at a higher layer."""
    here = _component(module)
    if here is None or here not in LAYER_OF:
        return [f"{module}: not in LAYERS (add it to tests/test_layers.py and docs/design-notes.md)"] if here else []
    package = module if is_package else module.rsplit(".", 1)[0]
    tree = ast.parse(source)
    skipped = {id(n) for top in tree.body if _is_main_guard(top) for n in ast.walk(top)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        for target in _imported(node, package):
            there = _component(target)
            if there is None or there == here:
                continue
            if there not in LAYER_OF:
                found.append(f"{module} -> {target}: {there!r} is in no layer")
            elif LAYER_OF[there] < LAYER_OF[here] and here != "cli":
                found.append(f"{module} -> {target}")
    return found


def _modules() -> list[tuple[str, Path, bool]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        if "migrations" in parts:
            continue  # Alembic scripts are run by Alembic, not imported by retrainer
        out.append((".".join(parts), path, is_package))
    return out


def test_no_module_imports_a_higher_layer():
    found = [v for module, path, pkg in _modules() for v in upward_imports(path.read_text(encoding="utf-8"), module, pkg)]
    assert found == [], "upward imports:\n" + "\n".join(found)


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if (p.suffix == ".py" or (p / "__init__.py").exists())}
    names |= {f"{pkg}.{p.name}" for pkg in _SPLIT for p in (SRC / pkg).iterdir() if (p / "__init__.py").exists()}
    assert names - {"__init__"} - _SPLIT <= set(LAYER_OF)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the retrainer modules it imports (module-level and lazy; TYPE_CHECKING included)."""
    modules = {m for m, _, _ in _modules()}
    graph: dict[str, set[str]] = {}
    for module, path, pkg in _modules():
        package = module if pkg else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for top in tree.body if _is_main_guard(top) for n in ast.walk(top)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            for target in _imported(node, package):
                names = [target] + ([f"{target}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
                targets |= {t for t in names if t in modules and t != module}
        graph[module] = targets
    return graph


def test_no_import_circles():
    """No module reaches itself through imports (a package's ``__init__`` importing its own
    submodules is how a package exposes them, so edges into a parent package are skipped)."""
    graph = _import_graph()
    circles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if node.startswith(nxt + "."):
                    continue
                if nxt == start:
                    circles.append(" -> ".join(path + [nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert circles == [], "import circles:\n" + "\n".join(sorted(set(circles))[:20])


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from retrainer.tasks import io_task\n", "retrainer.deployments.rollout.promotion",
         ["retrainer.deployments.rollout.promotion -> retrainer.tasks"]),
        ("def f():\n    from retrainer.triggers.context import ChampionInfo\n", "retrainer.registry",
         ["retrainer.registry -> retrainer.triggers.context"]),  # lazy imports count
        ("import retrainer.flows.retrain\n", "retrainer.stats.drift", ["retrainer.stats.drift -> retrainer.flows.retrain"]),
        ("from retrainer import cli\n", "retrainer.reference", ["retrainer.reference -> retrainer.cli"]),
        ("from ..flows import retrain\n", "retrainer.tasks.load", ["retrainer.tasks.load -> retrainer.flows"]),
        ("from retrainer.store import Store\nfrom retrainer.stats import psi\nimport numpy\n", "retrainer.triggers.check", []),
        ("from retrainer.tasks.load import x\n", "retrainer.tasks.train", []),  # same layer
        ("def f():\n    from retrainer.flows.retrain import retrain_flow\n", "retrainer.cli.flows_cmd", []),
        ("if __name__ == '__main__':\n    from retrainer.cli import app\n", "retrainer.reference", []),
    ],
)
def test_the_checker_finds_upward_imports(source, module, expected):
    assert upward_imports(source, module) == expected
