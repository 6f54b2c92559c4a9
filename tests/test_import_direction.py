"""Imports flow one way, down the layers of DESIGN.md: a module imports its own layer or the ones below it,
never one above (function-level and type-checking imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "diffusify"

# lowest first
LAYERS = ["core", "ops", "io", "weights", "processors", "recipe", "graph", "runtime", "api", "server", "cli"]
# modules that sit on a layer other than their folder's: the command-line entry points
PLACED = {"diffusify.weights.cli": "cli", "diffusify.__main__": "cli", "diffusify": "cli"}


def layer_of(module: str) -> str:
    if module in PLACED:
        return PLACED[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cli"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "diffusify"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] == "diffusify":
                out.append((node.lineno, name))
    return out


def upward_imports(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        here = LAYERS.index(layer_of(module))
        for line, target in imports_of(path, module):
            there = layer_of(target)
            if there in LAYERS and LAYERS.index(there) > here:
                found.append(f"{path.relative_to(root.parent)}:{line}: {module} ({layer_of(module)}) imports "
                             f"{target} ({there})")
    return found


def test_every_layer_is_known():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    files = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert folders | files <= set(LAYERS), f"place these in LAYERS: {sorted((folders | files) - set(LAYERS))}"


def test_imports_flow_down_the_layers():
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "diffusify"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "bad.py").write_text("def f():\n    from diffusify.runtime.engine import Engine\n")
    assert upward_imports(pkg) == ["diffusify/core/bad.py:2: diffusify.core.bad (core) imports "
                                   "diffusify.runtime.engine (runtime)"]
