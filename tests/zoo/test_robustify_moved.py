"""robustify moved to brainprobe.robust: the old module paths point there, and the zoo imports one way."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import brainprobe

OLD = {
    "brainprobe.zoo.robustify": "robustify",
    "brainprobe.zoo.robustify_eval": "evaluate_robustified",
    "brainprobe.zoo.robustify_pgd": "pgd_maximize",
    "brainprobe.zoo.robustify_data": "CropSampler",
}


@pytest.mark.parametrize("module,name", sorted(OLD.items()))
def test_old_paths_name_the_new_location(module: str, name: str) -> None:
    mod = importlib.import_module(module)  # importing the pointer itself works
    with pytest.raises(ImportError, match=rf"moved to brainprobe.robust: use `from brainprobe.robust import {name}`"):
        exec(f"from {module} import {name}", {})
    with pytest.raises(AttributeError):
        mod.__wrapped__  # noqa: B018 - dunders stay ordinary AttributeErrors (introspection works)
    assert hasattr(importlib.import_module("brainprobe.robust"), name)


def test_public_names_resolve_to_the_robust_package() -> None:
    import brainprobe.robust as robust

    assert brainprobe.robustify is robust.robustify
    assert brainprobe.evaluate_robustified is robust.evaluate_robustified


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_registries_import_one_way() -> None:
    zoo = Path(brainprobe.__file__).parent / "zoo"
    assert "brainprobe.zoo.robust_registry" in _imported_modules(zoo / "registry.py")
    back = {m for m in _imported_modules(zoo / "robust_registry.py") if m.startswith("brainprobe.zoo.registry")}
    assert not back, f"robust_registry imports the registry back: {back}"


def test_the_zoo_never_imports_the_robust_package() -> None:
    zoo = Path(brainprobe.__file__).parent / "zoo"
    for path in sorted(zoo.glob("*.py")):
        upward = {m for m in _imported_modules(path) if m.startswith("brainprobe.robust")}
        assert not upward, f"{path.name} imports {upward}"
    code = "import sys, brainprobe.zoo as z; z.list_models(); print('brainprobe.robust' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
