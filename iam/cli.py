"""`bootstrap-account`: create an account's roles, keys, buckets and registry group, planned first."""

from __future__ import annotations

import click

from iam.bootstrap import Result, bootstrap
from iam.executor import DisplayExecutor
from mlops_core.clikit import ToolkitCommand, emit_json, environment_options, output_option
from mlops_core.config import Environment
from mlops_core.session import Sessions


@click.command(cls=ToolkitCommand, context_settings={"help_option_names": ["-h", "--help"]})
@environment_options
# Not a click.Choice: a wrong value must fail as one line (exit 2) like every other bad input.
@click.option(
    "--account",
    "account_kind",
    required=True,
    metavar="dev|stage|prod|registry",
    help="Which account to bootstrap: the environment's own (its `account:` label) or the registry.",
)
@click.option(
    "--plan",
    "mode",
    flag_value="plan",
    default=True,
    help="Show what would be created, changed or left alone, and write nothing (default).",
)
@click.option("--apply", "mode", flag_value="apply", help="Execute the plan.")
@output_option
def main(env: Environment, profile: str | None, account_kind: str, mode: str, output: str) -> None:
    """Bootstrap one AWS account for the MLOps toolkit: run once per account by an admin.

    \b
    dev       KMS key (prod and the registry may decrypt), SageMaker execution role,
              Lambda role, cross-account-jenkins-role, EventBridge role, data bucket,
              Terraform state bucket and lock table
    stage     the same shape with its own key (prod may decrypt)
    prod      the same shape with its own key
    registry  artifacts bucket and policy, model package group and policy, approver role,
              the rule forwarding model package events to every workload account

    Order: dev, stage, prod, then the registry (its policies name the workload roles).
    Re-running --apply on a bootstrapped account changes nothing and says so.
    --output json prints the plan and every policy document (iam/policies/ holds the
    same documents for review).
    """
    result = bootstrap(env, account_kind, apply=(mode == "apply"), sessions=Sessions(env, profile=profile))
    if output == "json":
        emit_json(result.as_dict())
    else:
        click.echo(render(result, env, account_kind))


def render(result: Result, env: Environment, account_kind: str) -> str:
    """The plan as text, then one line saying what was (or would be) done."""
    p = result.plan
    verb = "Applying" if result.applied else "Plan for"
    header = f"{verb} the {account_kind} account {p.account_id} ({p.region}), environment {env.name} [{env.backend}]:"
    n = p.counts()
    summary = f"{n['create']} to create, {n['update']} to update, {n['unchanged']} unchanged"
    if p.is_noop:
        verdict = (
            f"Nothing to change: the {account_kind} account is bootstrapped ({summary}; {result.writes} write calls)."
        )
    elif result.applied:
        verdict = (
            f"Applied: {n['create']} created, {n['update']} updated, {n['unchanged']} unchanged "
            f"({result.writes} write calls)."
        )
    else:
        verdict = f"Plan: {summary}. Nothing was written; run again with --apply to execute it."
    return f"{DisplayExecutor().render(p, header=header)}\n{verdict}"
