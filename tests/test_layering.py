"""The package's layers (docs/design.md, "Layers"): every import of every module, lazy ones inside
functions included, goes to the same layer or a lower one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "posetransfer"

#: bottom to top; a module may import its own layer and the layers before it
LAYERS: list[tuple[str, ...]] = [
    ("errors", "__init__"),
    ("utils",),
    ("pose",),
    ("data",),
    ("models",),
    ("losses",),
    ("training",),
    ("evaluation",),
    ("inference",),
    ("demo", "reproduce", "studio", "bench", "commands", "cli", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _layer(module: str) -> str:
    """``posetransfer.data.synth.render`` -> ``data``; ``posetransfer`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("posetransfer", *parts))


def _imported(code: str, here: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every ``posetransfer`` import in ``code`` (module ``here``), at any depth."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "posetransfer"]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = here.split(".") if is_package else here.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            if name.split(".")[0] == "posetransfer":
                found.append((node.lineno, name))
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    here = _module_name(path)
    if path.name == "__init__.py":
        here = here.rsplit(".", 1)[0]
    return _imported(path.read_text(encoding="utf-8"), here, is_package=path.name == "__init__.py")


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        assert _layer(_module_name(path)) in RANK, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    own = _layer(_module_name(path))
    for line, name in _imports(path):
        target = _layer(name)
        assert RANK[target] <= RANK[own], f"{path.relative_to(PACKAGE)}:{line} ({own}) imports {name} ({target}), a higher layer"


def test_the_checker_sees_lazy_and_relative_imports():
    code = "import os\ndef f():\n    from posetransfer.training import tasks\nfrom . import io\nfrom ..utils.io import x\n"
    names = sorted(n for _, n in _imported(code, "posetransfer.pose.x"))
    assert names == ["posetransfer.pose", "posetransfer.training", "posetransfer.utils.io"]
    assert RANK[_layer("posetransfer.training")] > RANK["pose"]  # so a pose module doing this fails
