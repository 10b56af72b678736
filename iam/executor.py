"""Executors of a plan: `Executor` makes the API calls in order; `DisplayExecutor` only renders them
(what --plan shows). Every call is idempotent or guarded by the plan, so an interrupted run is
finished by the next one.
"""

from __future__ import annotations

import json

from iam.planner import Json, Plan, resolve

SYMBOLS = {"create": "+", "update": "~", "unchanged": "="}


class Executor:
    def __init__(self, clients):
        self.clients = clients
        self.variables: dict = {}

    def execute(self, plan: Plan) -> None:
        self.variables = dict(plan.variables)
        for change in plan.changes:
            for call in change.calls:
                self._call(call)

    def _call(self, call) -> None:
        params = {k: self._param(v) for k, v in resolve(call.params, self.variables).items()}
        response = getattr(self.clients(call.service), call.method)(**params)
        if call.store_as:
            value = response
            for step in call.store_path:
                value = value[step]
            self.variables[call.store_as] = value

    def _param(self, value):
        if isinstance(value, Json):
            return json.dumps(value.document, separators=(",", ":"))
        if isinstance(value, str) and value.startswith("${"):
            raise RuntimeError(f"unresolved variable {value}: the plan orders its producer first")
        return value


class DisplayExecutor:
    """Renders a plan for people: one line per resource, reasons, and JSON diffs of documents."""

    def __init__(self, verbose_unchanged: bool = True):
        self.verbose_unchanged = verbose_unchanged

    def render(self, plan: Plan, *, header: str) -> str:
        lines = [header]
        width = max((len(c.kind) for c in plan.changes), default=10)
        for c in plan.changes:
            if c.action == "unchanged" and not self.verbose_unchanged:
                continue
            lines.append(f"  {SYMBOLS[c.action]} {c.action:<9}  {c.kind:<{width}}  {c.name}")
            for reason in c.reasons if c.action == "update" else []:
                lines.append(f"        - {reason}")
            if c.action == "create":
                # a new document is all additions: name it; the full text is in --output json and iam/policies/
                if c.diffs:
                    lines.append(f"        documents: {', '.join(c.diffs)} (full text: --output json)")
                continue
            for label, diff in c.diffs.items():
                if diff:
                    lines.append(f"        {label}:")
                    lines.extend(f"          {line}" for line in diff.splitlines())
        return "\n".join(lines)
