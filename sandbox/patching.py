"""What a sandbox patch declares, in one place: the AWS behaviour it adds, what in moto it overrides,
its control routes, and its hooks. The registry of all patches is sandbox/patches/__init__.py.

Like a moto backend, each patch module keeps its state and ends with one declaration:

    PATCH = Patch(
        name="eventbridge-delivery",
        adds="EventBridge rules publish to SNS ...",
        overrides=("moto.events.models.Rule.send_to_targets", ...),
        apply=patch_eventbridge,         # makes the overrides (once, in the server process)
        routes={"events": Route(_events, methods=("GET", "POST"))},
        wrap=_model_package_events,      # around moto's WSGI app
        reset=_reset,                    # on `sandbox reset`, before the accounts are re-seeded
    )
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# handler(server, body) -> (status, payload); raise a sandbox.protocol error for a refusal
Handler = Callable[[Any, dict], tuple[int, Any]]
WsgiApp = Callable[..., Iterable[bytes]]


@dataclass(frozen=True)
class Route:
    """A control route `/_sandbox/<name>`."""

    handler: Handler
    methods: tuple[str, ...] = ("POST",)


@dataclass(frozen=True)
class Patch:
    name: str
    adds: str  # one line: the AWS behaviour this patch adds to moto
    # what it replaces, as "module.Class.attribute" (tests/sandbox/test_patch_registry.py checks it)
    overrides: tuple[str, ...] = ()
    apply: Callable[[], None] | None = None
    routes: Mapping[str, Route] = field(default_factory=dict)
    wrap: Callable[[WsgiApp], WsgiApp] | None = None
    start: Callable[[Any], None] | None = None  # once the server exists, before it serves
    reset: Callable[[Any], None] | None = None
