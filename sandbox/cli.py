"""`sandbox`: start, stop, inspect and reset the embedded multi-account AWS."""

from __future__ import annotations

import click

from mlops_core.clikit import ToolkitGroup, emit_json, env_dir_option, output_option, table
from mlops_core.config import list_environments, load_environment
from mlops_core.errors import ConfigError
from sandbox import client
from sandbox.patches import PATCHES
from sandbox.story import run_story


@click.group(cls=ToolkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The embedded multi-account AWS on 127.0.0.1 (moto plus the cross-account behaviour it lacks).

    State lives as long as the server and survives `down`/`up` (snapshotted to $MLOPS_SANDBOX_HOME,
    default ~/.mlops-sandbox). Commands whose environment says `backend: sandbox` start it on demand.
    """


def _accounts_of_environments(env_dir: str | None) -> dict[str, str]:
    accounts: dict[str, str] = {}
    for name in list_environments(env_dir):
        for label, account_id in load_environment(name, env_dir=env_dir).sandbox_accounts.items():
            accounts.setdefault(label, account_id)
    return accounts


@main.command()
@env_dir_option
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@output_option
def up(env_dir: str | None, port: int, output: str) -> None:
    """Start the sandbox (or reuse the running one) and seed the environments' accounts."""

    status = client.up(_accounts_of_environments(env_dir), port=port)
    _show(status, output)


@main.command()
@click.option("--discard", is_flag=True, help="Do not snapshot: the next `up` starts empty.")
def down(discard: bool) -> None:
    """Stop the sandbox, keeping its state for the next `up` unless --discard."""

    stopped = client.down(save=not discard)
    if discard:
        client.forget_snapshot()
    click.echo(
        ("sandbox stopped" + (", state discarded" if discard else ", state saved"))
        if stopped
        else "no sandbox was running"
    )


@main.command()
@output_option
def status(output: str) -> None:
    """Show the endpoint and, per account, its id and admin credentials (exit 1 if not running)."""

    current = client.running()
    if current is None:
        if output == "json":
            emit_json({"running": False})
        else:
            click.echo("no sandbox is running (start it with `sandbox up`)")
        raise SystemExit(1)
    _show(current, output)


@main.command()
def reset() -> None:
    """Empty every account (keeping the seeded admins): a clean slate without a restart."""

    client.reset()
    click.echo("sandbox reset: all accounts are empty")


@main.command()
def patches() -> None:
    """List the AWS behaviours the sandbox adds to moto, one line each."""

    for p in PATCHES:
        click.echo(f"{p.name:<32} {p.adds}")


@main.command()
@click.option(
    "--to",
    "to_time",
    metavar="TIME",
    default=None,
    help="Advance the clock to this UTC time (ISO, e.g. 2026-01-02T06:00:00Z).",
)
@click.option(
    "--by",
    "by_duration",
    metavar="DURATION",
    default=None,
    help="Advance the clock by this much (e.g. 90s, 15m, 6h, 1d, 2w).",
)
@output_option
def tick(to_time: str | None, by_duration: str | None, output: str) -> None:
    """Advance the sandbox clock and fire the EventBridge schedules that fall due.

    Schedules (cron()/rate()) fire only when the clock moves, once per occurrence, so a test or a
    demo decides when the nightly inference runs. Without options, fires what is due now.
    """

    if to_time and by_duration:
        raise ConfigError("give --to or --by, not both", field="--to/--by")
    body = {k: v for k, v in (("to", to_time), ("by", by_duration)) if v}
    result = client.call("tick", body)  # a bad --to/--by comes back as InvalidInput naming the option
    if output == "json":
        emit_json(result)
        return
    click.echo(f"sandbox clock: {result['now']}")
    for firing in result["fired"]:
        for d in firing["deliveries"]:
            outcome = d["status"] + (f": {d['reason']}" if d.get("reason") else "")
            started = (d.get("result") or {}).get("PipelineExecutionArn")
            click.echo(
                f"  {firing['time']}  {d['rule']} -> {d['target_arn']}  {outcome}"
                + (f" ({started})" if started else "")
            )
    if not result["fired"]:
        click.echo("  no schedule fell due")
    for s in result.get("skipped", []):
        click.echo(f"  skipped {s['rule']}: {s['reason']}")


@main.command()
@click.option("--failed", is_flag=True, help="Only deliveries that failed.")
@output_option
def events(failed: bool, output: str) -> None:
    """EventBridge deliveries the sandbox made: to which target, and why any failed.

    AWS drops a failed delivery silently (only the FailedInvocations metric counts it); here each is
    listed with its reason (topic policy, target role, key policy...).
    """

    records = client.call("events", {"status": "failed"} if failed else {})["deliveries"]
    if output == "json":
        emit_json(records)
        return
    rows = [
        {
            "time": r["time"],
            "rule": r["rule"],
            "target": r["target_arn"],
            "status": r["status"],
            "detail": r.get("reason") or next(iter((r.get("result") or {}).values()), ""),
        }
        for r in records
    ]
    click.echo(table(rows, ["time", "rule", "target", "status", "detail"]) if rows else "no deliveries")


@main.command()
@click.option("--pipeline", default=None, help="Pipeline name (as in the environment's `pipelines:`).")
@click.option("--step", default=None, help="Step name, as in the definition (e.g. Train).")
@click.option(
    "--error",
    default="ThrottlingException",
    show_default=True,
    help="Error code: ThrottlingException, InternalFailure, ServiceUnavailable, ResourceLimitExceeded "
    "(failed service calls), InternalServerError, CapacityError (failed jobs), or any other code "
    "(not retried).",
)
@click.option("--times", type=int, default=1, show_default=True, help="How many attempts fail, then it is cleared.")
@click.option("--clear", is_flag=True, help="Remove every pending fault.")
@output_option
def fault(pipeline: str | None, step: str | None, error: str, times: int, clear: bool, output: str) -> None:
    """Make the next attempts of a pipeline step fail with an AWS error, to see its retry policy work.

    \b
    sandbox fault --pipeline mlops-demo-train --step Train --error ThrottlingException --times 2
    sandbox fault                 # list pending faults
    sandbox fault --clear
    """

    if bool(pipeline) != bool(step):
        raise ConfigError("give both --pipeline and --step", field="--pipeline/--step")
    if times < 1:
        raise ConfigError(f"{times} is not a whole number of at least 1", field="--times")
    body = (
        {"clear": True}
        if clear
        else ({"pipeline": pipeline, "step": step, "error": error, "times": times} if pipeline else {})
    )
    faults = client.call("fault", body)["faults"]  # a bad --error comes back as InvalidInput
    if output == "json":
        emit_json(faults)
        return
    rows = [
        {"pipeline": f["pipeline"], "step": f["step"], "error": f["error"], "remaining": f["remaining"]} for f in faults
    ]
    click.echo(table(rows, ["pipeline", "step", "error", "remaining"]) if rows else "no pending faults")


@main.command()
@click.argument("execution")
@output_option
def attempts(execution: str, output: str) -> None:
    """Each attempt of each step of a pipeline execution: when it ran, why it failed, how long the retry
    policy waited before the next (AWS itself shows only the AttemptCount)."""

    result = client.call("attempts", {"execution_arn": execution})
    if output == "json":
        emit_json(result)
        return
    rows = [
        {
            "step": s["StepName"],
            "attempt": a["Attempt"],
            "start": a["StartTime"],
            "status": a["StepStatus"],
            "retry after (s)": a.get("RetryAfterSeconds", ""),
            "reason": (a.get("FailureReason") or "")[:80],
        }
        for s in result["steps"]
        for a in s["Attempts"]
    ]
    click.echo(table(rows, ["step", "attempt", "start", "status", "retry after (s)", "reason"]) if rows else "no steps")


@main.command()
@env_dir_option
def demo(env_dir: str | None) -> None:
    """The main job on the sandbox: the promotion story, narrated, ending with a summary."""

    raise SystemExit(run_story(env_dir=env_dir, say=click.secho))


def _show(status, output):
    if output == "json":
        emit_json({"running": True, **status})
        return
    click.echo(f"sandbox running at {status['endpoint']} (pid {status['pid']})")
    rows = [
        {"label": a["label"], "account": a["account_id"], "access key": a["credentials"]["aws_access_key_id"]}
        for a in status["accounts"]
    ]
    click.echo(table(rows, ["label", "account", "access key"]))
    click.echo(
        "point boto3/AWS CLI/Terraform at it: endpoint_url above, region as in the environment, "
        "and an account's keys (`sandbox status --output json` prints the secrets)"
    )
