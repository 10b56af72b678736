"""Following a pipeline execution: a live table of its steps (status, duration) while it runs, a
summary when it ends and, on failure, the failing step's reason and last log lines. Built only on
DescribePipelineExecution, ListPipelineExecutionSteps and CloudWatch Logs, so it serves real AWS
and the sandbox alike."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TextIO

from mlops_core.errors import AccessDenied, PipelineFailed, ToolkitError
from mlops_core.session import Sessions
from mlops_core.text import table
from pipelines.logs import execution_steps, step_logs

TERMINAL = ("Succeeded", "Failed", "Stopped")
LOG_TAIL = 20


def _clients(sessions_or_client, logs_client=None):
    if hasattr(sessions_or_client, "client") and hasattr(sessions_or_client, "workload"):
        return sessions_or_client.client("sagemaker"), logs_client or sessions_or_client.client("logs")
    return sessions_or_client, logs_client


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def server_time(response: dict) -> datetime:
    """When the service answered (its Date header): what a running step's duration is measured against, so a
    skewed local clock (or the sandbox's, after `sandbox tick`) never shows a negative or inflated duration."""
    date = (response.get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).astimezone(UTC) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def _elapsed(start, end=None, now: datetime | None = None) -> float | None:
    if start is None:
        return None
    return ((end or now or datetime.now(UTC)) - start).total_seconds()


def _detail(step: dict) -> str:
    if step.get("FailureReason"):
        return step["FailureReason"]
    metadata = step.get("Metadata") or {}
    for kind, value in metadata.items():
        if isinstance(value, dict) and value.get("Arn"):
            return f"{kind}: {value['Arn'].rsplit('/', 1)[-1] if kind != 'RegisterModel' else value['Arn']}"
        if kind == "Condition":
            return f"outcome {value.get('Outcome')}"
    return ""


def step_rows(steps: list[dict], now: datetime | None = None) -> list[dict]:
    """One row a step; a running step's duration runs to `now` (the service's time: server_time)."""
    return [
        {
            "step": s["StepName"],
            "status": s.get("StepStatus", ""),
            "duration": duration(_elapsed(s.get("StartTime"), s.get("EndTime"), now)),
            "detail": _detail(s),
        }
        for s in sorted(steps, key=lambda s: s.get("StartTime") or datetime.min.replace(tzinfo=UTC))
    ]


def render_table(rows: list[dict]) -> str:
    clipped = [dict(r, detail=(r["detail"][:70] + "...") if len(r["detail"]) > 73 else r["detail"]) for r in rows]
    return table(clipped, ["step", "status", "duration", "detail"]) if rows else "(no step started yet)"


def follow_execution(
    sessions_or_client: Any,
    execution_arn: str,
    out: TextIO | None = None,
    poll: float = 2.0,
    logs_client: Any | None = None,
    timeout: float | None = None,
    tail: int = LOG_TAIL,
) -> str:
    """Follow `execution_arn` until it ends; returns the final status (Succeeded/Failed/Stopped).

    `sessions_or_client` is a mlops_core.session.Sessions (clients of its workload account) or a
    SageMaker client (then pass `logs_client` to show log lines of a failed step). On a terminal
    `out` the table redraws in place; otherwise each step status change prints one line.
    """

    sagemaker, logs = _clients(sessions_or_client, logs_client)
    out = out or sys.stdout
    live = hasattr(out, "isatty") and out.isatty()
    seen: dict[str, str] = {}
    drawn = 0
    deadline = time.monotonic() + timeout if timeout else None
    out.write(f"following {execution_arn}\n")
    while True:
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        status = described["PipelineExecutionStatus"]
        now = server_time(described)
        steps = execution_steps(sagemaker, execution_arn)
        rows = step_rows(steps, now)
        if live:
            took = duration(_elapsed(described.get("CreationTime"), now=now))
            text = render_table(rows) + f"\nexecution: {status}  {took}"
            out.write(f"\x1b[{drawn}F\x1b[J" if drawn else "")
            out.write(text + "\n")
            drawn = text.count("\n") + 1
        else:
            for row in rows:
                if seen.get(row["step"]) != row["status"]:
                    seen[row["step"]] = row["status"]
                    stamp = datetime.now(UTC).strftime("%H:%M:%S")
                    out.write(
                        f"{stamp}  {row['step']:<24} {row['status']:<10} {row['duration']:>7}  {row['detail'][:100]}\n"
                    )
        out.flush()
        if status in TERMINAL:
            break
        if deadline and time.monotonic() > deadline:
            out.write(f"still {status} after {duration(timeout)}; stopped following (the execution goes on)\n")
            return status
        time.sleep(poll)
    _summary(out, described, steps, sagemaker, logs, tail, live)
    return status


def _summary(out, described, steps, sagemaker, logs, tail, live) -> None:
    status = described["PipelineExecutionStatus"]
    took = _elapsed(described.get("CreationTime"), described.get("LastModifiedTime"))
    if not live:
        out.write("\n" + render_table(step_rows(steps)) + "\n")
    out.write(f"\nexecution {status} in {duration(took)}: {described['PipelineExecutionArn']}\n")
    if status == "Succeeded":
        return
    if described.get("FailureReason"):
        out.write(f"reason: {described['FailureReason']}\n")
    for step in [s for s in steps if s.get("StepStatus") == "Failed"]:
        out.write(f"\nstep {step['StepName']} failed: {step.get('FailureReason', 'no reason given')}\n")
        if logs is None:
            continue

        try:
            [log] = step_logs(sagemaker, logs, described["PipelineExecutionArn"], step["StepName"], tail=tail)
        except Exception as exc:  # logs are a courtesy here: their absence must not hide the failure
            out.write(f"  (logs unavailable: {exc})\n")
            continue
        if log.lines:
            out.write(f"last {len(log.lines)} log lines ({log.group}):\n")
            out.write("".join(f"  | {line}\n" for line in log.lines))
    out.flush()


def latest_execution_arn(sagemaker: Any, pipeline_name: str, appear_timeout: float = 0.0, poll: float = 0.5) -> str:
    """The most recent execution of `pipeline_name`, waiting up to `appear_timeout` seconds for one."""

    deadline = time.monotonic() + appear_timeout
    while True:
        summaries = sagemaker.list_pipeline_executions(
            PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
        )
        found = summaries.get("PipelineExecutionSummaries", [])
        if found:
            return found[0]["PipelineExecutionArn"]
        if time.monotonic() >= deadline:
            raise PipelineFailed(f"{pipeline_name} has no execution (waited {appear_timeout:.0f}s)")
        time.sleep(poll)


def latest_failed_execution(sagemaker: Any, pipeline_names: list[str]) -> str:
    """The most recently started Failed execution among `pipeline_names`."""

    failed = []
    for name in pipeline_names:
        paginator = sagemaker.get_paginator("list_pipeline_executions")
        for page in paginator.paginate(PipelineName=name, SortBy="CreationTime", SortOrder="Descending"):
            summary = next(
                (s for s in page["PipelineExecutionSummaries"] if s["PipelineExecutionStatus"] == "Failed"), None
            )
            if summary:
                failed.append(summary)
                break
    if not failed:
        raise ToolkitError(f"no failed execution of {', '.join(pipeline_names)} to retry")
    return max(failed, key=lambda s: s["StartTime"])["PipelineExecutionArn"]


def retry_execution(
    sessions: Sessions,
    execution_arn: str | None,
    pipeline_names: list[str],
    follow: bool = True,
    out: TextIO | None = None,
) -> dict:
    """RetryPipelineExecution of a Failed execution (the most recent one when no ARN is given): SageMaker
    runs it again from the steps that failed, keeping what succeeded. Returns its ARN, the steps that had
    failed and the status it ended with (Executing when not followed)."""

    from botocore.exceptions import ClientError

    sagemaker = sessions.client("sagemaker")
    arn = execution_arn or latest_failed_execution(sagemaker, pipeline_names)
    try:
        status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        if status != "Failed":
            raise ToolkitError(f"{arn} is {status}: only a Failed execution can be retried")
        failed = [s["StepName"] for s in execution_steps(sagemaker, arn) if s.get("StepStatus") == "Failed"]
        sagemaker.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as exc:
        raise AccessDenied.from_client_error(exc) or ToolkitError(
            f"{exc.operation_name} refused: {exc.response.get('Error', {}).get('Message', exc)}"
        ) from None
    final = follow_execution(sessions, arn, out=out or sys.stdout) if follow else "Executing"
    return {"execution_arn": arn, "failed_steps": failed, "status": final}
