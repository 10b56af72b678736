"""Bootstrap one account: desired state -> observe -> plan -> (display | execute).

`bootstrap()` returns the plan and what was done; the `bootstrap-account` command (iam/cli.py) renders it.
Tests and the bench call it with their own sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iam.desired import desired_state
from iam.executor import Executor
from iam.observe import Clients, observe
from iam.planner import Plan
from iam.planner import plan as make_plan
from mlops_core.config import Environment
from mlops_core.errors import ConfigError
from mlops_core.session import Sessions


@dataclass
class Result:
    plan: Plan
    applied: bool
    reads: int
    writes: int
    documents: dict

    def as_dict(self) -> dict:
        p = self.plan
        return {
            "account_kind": p.account_kind,
            "account_id": p.account_id,
            "region": p.region,
            "mode": "apply" if self.applied else "plan",
            "summary": p.counts(),
            "changes": [c.as_dict() for c in p.changes],
            "calls": {"read": self.reads, "write": self.writes},
            "documents": self.documents,
        }


def account_session(sessions: Sessions, account_id: str) -> Any:
    """The caller acting in `account_id`; refuses when those credentials land in another account,
    which on AWS means the wrong profile."""
    session = sessions.in_account(account_id)
    actual = sessions.caller_account(session)
    if actual != account_id:
        raise ConfigError(
            f"these credentials act in account {actual}, not {account_id}: pick that account's "
            "admin credentials (e.g. --profile)",
            field="--profile",
        )
    return session


def bootstrap(
    env: Environment, account_kind: str, *, apply: bool, sessions: Sessions | None = None, session: Any | None = None
) -> Result:
    """Plan (and with apply=True execute) the bootstrap of one account. `session` overrides the
    account session (tests hook call counters onto it)."""

    state = desired_state(env, account_kind)  # bad input fails here, before any session exists
    if sessions is None:
        sessions = Sessions(env)
    if session is None:
        session = account_session(sessions, state.account_id)
    clients = Clients(sessions, session)
    the_plan = make_plan(state, observe(state, clients))
    if apply and not the_plan.is_noop:
        Executor(clients).execute(the_plan)
    return Result(the_plan, apply, clients.reads, clients.writes, state.documents())
