"""The package's layers point down only, no module imports another file's private names, and
every module imports alone in a fresh interpreter.

models <- data <- engine <- (experiments, detection, deploy, explain) <- cli, with the bottom
modules (errors, io, device, run) below all of them. The package ``__init__`` files are the
façade and may import anything below them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "resnet"
LAYERS = {
    "errors": 0, "io": 0, "device": 0, "run": 1,
    "models": 2, "data": 3, "engine": 4,
    "experiments": 5, "detection": 5, "deploy": 5, "explain": 5,
    "cli": 6, "__main__": 7,
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "resnet" else None


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``resnet.*`` import of a file, at the top or inside functions: (module, names)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("resnet"):
                found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("resnet")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_layers_point_down_only():
    upward = []
    for path in MODULES:
        name = _module_name(path)
        own = _layer(name)
        if own is None or path.name == "__init__.py" and name.count(".") == 0:
            continue
        for target, _ in _imports(path):
            layer = _layer(target)
            same_part = target.split(".")[:2] == name.split(".")[:2]
            if layer is not None and layer > own and not same_part:
                upward.append(f"{name} -> {target}")
            elif layer is not None and layer == own and not same_part and own >= 2:
                upward.append(f"{name} -> {target} (sideways between peers)")
    assert upward == []


def test_no_module_imports_private_names_of_another():
    private = []
    for path in MODULES:
        name = _module_name(path)
        for target, names in _imports(path):
            if target == name:
                continue
            private += [
                f"{name} imports {target}.{n}"
                for n in names
                if n.startswith("_") and not n.startswith("__")
            ]
            if any(part.startswith("_") and part != "__init__" for part in target.split(".")):
                private.append(f"{name} imports {target}")
    assert private == []


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    names = {_module_name(p) for p in MODULES}
    for path in MODULES:
        edges = set()
        for target, imported in _imports(path):
            # `from resnet.models import cifar` imports the module resnet.models.cifar.
            edges |= {f"{target}.{n}" for n in imported if f"{target}.{n}" in names}
            edges |= {target} & names
        graph[_module_name(path)] = edges - {_module_name(path)}
    # Package __init__ files re-export their children; edges into a package's own __init__
    # from its children are not cycles of code.
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        for target in graph.get(node, ()):
            if target in stack:
                cycle = stack[stack.index(target) :] + [target]
                if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in
                           zip(cycle, cycle[1:])):  # fmt: skip
                    cycles.append(" -> ".join(cycle))
            elif len(stack) < 12:
                visit(target, [*stack, target])

    for node in graph:
        visit(node, [node])
    assert sorted(set(cycles)) == []


_IMPORT_EACH_ALONE = """
import os, sys, traceback
import torch, numpy  # heavy third-party modules load once; each child starts without resnet
failed = []
for module in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(module)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(module)
print("FAILED", *failed)
"""


def test_every_module_imports_alone():
    """Each module imported first, in a fresh (forked) interpreter: no order dependence and no
    cycle that only an earlier import hides."""
    modules = sorted({_module_name(p) for p in MODULES} - {"resnet.__main__"})
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_ALONE, *modules],
        env={"PYTHONPATH": str(SRC), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "FAILED", done.stdout + done.stderr[-3000:]


def test_submodules_are_reachable_from_the_package():
    """`import resnet; resnet.detection.fpn_backbone` works like torchvision's submodules."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resnet; print(resnet.detection.fpn_backbone.__name__, "
            "resnet.experiments.__name__, resnet.deploy.__name__)",
        ],  # fmt: skip
        env={"PYTHONPATH": str(SRC), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "fpn_backbone" in done.stdout, done.stderr[-2000:]
