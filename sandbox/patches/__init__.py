"""The one registry of sandbox patches: each adds one AWS behaviour that moto lacks.

Each patch module ends with its declaration, `PATCH = Patch(...)` (see sandbox/patching.py): what it
adds, what in moto it overrides, its control routes, and its start and reset hooks. PATCHES lists
them in the order they apply; the server (sandbox/server.py) reads everything from here, and
`sandbox patches` prints it. To add a patch: write the module, add its PATCH below.
"""

from __future__ import annotations

from sandbox import clock, events, executions, journal, s3_events
from sandbox.patches import (
    alarm_actions,
    cloudtrail,
    cloudwatch,
    enforcement,
    kms_keys,
    model_registry,
    pagination,
    registry_seed,
    s3_encryption,
    sagemaker_tags,
    serving,
    snapshot,
    source_identity,
)
from sandbox.patching import Patch, Route

PATCHES: tuple[Patch, ...] = (
    journal.PATCH,
    snapshot.PATCH,
    enforcement.PATCH,
    source_identity.PATCH,
    model_registry.PATCH,
    registry_seed.PATCH,
    kms_keys.PATCH,
    s3_encryption.PATCH,
    sagemaker_tags.PATCH,
    executions.PATCH,
    events.PATCH,
    s3_events.PATCH,
    clock.PATCH,
    cloudtrail.PATCH,
    cloudwatch.PATCH,
    alarm_actions.PATCH,
    serving.PATCH,
    # last: it wraps the SageMaker list handlers as the patches above leave them
    pagination.PATCH,
)

_applied: set[str] = set()


def apply_all() -> list[str]:
    """Apply every patch once, in order (idempotent, in the server process); returns their names."""
    for patch in PATCHES:
        if patch.apply is not None and patch.name not in _applied:
            patch.apply()
            _applied.add(patch.name)
    return [patch.name for patch in PATCHES]


def patch_routes() -> dict[str, Route]:
    """Every patch's control routes by name; two patches may not claim the same one."""
    routes: dict[str, Route] = {}
    for patch in PATCHES:
        for name, route in patch.routes.items():
            if name in routes:
                raise ValueError(f"sandbox patches {patch.name} and another both declare /_sandbox/{name}")
            routes[name] = route
    return routes
