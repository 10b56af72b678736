"""`bootstrap-account`: create an account's roles, keys, buckets and registry group, planned first."""

from __future__ import annotations

import click

from mlops_core.clikit import ToolkitCommand, environment_options, output_option


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
def main(env, profile, account_kind, mode, output):
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
    from iam.bootstrap import run_bootstrap

    run_bootstrap(env, account_kind, mode=mode, output=output, profile=profile)
