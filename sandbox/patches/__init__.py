"""The one registry of sandbox patches: each adds one AWS behaviour that moto lacks.

A patch module declares itself with `@patch(name, adds=...)`; `apply_all()` runs each once in the
server process before it serves. `sandbox patches` lists them. Add a module to PATCH_MODULES to
register it; nothing else in the toolkit needs to know.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

# Modules that register patches, in the order they apply.
PATCH_MODULES = (
    "sandbox.patches.snapshot",
    "sandbox.patches.enforcement",
    "sandbox.patches.model_registry",
    "sandbox.patches.kms_keys",
    "sandbox.patches.s3_encryption",
    "sandbox.patches.sagemaker_tags",
    "sandbox.executions",
    "sandbox.events",
)


@dataclass(frozen=True)
class Patch:
    name: str
    adds: str  # one line: the AWS behaviour this patch adds to moto
    apply: Callable[[], None]


REGISTRY: dict[str, Patch] = {}
_applied: set[str] = set()


def patch(name: str, *, adds: str):
    """Register the decorated zero-argument function as the patch `name`."""

    def register(func):
        REGISTRY[name] = Patch(name, adds, func)
        return func

    return register


def load() -> dict[str, Patch]:
    for module in PATCH_MODULES:
        importlib.import_module(module)
    return REGISTRY


def apply_all() -> list[str]:
    """Apply every registered patch once (idempotent); returns the names applied."""
    for name, p in load().items():
        if name not in _applied:
            p.apply()
            _applied.add(name)
    return list(REGISTRY)
