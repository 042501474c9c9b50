"""Imports run one way through the package's layers (README, "Layout and data flow"): a module imports only from
its own layer or those below it. Parsed from the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "t5x_tl"

# Leaf modules anyone may import: they import nothing of t5x_tl but other leaves.
LEAVES = {
    "t5x_tl",
    "t5x_tl.errors",
    "t5x_tl.console",
    "t5x_tl.platform",
    "t5x_tl.host_allocator",
    "t5x_tl.eval.metrics",
    "t5x_tl.eval.prompts",
}
# Lowest first, as data flows: the config schema names data and model settings; train reads the config.
LAYERS = ("data", "models", "config", "train", "eval", "experiments", ("cli", "benchmarking"))


def layer(module: str) -> int:
    if module in LEAVES:
        return 0
    top = module.split(".")[1]
    for rank, names in enumerate(LAYERS, start=1):
        if top in (names if isinstance(names, tuple) else (names,)):
            return rank
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every t5x_tl import; ``from t5x_tl.a import b`` names ``t5x_tl.a.b`` when b is a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("t5x_tl")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("t5x_tl"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / child.replace(".", "/")).with_suffix(".py").is_file() or (
                    PACKAGE.parent / child.replace(".", "/")
                ).is_dir()
                found.append((node.lineno, child if is_module else node.module))
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for line, target in imported(ast.parse(path.read_text(), str(path))):
            if layer(target) > layer(name) or (layer(name) == 0 and target not in LEAVES and target != name):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} {name} imports {target}")
    return problems


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The same parse over a package where data imports train must report it."""
    package = tmp_path / "t5x_tl"
    for module, source in {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/reader.py": "def read():\n    from t5x_tl.train import loop\n",
        "train/__init__.py": "",
        "train/loop.py": "from t5x_tl.data import reader\n",
    }.items():
        (package / module).parent.mkdir(parents=True, exist_ok=True)
        (package / module).write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert upward_imports() == ["t5x_tl/data/reader.py:2 t5x_tl.data.reader imports t5x_tl.train.loop"]
