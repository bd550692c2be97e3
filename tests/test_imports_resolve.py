"""Every ``from retrainer... import name`` in the package resolves, lazy ones inside functions too.

The CLI imports heavy modules inside its commands (fast ``--help``), so a renamed function broke
``retrainer fleet check --flow`` without any import-time error: only running that path showed it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import retrainer

PACKAGE = Path(retrainer.__file__).parent


def unresolved_imports() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] == "retrainer"):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                bad.append(f"{where}: {node.module} ({exc})")
                continue
            for alias in node.names:
                if alias.name == "*" or hasattr(module, alias.name):
                    continue
                try:  # a submodule imported by name
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    bad.append(f"{where}: {node.module} has no {alias.name}")
    return bad


def test_every_import_of_our_own_names_resolves() -> None:
    assert unresolved_imports() == []
