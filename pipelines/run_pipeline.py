"""`run-pipeline`: build the SageMaker pipelines for an environment, upsert them, optionally run them."""

from __future__ import annotations

import click

from mlops_core.clikit import ToolkitGroup, emit_json, environment_options, output_option
from mlops_core.errors import ConfigError

PIPELINE_CHOICES = ("train", "hpo", "inference", "all")


def parse_params(values) -> dict:
    """--param K=V pairs into a dict; a malformed pair is a one-line ConfigError."""
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"'{item}' is not KEY=VALUE", field="--param")
        params[key] = value
    return params


@click.group(cls=ToolkitGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--env", "env_name", metavar="ENV", help="Environment name (a file in environments/) or a YAML path.")
@click.option("--env-dir", type=click.Path(file_okay=False), default=None, help="Directory of environment files.")
@click.option("--backend", type=click.Choice(["sandbox", "aws"]), default=None, help="Override the backend.")
@click.option("--profile", default=None, help="AWS profile (on the sandbox: an account label).")
@click.option(
    "--pipeline",
    "which",
    type=click.Choice(PIPELINE_CHOICES),
    default="all",
    show_default=True,
    help="Which pipeline(s) to upsert.",
)
@click.option("--dry-run", is_flag=True, help="Print the definitions (JSON) that would be upserted; change nothing.")
@click.option("--start", is_flag=True, help="Start an execution of each upserted pipeline.")
@click.option("--wait", is_flag=True, help="Follow the executions with a live table of steps (implies --start).")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Pipeline parameter for --start (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="Extra tag on the pipelines (repeatable).")
@output_option
@click.pass_context
def main(ctx, env_name, env_dir, backend, profile, which, dry_run, start, wait, params, tags, output):
    """Upsert the environment's SageMaker pipelines, planned as create / update / unchanged.

    From Jenkins (credentials of another account) it assumes the environment's
    cross-account-jenkins-role with its ExternalId. An unchanged pipeline costs one read and no write.

    \b
    run-pipeline --env dev --pipeline train --start --wait
    run-pipeline --env prod --dry-run
    run-pipeline definition --env dev --pipeline train -o train.json
    run-pipeline logs EXECUTION_ARN --env dev --step Train
    """
    if ctx.invoked_subcommand is not None:
        return
    if not env_name:
        raise ConfigError("missing option (e.g. --env dev)", field="--env")
    from mlops_core.config import load_environment

    env = load_environment(env_name, env_dir=env_dir, backend=backend)
    parsed_params, parsed_tags = parse_params(params), parse_params(tags)
    if dry_run:
        # Building definitions is pure: no AWS call, no sandbox; what is printed is what would be upserted.
        from pipelines.definitions import build_pipelines, dry_run_document

        emit_json(dry_run_document(build_pipelines(env, which)))
        return
    from pipelines.upsert import run

    run(
        env,
        which=which,
        dry_run=dry_run,
        start=start or wait,
        wait=wait,
        params=parsed_params,
        tags=parsed_tags,
        output=output,
        profile=profile,
    )


@main.command()
@environment_options
@click.option("--pipeline", "which", type=click.Choice(PIPELINE_CHOICES[:-1]), required=True)
@click.option(
    "-o",
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default="-",
    show_default=True,
    help="File to write the definition JSON to (- for stdout).",
)
def definition(env, profile, which, out_file):
    """Write one pipeline's definition JSON, as it would be upserted (no AWS call)."""
    from pipelines.definitions import build_pipelines, definition_text

    text = definition_text(build_pipelines(env, which)[which])
    if out_file == "-":
        click.echo(text)
    else:
        with open(out_file, "w") as handle:
            handle.write(text + "\n")
        click.echo(f"wrote {out_file}", err=True)


@main.command()
@environment_options
@click.argument("execution")
@click.option("--step", default=None, help="Only this step's log.")
def logs(env, profile, execution, step):
    """Show the logs of a pipeline execution's steps (CloudWatch Logs of its jobs and Lambda).

    EXECUTION is the execution ARN that `--start` printed; the environment says which account to read.
    """
    if not (execution.startswith("arn:") and "/execution/" in execution):
        raise ConfigError(f"'{execution}' is not a pipeline execution ARN", field="EXECUTION")
    from pipelines.logs import show_execution_logs
    from mlops_core.session import Sessions

    click.echo(show_execution_logs(Sessions(env, profile=profile), execution, step))


@main.command()
@environment_options
@click.option("--pipeline", "which", type=click.Choice(PIPELINE_CHOICES[:-1]), required=True)
@click.option("--execution", default=None, help="Execution ARN (default: the pipeline's most recent execution).")
@click.option(
    "--appear-timeout",
    default=60.0,
    show_default=True,
    help="Seconds to wait for a first execution to appear (one a schedule or rule is starting).",
)
def follow(env, profile, which, execution, appear_timeout):
    """Follow an execution started elsewhere (a schedule, a retrain rule, a colleague) until it ends.

    Exit 0 when it succeeds, 1 when it fails or stops (the failing step's reason and log tail shown).
    """
    from mlops_core.errors import PipelineFailed
    from pipelines.progress import follow_execution, latest_execution_arn
    from mlops_core.session import Sessions

    sessions = Sessions(env, profile=profile)
    arn = execution or latest_execution_arn(sessions.client("sagemaker"), env.pipelines[which], appear_timeout)
    status = follow_execution(sessions, arn)
    if status != "Succeeded":
        raise PipelineFailed(f"{env.pipelines[which]} execution {status}: {arn}")
