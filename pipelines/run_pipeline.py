"""`run-pipeline`: build the SageMaker pipelines for an environment, upsert them, optionally run them."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import click

from mlops_core.branches import for_branch
from mlops_core.clikit import (
    ToolkitGroup,
    branch_option,
    emit_json,
    environment_options,
    environment_selection,
    output_option,
)
from mlops_core.config import Environment, load_environment
from mlops_core.errors import ConfigError, PipelineFailed, ToolkitError
from mlops_core.session import Sessions
from pipelines.branches import claim_namespace
from pipelines.branches import teardown as teardown_branch
from pipelines.contracts import contract_path, propose_contract
from pipelines.definitions import build_pipelines, definition_text, dry_run_document
from pipelines.floors import check_quality_floors
from pipelines.logs import show_execution_logs
from pipelines.progress import follow_execution, latest_execution_arn, retry_execution
from pipelines.upsert import render_plan, selected, upsert

PIPELINE_CHOICES = ("train", "hpo", "inference", "quality", "all")


def parse_params(values: tuple[str, ...], option: str = "--param") -> dict:
    """--param K=V pairs into a dict; a malformed or repeated pair is a one-line ConfigError."""
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"'{item}' is not KEY=VALUE", field=option)
        if key in params:
            raise ConfigError(f"'{key}' is given twice ({params[key]!r} and {value!r})", field=option)
        params[key] = value
    return params


_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def _typed(name: str, kind: str, value: str, pipeline: str):
    """A --param value as the pipeline's declared type (what SageMaker would do with it at start)."""
    if kind == "Integer" and _INTEGER.fullmatch(value):
        return int(value)
    if kind == "Float" and _FLOAT.fullmatch(value) and math.isfinite(float(value)):
        return float(value)
    if kind == "Boolean" and value in ("true", "false"):
        return value == "true"
    if kind == "String":
        return value
    what = {"Integer": "a whole number", "Float": "a number", "Boolean": "true or false"}.get(kind, kind)
    raise ConfigError(
        f"{name}={value!r}: {pipeline} declares {name} as {kind}, so the value must be {what}", field="--param"
    )


def check_params(specs: dict, params: dict) -> dict:
    """Each --param against the declared parameters (name and type) of the selected pipelines, before
    any call: {pipeline key: {name: typed value}} for the pipelines that declare each one."""
    declared = {
        key: {p["Name"]: p.get("Type", "String") for p in json.loads(spec.definition).get("Parameters") or []}
        for key, spec in specs.items()
    }
    known = sorted(set().union(*declared.values())) if declared else []
    per_pipeline: dict = {key: {} for key in specs}
    for name, value in params.items():
        owners = [key for key in specs if name in declared[key]]
        if not owners:
            names = ", ".join(spec.name for spec in specs.values())
            raise ConfigError(
                f"'{name}' is not a parameter of {names} (known: {', '.join(known) or 'none'})", field="--param"
            )
        for key in owners:
            per_pipeline[key][name] = _typed(name, declared[key][name], value, specs[key].name)
    return per_pipeline


