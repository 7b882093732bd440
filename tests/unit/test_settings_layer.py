"""settings.py is a top-level module, which the import contracts in pyproject.toml cannot name
as a source: this holds it to its rule, that it reads configuration into canonical models and
imports nothing else of o2c."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"adapters", "activities", "workflows", "starter", "sandbox", "worker"}


def test_settings_imports_canonical_and_no_other_layer():
    tree = ast.parse((ROOT / "settings.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    leaks = {name for name in imported if name.split(".")[0] in LAYERS}
    assert not leaks, f"settings.py imports {sorted(leaks)}"
    assert any(name.startswith("canonical.") for name in imported)
