"""Executors of a plan: `Executor` makes the API calls in order; `DisplayExecutor` only renders them
(what --plan shows). Every call is idempotent or guarded by the plan, so an interrupted run is
finished by the next one.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from iam.planner import Json, Plan, resolve
from mlops_core.errors import ToolkitError

SYMBOLS = {"create": "+", "update": "~", "unchanged": "="}

# A role is visible to KMS, S3 and SageMaker policy validation only seconds after IAM created it
# (eventual consistency): policies naming it are rejected as malformed until then.
PRINCIPAL_NOT_YET_VISIBLE = {"MalformedPolicyDocumentException", "MalformedPolicy", "InvalidParameterValue"}


class PolicyRejected(ToolkitError):
    """AWS kept rejecting a policy document, typically because a principal it names does not exist."""


class Executor:
    def __init__(self, clients, *, retry_for: float = 60.0, sleep=time.sleep):
        self.clients = clients
        self.variables: dict = {}
        self.retry_for = retry_for
        self.sleep = sleep

    def execute(self, plan: Plan, workers: int = 6) -> None:
        """Run the plan wave by wave: the roles, then the key (its policy names them), then everything
        that names the key. Within a wave resources are independent and run concurrently; each
        resource's own calls keep their order."""

        self.variables = dict(plan.variables)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for wave in waves(plan.changes):
                # list() re-raises the first failure; the wave's other resources finish their calls
                list(pool.map(self._run_change, wave))

    def _run_change(self, change) -> None:
        for call in change.calls:
            self._call(call)

    def _call(self, call) -> None:
        from botocore.exceptions import ClientError

        params = {k: self._param(v) for k, v in resolve(call.params, self.variables).items()}
        deadline, delay = time.monotonic() + self.retry_for, 1.0
        while True:
            try:
                response = getattr(self.clients(call.service), call.method)(**params)
                break
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if error.get("Code") not in PRINCIPAL_NOT_YET_VISIBLE or not any(
                    isinstance(v, str) and '"Principal"' in v for v in params.values()
                ):
                    raise
                if time.monotonic() + delay > deadline:
                    raise PolicyRejected(
                        f"{call.describe()} was refused: {error.get('Message', error.get('Code'))}. If the policy "
                        "names a role in another account, bootstrap that account first (dev, prod, then the "
                        "registry)"
                    ) from None
                self.sleep(delay)
                delay = min(delay * 2, 8.0)
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


def waves(changes: list) -> list[list]:
    """Consecutive changes grouped so that roles complete before anything else, and a KMS key is
    alone in its wave: after the roles its policy names, before the resources that use its ARN."""
    out: list[list] = []
    previous = None
    for change in changes:
        if not change.calls:
            continue
        if (
            previous is None
            or "kms-key" in (change.kind, previous.kind)
            or (previous.kind == "iam-role") != (change.kind == "iam-role")
        ):
            out.append([])
        out[-1].append(change)
        previous = change
    return out


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