@click.group(cls=ToolkitGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@environment_selection
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
@branch_option
@output_option
@click.pass_context
def main(
    ctx: click.Context,
    env_name: str | None,
    env_dir: str | None,
    backend: str | None,
    profile: str | None,
    which: str,
    dry_run: bool,
    start: bool,
    wait: bool,
    params: tuple[str, ...],
    tags: tuple[str, ...],
    branch: str | None,
    output: str,
) -> None:
    """Upsert the environment's SageMaker pipelines, planned as create / update / unchanged.

    From Jenkins (credentials of another account) it assumes the environment's
    cross-account-jenkins-role with its ExternalId. An unchanged pipeline costs one read and no write.

    \b
    run-pipeline --env dev --pipeline train --start --wait
    run-pipeline --env dev --branch feature/new-features --start
    run-pipeline teardown --env dev --branch feature/new-features
    run-pipeline --env prod --dry-run
    run-pipeline definition --env dev --pipeline train -o train.json
    run-pipeline logs EXECUTION_ARN --env dev --step Train
    """
    if ctx.invoked_subcommand is not None:
        return
    if not env_name:
        raise ConfigError("missing option (e.g. --env dev)", field="--env")

    env = for_branch(load_environment(env_name, env_dir=env_dir, backend=backend), branch)
    parsed_params, parsed_tags = parse_params(params), parse_params(tags, "--tag")
    if parsed_params and not (start or wait or dry_run):
        raise ConfigError("--param only applies with --start, --wait or --dry-run", field="--param")
    specs = None
    if parsed_params or dry_run:
        # Building definitions is pure: no AWS call, no sandbox. Every --param is checked against what
        # the pipelines declare before anything is reached or written.
        specs = build_pipelines(env, which)
        overrides = check_params(specs, parsed_params)
        check_quality_floors(env, parsed_params)  # a dry run shows only what a start would accept
    if dry_run:
        assert specs is not None  # built above for every dry run
        document = dry_run_document(specs)
        for key, values in overrides.items():
            document[key]["parameters"].update(values)  # what an execution started with these --param would use
            document[key]["overridden_parameters"] = sorted(values)
        emit_json(document)
        return

    check_quality_floors(env, parsed_params)  # before any AWS call or the slow definition build
    sessions = Sessions(env, profile=profile)
    # reach the account before the (slow) definition build, so a refused role fails at once
    sessions.workload()
    claim_namespace(env, sessions)  # a branch: its namespace must be free or already its own
    if specs is None:  # built above already when --param had to be checked
        specs = build_pipelines(env, selected(which))
    result = upsert(env, specs, sessions, extra_tags=parsed_tags, start=start or wait, params=parsed_params)
    if output != "json":
        click.echo(render_plan(result))
    if wait and result.executions:
        # with --output json stdout stays one JSON document; the live progress goes to stderr
        progress = sys.stderr if output == "json" else sys.stdout
        for execution in result.executions:
            execution["status"] = follow_execution(sessions, execution["execution_arn"], out=progress)
    if output == "json":
        emit_json(result.as_dict())
    failed = [e for e in result.executions if e.get("status") not in (None, "Succeeded")]
    if failed:
        raise PipelineFailed(", ".join(f"{e['name']} ended {e['status']}" for e in failed))


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
def definition(env: Environment, profile: str | None, which: str, out_file: str) -> None:  # noqa: ARG001 (environment_options passes --profile)
    """Write one pipeline's definition JSON, as it would be upserted (no AWS call)."""

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
def logs(env: Environment, profile: str | None, execution: str, step: str | None) -> None:
    """Show the logs of a pipeline execution's steps (CloudWatch Logs of its jobs and Lambda).

    EXECUTION is the execution ARN that `--start` printed; the environment says which account to read.
    """
    if not (execution.startswith("arn:") and "/execution/" in execution):
        raise ConfigError(f"'{execution}' is not a pipeline execution ARN", field="EXECUTION")

    click.echo(show_execution_logs(Sessions(env, profile=profile), execution, step))


@main.command()
@environment_options
@click.option("--pipeline", "which", type=click.Choice(PIPELINE_CHOICES[:-1]), required=True)
@click.option("--execution", default=None, help="Execution ARN (default: the pipeline's most recent execution).")
@click.option(
    "--appear-timeout",
    type=click.FloatRange(min=0, max=86400),
    default=60.0,
    show_default=True,
    help="Seconds to wait for a first execution to appear (one a schedule or rule is starting).",
)
def follow(env: Environment, profile: str | None, which: str, execution: str, appear_timeout: float) -> None:
    """Follow an execution started elsewhere (a schedule, a retrain rule, a colleague) until it ends.

    Exit 0 when it succeeds, 1 when it fails or stops (the failing step's reason and log tail shown).
    """

    sessions = Sessions(env, profile=profile)
    arn = execution or latest_execution_arn(sessions.client("sagemaker"), env.pipelines[which], appear_timeout)
    status = follow_execution(sessions, arn)
    if status != "Succeeded":
        raise PipelineFailed(f"{env.pipelines[which]} execution {status}: {arn}")


@main.command()
@environment_options
@click.argument("execution", required=False)
@click.option(
    "--pipeline",
    "which",
    type=click.Choice(PIPELINE_CHOICES),
    default="all",
    show_default=True,
    help="Without EXECUTION: retry the most recent failed execution of this pipeline (all: of any of them).",
)
@click.option("--no-wait", is_flag=True, help="Ask for the retry and return; do not follow it.")
@output_option
def retry(env: Environment, profile: str | None, execution: str, which: str, no_wait: bool, output: str) -> None:
    """Resume a failed execution from its failed step (RetryPipelineExecution): the steps that
    succeeded are not run again. Follows it until it ends; exit 1 if it fails again.

    \b
    run-pipeline retry --env prod                          # the most recent failed execution
    run-pipeline retry --env prod arn:aws:sagemaker:...:pipeline/mlops-demo-train/execution/abc123
    """

    if execution is not None and not (execution.startswith("arn:") and "/execution/" in execution):
        raise ConfigError(f"'{execution}' is not a pipeline execution ARN", field="EXECUTION")
    names = [env.pipelines[w] for w in (("train", "hpo", "inference") if which == "all" else (which,))]
    out = sys.stderr if output == "json" else sys.stdout  # stdout carries only the JSON then
    result = retry_execution(Sessions(env, profile=profile), execution, names, follow=not no_wait, out=out)
    if output == "json":
        emit_json(result)
    elif no_wait:
        click.echo(f"retrying {result['execution_arn']} from {', '.join(result['failed_steps']) or 'its failed step'}")
    if result["status"] not in ("Succeeded", "Executing"):
        raise PipelineFailed(f"retried execution {result['status']}: {result['execution_arn']}")


@main.command()
@environment_options
@click.option(
    "-o",
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the proposal (default: the environment's training.contract file; - for stdout).",
)
@click.option("--force", is_flag=True, help="Replace an existing contract file (the reviewed one).")
def contract(env: Environment, profile: str | None, out_file: str, force: bool) -> None:
    """Propose a data contract from the environment's training data, for the team to review and commit.

    Per column: type, required, nullable, a minimum for columns never negative and allowed values for
    integer codes and the target; rare codes are marked for review. Preprocess then checks training data
    against it and inference checks each batch before the drift check (DataValidationFailed).
    """
    target = out_file or (str(contract_path(env)) if contract_path(env) else "-")
    if target != "-" and Path(target).exists() and not force:
        raise ToolkitError(f"{target} exists (the reviewed contract): pass --force to replace it, or -o elsewhere")
    s3 = Sessions(env, profile=profile).client("s3") if env.training.dataset.startswith("s3://") else None
    text = propose_contract(env, s3)
    if target == "-":
        click.echo(text, nl=False)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text)
    click.echo(f"wrote {target}: review it, then commit it", err=True)


@main.command()
@environment_options
@branch_option
@output_option
def teardown(env: Environment, profile: str | None, branch: str | None, output: str) -> None:
    """Remove a branch's namespace from the dev-like environment, and nothing else.

    Destroys its mlops-infra resources and Terraform state, deletes its pipelines, its Lambda and its
    S3 data under branches/<namespace>/, and releases the namespace. Jenkins runs it when a branch
    is deleted or merged.

    \b
    run-pipeline teardown --env dev --branch feature/new-features
    """
    if branch is None:
        raise ConfigError("teardown needs --branch NAME: the main environment is never torn down", field="--branch")
    echo = (lambda line: click.echo(line, err=True)) if output == "json" else click.echo
    removed = teardown_branch(for_branch(env, branch), Sessions(env, profile=profile), echo=echo)
    if output == "json":
        emit_json(removed)
