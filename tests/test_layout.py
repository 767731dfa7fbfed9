"""The package's layout as a contract: folders that follow the flow, each importing only the ones below it.

Read from the source with ``ast`` (nothing is imported), so every import counts: at module level,
inside a function, or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "exporter"

# Lowest first. A module imports only modules of its own layer or of a layer below; within a layer,
# the import graph has no cycle (checked apart).
LAYERS: list[set[str]] = [
    {"errors", "notes", "tables", "progress", "paths", "interface"},  # plain data and messages
    {"artifacts"},  # the folder as data: manifest, hashes, signatures, atomic writes
    {"formats"},  # the one table of formats; exporting each; what an ONNX file holds
    {"config"},  # the configs, whose choices come from the format table
    {"models", "eager"},  # the built-in networks; where a model comes from, built and probed
    {"runners"},  # every runtime, and the one way to open an artifact for one
    {"verification"},  # inputs, run, compare, gates, parameters, report
    {"benchmarking", "triton"},  # what else is done with a verified folder
    {"exporting", "inspection", "prediction", "images", "testing", "pytest_plugin", "__init__"},
    {"sweep"},  # a fleet of exports, each one `exporter export` in a process of its own
    {"cli", "__main__"},  # parse, call one API function, render
]
LOADERS = re.compile(r"torch\.jit\.load\(|torch\.export\.load\(|InferenceSession\(")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The exporter modules ``name`` imports (a name imported from a package counts as its submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                if target in MODULES and target != name:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES and a.name != name}
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    part = module.split(".")[1] if module != "exporter" else "__init__"
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_every_module_belongs_to_a_layer():
    parts = {m.split(".")[1] if m != "exporter" else "__init__" for m in MODULES}
    assert parts <= set().union(*LAYERS), sorted(parts - set().union(*LAYERS))


def test_each_module_imports_only_its_own_layer_or_the_ones_below():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle():
    # Tarjan's strongly connected components: every cycle, however long.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(" -> ".join(sorted(component)))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, cycles


def test_no_module_passes_450_lines_and_the_package_root_holds_few():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 450}
    assert not long, long
    assert len(list(PACKAGE.glob("*.py"))) <= 15


def test_only_runners_load_an_artifact_for_a_runtime():
    loaders = [
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if LOADERS.search(path.read_text()) and "runners" not in path.relative_to(PACKAGE).parts
    ]
    assert not loaders, loaders


@pytest.mark.parametrize("name", ["export", "verify", "inspect", "predict", "bench", "write_repository"])
def test_the_api_names_import_no_torch_until_called(name):
    import subprocess
    import sys

    code = (
        f"import sys, exporter; exporter.{name}; "
        "print(','.join(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


def test_a_usage_error_from_the_api_answers_without_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, exporter\n"
        "for call in (lambda: exporter.verify('nowhere'), lambda: exporter.export('no-such-model'),\n"
        "             lambda: exporter.bench('nowhere'), lambda: exporter.predict('nowhere', 'random'),\n"
        "             lambda: exporter.inspect('no-such-model')):\n"
        "    try:\n"
        "        call()\n"
        "    except exporter.UsageError as error:\n"
        "        print(type(error).__name__)\n"
        "print('torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    lines = run.stdout.split()
    assert lines[-1] == "False" and len(lines) == 6, run.stdout + run.stderr


def test_every_module_has_a_test_file_of_its_own():
    """exporter/<pkg>/<mod>.py is tested in tests/<pkg>/test_<mod>.py (a package's __init__ in its folder's)."""
    missing = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        relative = path.relative_to(PACKAGE)
        test = ROOT / "tests" / relative.parent / f"test_{path.stem}.py"
        if not test.is_file():
            missing.append(f"{relative} -> {test.relative_to(ROOT)}")
    assert not missing, "modules without a test file of their own:\n" + "\n".join(missing)
