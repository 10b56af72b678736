"""Bootstrap one account: desired state -> observe -> plan -> (display | execute).

`bootstrap()` is the library entry (tests and the bench call it with their own sessions);
`run_bootstrap()` is what the `bootstrap-account` command calls and renders.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_core.errors import ConfigError


@dataclass
class Result:
    plan: object
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


def account_session(sessions, env, account_id: str):
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


def bootstrap(env, account_kind: str, *, apply: bool, sessions=None, session=None) -> Result:
    """Plan (and with apply=True execute) the bootstrap of one account. `session` overrides the
    account session (tests hook call counters onto it)."""
    from iam.desired import desired_state
    from iam.executor import Executor
    from iam.observe import Clients, observe
    from iam.planner import plan as make_plan

    state = desired_state(env, account_kind)  # bad input fails here, before any session exists
    if sessions is None:
        from mlops_core.session import Sessions

        sessions = Sessions(env)
    if session is None:
        session = account_session(sessions, env, state.account_id)
    clients = Clients(sessions, session)
    the_plan = make_plan(state, observe(state, clients))
    if apply and not the_plan.is_noop:
        Executor(clients).execute(the_plan)
    return Result(the_plan, apply, clients.reads, clients.writes, state.documents())


def run_bootstrap(env, account_kind, *, mode, output, profile=None):
    import click

    from iam.desired import desired_state
    from iam.executor import DisplayExecutor
    from mlops_core.clikit import emit_json
    from mlops_core.session import Sessions

    desired_state(env, account_kind)
    result = bootstrap(env, account_kind, apply=(mode == "apply"), sessions=Sessions(env, profile=profile))
    if output == "json":
        emit_json(result.as_dict())
        return
    p = result.plan
    verb = "Applying" if result.applied else "Plan for"
    header = f"{verb} the {account_kind} account {p.account_id} ({p.region}), environment {env.name} [{env.backend}]:"
    click.echo(DisplayExecutor().render(p, header=header))
    n = p.counts()
    summary = f"{n['create']} to create, {n['update']} to update, {n['unchanged']} unchanged"
    if p.is_noop:
        click.echo(
            f"Nothing to change: the {account_kind} account is bootstrapped ({summary}; {result.writes} write calls)."
        )
    elif result.applied:
        click.echo(
            f"Applied: {n['create']} created, {n['update']} updated, {n['unchanged']} unchanged "
            f"({result.writes} write calls)."
        )
    else:
        click.echo(f"Plan: {summary}. Nothing was written; run again with --apply to execute it.")
