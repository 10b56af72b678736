"""Every public function and method of the toolkit's packages says what it takes and returns, so mypy
(`make lint`, configured in pyproject.toml) checks the calls between layers. mlops_core goes further:
mypy refuses any unannotated function there. Step scripts (pipelines/steps/) are scripts run in their
containers and are left out, as in the mypy configuration."""

from __future__ import annotations

import ast

from tests.test_layering import MODULES, ROOT


def _unannotated(tree: ast.Module, path: str) -> list[str]:
    missing = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                args = node.args
                params = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
                bare = [a.arg for a in params if a.annotation is None and a.arg not in ("self", "cls")]
                if node.returns is None or bare:
                    what = f"parameters {', '.join(bare)}" if bare else "return type"
                    missing.append(f"{path}:{node.lineno} {prefix}{node.name}: {what}")
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{node.name}.")

    visit(tree.body, "")
    return missing


def test_public_functions_are_annotated():
    missing = [
        line
        for module, path in MODULES.items()
        if not module.startswith("pipelines.steps")
        for line in _unannotated(ast.parse(path.read_text()), str(path.relative_to(ROOT)))
    ]
    assert not missing, "annotate:\n" + "\n".join(missing)


def test_the_check_finds_a_missing_annotation():
    tree = ast.parse("def shown(x):\n    return x\n\ndef _hidden(y):\n    return y\n")
    assert _unannotated(tree, "m.py") == ["m.py:1 shown: parameters x"]
