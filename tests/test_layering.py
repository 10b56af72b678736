"""The layering rule, read from the code's own import graph (see ARCHITECTURE.md).

Every `import` counts, including those inside functions: a deferred import is still a dependency.

    mlops_core            imports nothing of ours
    pipelines             imports mlops_core
    iam, promote          import mlops_core and pipelines
    sandbox               imports mlops_core; nothing outside sandbox/ imports it

One exception: sandbox/story.py, the demo driver behind `sandbox demo`, runs the toolkit's commands
the way a user would and so may import any package. There are no import cycles, neither between
packages nor between files, and imports sit at module top unless they defer a heavy library for
the commands' start-up time.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mlops_core", "pipelines", "iam", "promote", "sandbox")
MAY_IMPORT = {
    "mlops_core": set(),
    "pipelines": {"mlops_core"},
    "iam": {"mlops_core", "pipelines"},
    "promote": {"mlops_core", "pipelines"},
    "sandbox": {"mlops_core"},
}
# The demo driver plays the user: it runs the toolkit's commands against the sandbox it starts.
DEMO_DRIVER = "sandbox.story"
# Libraries a function may import late, so that `--help` and light commands never load them.
HEAVY = {
    "boto3",
    "botocore",
    "sagemaker",
    "moto",
    "pandas",
    "numpy",
    "sklearn",
    "xgboost",
    "matplotlib",
    "jinja2",
    "yaml",
    "python_terraform",
    "cryptography",
    "werkzeug",
    "jsonpath_ng",
    "scipy",
    "pyarrow",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str):
    """(imported module of ours or top-level name, line, inside a function) for every import in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    deferred = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            yield _resolve(name) or name, node.lineno, id(node) in deferred


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for target, _, _ in _imports(module):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            visit(node)
    return found


def test_the_parser_sees_every_kind_of_import():
    """A guard for the guard: function-level and relative imports are found and resolved."""
    imports = {(target, deferred) for target, _, deferred in _imports("mlops_core.session")}
    assert ("mlops_core.errors", False) in imports
    assert ("boto3", True) in imports
    assert len(MODULES) > 50 and "sandbox.patches" in MODULES


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package):
    wrong = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        for module in MODULES
        if module.split(".")[0] == package and module != DEMO_DRIVER
        for target, line, _ in _imports(module)
        if target.split(".")[0] in PACKAGES
        and target.split(".")[0] != package
        and target.split(".")[0] not in MAY_IMPORT[package]
    ]
    assert not wrong, f"{package} may import only {sorted(MAY_IMPORT[package]) or 'nothing of ours'}:\n" + "\n".join(
        wrong
    )


def test_only_the_sandbox_and_its_demo_driver_import_the_sandbox():
    # the demo driver lives in sandbox/ and imports the toolkit; the toolkit never imports sandbox/
    importers = {module for module in MODULES for target, _, _ in _imports(module) if target.split(".")[0] == "sandbox"}
    assert {m.split(".")[0] for m in importers} <= {"sandbox"}


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        if module == DEMO_DRIVER:
            continue  # sandbox.story -> toolkit is the one allowed upward arrow; nothing imports story
        for target in targets:
            if target.split(".")[0] != module.split(".")[0]:
                packages[module.split(".")[0]].add(target.split(".")[0])
    assert _cycles(packages) == []


def test_no_import_cycle_between_files():
    assert _cycles(_graph()) == []


def test_function_level_imports_only_defer_heavy_libraries():
    late = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {target} inside a function"
        for module in MODULES
        for target, line, deferred in _imports(module)
        if deferred and target.split(".")[0] not in HEAVY
    ]
    assert not late, "move these imports to module top (only heavy libraries are deferred):\n" + "\n".join(late)


# Commands are thin: they parse, call a library function that returns data, and render it.
COMMAND_MODULES = {"mlops_core.clikit", "pipelines.run_pipeline", "promote.cli", "iam.cli", "sandbox.cli"}


def test_only_command_modules_import_click():
    importers = {module for module in MODULES for target, _, _ in _imports(module) if target.split(".")[0] == "click"}
    assert importers == COMMAND_MODULES


def test_library_code_imports_no_command_module():
    # a library reaching for a command (or the CLI kit) would render for the terminal again
    wrong = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        for module in MODULES
        if module not in COMMAND_MODULES
        for target, line, _ in _imports(module)
        if target in COMMAND_MODULES
    ]
    assert not wrong, "\n".join(wrong)
