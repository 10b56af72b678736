"""`promote`: approve or reject versions in the central registry, show status and lineage, apply infra."""

from __future__ import annotations

import click

from mlops_core.branches import for_branch
from mlops_core.clikit import ToolkitGroup, branch_option, emit_json, environment_options, output_option
from mlops_core.config import Environment
from mlops_core.session import Sessions
from promote import monitor as monitoring
from promote import pins, registry
from promote.infra import check_target_account, deploy_target, run_infra
from promote.report import write_report


@click.group(cls=ToolkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Move model versions through the central registry and deploy the prod infrastructure.

    Approvals act as the approver role in the registry account (sign in with --as NAME or MLOPS_AS on the
    sandbox, SSO on AWS) and are refused when the approver started the run that registered the version,
    per CloudTrail (separation of duties). Every decision is recorded on the version.
    """


def _sessions(env, profile):
    return Sessions(env, profile=profile)


def _decide(env, profile, version, decision, reason, output):
    result = registry.decide(env, _sessions(env, profile), version, decision, reason)
    if output == "json":
        emit_json(result)
    elif result["changed"]:
        click.echo(f"version {version} {result['status']}: {result['approval_description']}")
    else:
        click.echo(f"version {version} is already {result['status']}: nothing to do")


@main.command("list")
@environment_options
@output_option
def list_versions(env: Environment, profile: str | None, output: str) -> None:
    """List the versions in the environment's model package group, newest first."""

    rows = registry.list_versions(env, _sessions(env, profile))
    emit_json(rows) if output == "json" else click.echo(registry.render_versions(rows))


@main.command()
@environment_options
@output_option
def status(env: Environment, profile: str | None, output: str) -> None:
    """Versions with status, metrics, who registered/approved them, and where they run."""

    rows = pins.status(env, _sessions(env, profile))
    emit_json(rows) if output == "json" else click.echo(registry.render_status(env, rows))


@main.command()
@environment_options
@click.option(
    "--version", "version", required=True, type=click.IntRange(min=1), help="Model package version number (1, 2, ...)."
)
@click.option("--reason", required=True, help="Why: recorded on the version and in ApprovalDescription.")
@output_option
def approve(env: Environment, profile: str | None, version: int, reason: str, output: str) -> None:
    """Approve a version as the approver role (refused for whoever started the run that registered it)."""
    _decide(env, profile, version, "approve", reason, output)


@main.command()
@environment_options
@click.option(
    "--version", "version", required=True, type=click.IntRange(min=1), help="Model package version number (1, 2, ...)."
)
@click.option("--reason", required=True, help="Why: recorded on the version and in ApprovalDescription.")
@output_option
def reject(env: Environment, profile: str | None, version: int, reason: str, output: str) -> None:
    """Reject a version as the approver role (refused for whoever started the run that registered it)."""
    _decide(env, profile, version, "reject", reason, output)


@main.command()
@environment_options
@click.option(
    "--version", "version", required=True, type=click.IntRange(min=1), help="Model package version number (1, 2, ...)."
)
@output_option
def lineage(env: Environment, profile: str | None, version: int, output: str) -> None:
    """Dataset, commit, pipeline execution, metrics, baseline, approvals, every recorded run and pins."""

    info = pins.lineage(env, _sessions(env, profile), version)
    emit_json(info) if output == "json" else click.echo(registry.render_lineage(info))


@main.command()
@environment_options
@click.option(
    "--version", "version", required=True, type=click.IntRange(min=1), help="Model package version number (1, 2, ...)."
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports", show_default=True)
def report(env: Environment, profile: str | None, version: int, out_dir: str) -> None:
    """Write an HTML and Markdown approval report: candidate vs. champion, ROC, confusion matrix."""

    written = write_report(env, _sessions(env, profile), version, out_dir)
    for path in written.values():
        click.echo(path)


@main.command()
@environment_options
@click.option("--plan", "mode", flag_value="plan", default=True, help="Show and save the plan (default).")
@click.option("--apply", "mode", flag_value="apply", help="Apply mlops-infra/ (schedule, retrain rule, SNS).")
@click.option("--destroy", "mode", flag_value="destroy", help="Destroy what mlops-infra/ created.")
@click.option(
    "--check",
    "mode",
    flag_value="check",
    help="Only validate the environment (and --account-id) and show the generated variables.",
)
@click.option(
    "--account-id",
    default=None,
    metavar="ID",
    help="The account the caller means to deploy to (Jenkins: prodAccount); refused unless it is the environment's.",
)
@click.option(
    "--plan-file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="With --apply: apply exactly this saved plan (the one archived and approved); refused when it "
    "was made from other code, variables or state.",
)
@branch_option
@output_option
def infra(
    env: Environment,
    profile: str | None,
    mode: str,
    account_id: str | None,
    plan_file: str | None,
    branch: str | None,
    output: str,
) -> None:
    """Plan or apply the Terraform in mlops-infra/ with variables generated from the environment.

    \b
    Creates in the environment's account: the inference schedule (EventBridge rule starting the
    inference pipeline), retraining (inference Failed -> start the train pipeline, notify), train
    Failed and "new version pending approval" notifications, and the SNS topic with its own KMS key.
    Variables come from environments/ENV.yaml (terraform.tfvars.json is generated, never edited);
    state is in the environment's state bucket, locked with its DynamoDB table. The plan is shown and
    saved in .terraform-work/ENV/ (plan.tfplan, plan.txt; $MLOPS_TERRAFORM_WORKDIR moves it).
    --apply applies exactly the plan it shows; re-running it with nothing changed applies nothing.
    --apply --plan-file PATH applies a plan saved earlier (Jenkins: the archived, approved one) and
    refuses, changing nothing, a plan made from other code, other variables or an older state.

    \b
    promote infra --env prod --plan
    promote infra --env prod --apply
    promote infra --env prod --apply --plan-file build/terraform/prod/plan.tfplan
    """

    check_target_account(env, account_id)
    env = for_branch(env, branch)
    if mode == "check":
        target = deploy_target(env)
        if output == "json":
            emit_json(target)
        else:
            click.echo(
                f"{env.name}: account {target['account_id']} ({env.region}), deployed through "
                f"{target['jenkins_role_arn']}; Terraform variables:"
            )
            emit_json(target["terraform_vars"])
        return

    echo = (lambda line: click.echo(line, err=True)) if output == "json" else click.echo
    result = run_infra(
        env,
        mode,
        sessions=Sessions(env, profile=profile),
        echo=echo,
        want_outputs=(output == "json"),
        plan_file=plan_file,
    )
    if output == "json":
        emit_json(result.as_dict())


@main.command()
@environment_options
@click.option(
    "--since",
    default="30d",
    show_default=True,
    metavar="AGE|DATE",
    help="Runs started since: an age (90m, 12h, 30d, 2w) or an ISO date or time (2026-11-01, 2026-11-01T06:00Z).",
)
@click.option(
    "--chart",
    "chart",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write a PNG of drift and quality over time, approvals and retrains marked (atomically).",
)
@output_option
def monitor(env: Environment, profile: str | None, since: str, chart: str | None, output: str) -> None:
    """Recent runs of the environment's pipelines with their metrics, approvals and retrains.

    \b
    One row per run of the train, hpo, inference and quality pipelines: when it started, its status
    and the step that failed (the reason below the table), who started it (CloudTrail: a person's
    source identity, EventBridge for the schedule and the retrain rules, or an arrival), the model
    version it used or registered, rows scored, the worst drift feature with its distance and bound,
    the quality metrics when labels arrived (or the Evaluate step's for training), and its duration.
    Runs come from ListPipelineExecutions/ListPipelineExecutionSteps and the metrics from CloudWatch
    GetMetricData in the environment's account (namespace MLOps/<project>), one query per run over
    the run's own time window; approvals from the versions' decision records in the registry (as the
    approver role: sign in with --as NAME). A value CloudWatch holds more than once in a run's window
    (runs overlapping) is marked '?'. --chart writes drift per run (worst distance/bound and the top
    features) and quality over time with the approvals and the retrains the rules started marked.

    \b
    promote monitor --env prod
    promote monitor --env prod --since 12h --output json
    promote monitor --env prod --since 2026-11-01 --chart monitor.png
    """

    since_at = monitoring.parse_since(since)
    if chart:
        monitoring.check_chart_path(chart)
    report = monitoring.collect(env, _sessions(env, profile), since_at)
    if chart:
        report["chart"] = monitoring.write_chart(report, chart)["path"]
    emit_json(report) if output == "json" else click.echo(monitoring.render(report))


def _pin_result(result: dict, output: str) -> None:
    emit_json(result) if output == "json" else click.echo(pins.render_pin(result))


@main.command("pin")
@environment_options
@click.option("--version", "version", required=True, type=click.IntRange(min=1), help="The Approved version to run.")
@click.option("--reason", required=True, help="Why: recorded on the version with who and when.")
@output_option
def pin_command(env: Environment, profile: str | None, version: int, reason: str, output: str) -> None:
    """Make the environment's inference use VERSION instead of the latest Approved one (approvers only).

    \b
    promote pin --env prod --version 6 --reason "v7 mislabels the new region's batches"
    promote unpin --env prod --reason "v8 fixes it"
    promote rollback --env prod --reason "v7 misbehaves"
    """
    _pin_result(pins.pin(env, _sessions(env, profile), version, reason), output)


@main.command("unpin")
@environment_options
@click.option("--reason", required=True, help="Why: recorded on the version with who and when.")
@output_option
def unpin_command(env: Environment, profile: str | None, reason: str, output: str) -> None:
    """Let the environment's inference follow the latest Approved version again (approvers only)."""
    _pin_result(pins.unpin(env, _sessions(env, profile), reason), output)


@main.command("rollback")
@environment_options
@click.option("--reason", required=True, help="Why: recorded on the version with who and when.")
@output_option
def rollback_command(env: Environment, profile: str | None, reason: str, output: str) -> None:
    """Pin the Approved version that ran in the environment before the one that runs there now."""
    _pin_result(pins.rollback(env, _sessions(env, profile), reason), output)
