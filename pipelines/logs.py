"""A pipeline execution's step logs from CloudWatch Logs, found through the step metadata that
ListPipelineExecutionSteps returns (job ARNs, Lambda function ARN). Plain boto3: works on AWS and
on the sandbox alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_core.errors import ConfigError
from mlops_core.session import Sessions

# Where SageMaker writes each job kind's container output.
JOB_LOG_GROUPS = {
    "ProcessingJob": "/aws/sagemaker/ProcessingJobs",
    "TrainingJob": "/aws/sagemaker/TrainingJobs",
    "TransformJob": "/aws/sagemaker/TransformJobs",
}


@dataclass
class StepLog:
    step: str
    status: str
    group: str | None = None
    streams: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    note: str = ""


def execution_steps(sagemaker: Any, execution_arn: str) -> list[dict]:
    """Every step of the execution, oldest first."""
    steps, kwargs = [], {"PipelineExecutionArn": execution_arn, "SortOrder": "Ascending"}
    while True:
        page = sagemaker.list_pipeline_execution_steps(**kwargs)
        steps += page.get("PipelineExecutionSteps", [])
        if not page.get("NextToken"):
            return steps
        kwargs["NextToken"] = page["NextToken"]


def step_logs(
    sagemaker: Any, logs: Any, execution_arn: str, step: str | None = None, tail: int | None = None
) -> list[StepLog]:
    steps = execution_steps(sagemaker, execution_arn)
    if step is not None:
        chosen = [s for s in steps if s["StepName"] == step]
        if not chosen:
            names = ", ".join(s["StepName"] for s in steps) or "none ran"
            raise ConfigError(f"execution has no step named '{step}' (steps: {names})", field="--step")
        steps = chosen
    execution_id = execution_arn.rsplit("/", 1)[-1]
    return [_one(logs, s, execution_id, tail) for s in steps]


def _one(logs, step: dict, execution_id: str, tail: int | None) -> StepLog:
    result = StepLog(step["StepName"], step.get("StepStatus", ""))
    metadata = step.get("Metadata") or {}
    for kind, group in JOB_LOG_GROUPS.items():
        if kind in metadata:
            job = metadata[kind]["Arn"].rsplit("/", 1)[-1]
            result.group = group
            result.streams = _job_streams(logs, group, job, execution_id)
            result.lines = _read_streams(logs, group, result.streams)
            break
    else:
        if "Lambda" in metadata:
            function = metadata["Lambda"]["Arn"].split(":")[6]
            result.group = f"/aws/lambda/{function}"
            result.lines = _lambda_lines(logs, result.group, step)
        elif "TuningJob" in metadata:
            result.note = "a tuning step: see its training jobs in /aws/sagemaker/TrainingJobs"
        else:
            kind = next(iter(metadata), "this step")
            result.note = f"no logs ({kind} steps run no container)" if metadata else "no logs"
    if not result.lines and not result.note:
        result.note = "no log events (yet)"
    if tail:
        result.lines = result.lines[-tail:]
    return result


def _job_streams(logs, group: str, job: str, execution_id: str) -> list[str]:
    # ARNs lower-case job names while streams keep the real case: every job of a pipeline execution
    # starts with pipelines-<execution id>, so list those and match case-insensitively.
    try:
        found = [
            name
            for name in _stream_names(logs, group, f"pipelines-{execution_id}")
            if name.lower().startswith(job.lower() + "/")
        ]
    except logs.exceptions.ResourceNotFoundException:
        return []
    if not found and not job.lower().startswith(f"pipelines-{execution_id}"):
        found = _stream_names(logs, group, job)
    return sorted(found)


def _stream_names(logs, group: str, prefix: str) -> list[str]:
    # 50 streams a page (DescribeLogStreams' most): a job on many instances writes one stream each
    names, kwargs = [], {"logGroupName": group, "logStreamNamePrefix": prefix}
    while True:
        page = logs.describe_log_streams(**kwargs)
        names += [s["logStreamName"] for s in page.get("logStreams", [])]
        if not page.get("nextToken"):
            return names
        kwargs["nextToken"] = page["nextToken"]


def _read_streams(logs, group: str, streams: list[str]) -> list[str]:
    lines = []
    for stream in streams:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        previous = None
        while True:
            page = logs.get_log_events(**kwargs)
            lines += [e["message"] for e in page.get("events", [])]
            token = page.get("nextForwardToken")
            if not page.get("events") or token == previous:
                break
            previous = kwargs["nextToken"] = token
    return lines


def _lambda_lines(logs, group: str, step: dict) -> list[str]:
    # a Lambda step's invocation is not tied to a stream: read the function's group over the step's time
    start = step.get("StartTime")
    end = step.get("EndTime")
    if start is None:
        return []
    kwargs = {"logGroupName": group, "startTime": int(start.timestamp() * 1000) - 1000}
    if end is not None:
        kwargs["endTime"] = int(end.timestamp() * 1000) + 5000
    lines = []
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            lines += [e["message"] for e in page.get("events", [])]
            if not page.get("nextToken"):
                return lines
            kwargs["nextToken"] = page["nextToken"]
    except logs.exceptions.ResourceNotFoundException:
        return []


def render(step_logs_: list[StepLog]) -> str:
    out = []
    for log in step_logs_:
        where = f"{log.group}/{', '.join(log.streams)}" if log.streams else (log.group or "")
        out.append(f"== {log.step} ({log.status})" + (f"  {where}" if where else ""))
        out += log.lines if log.lines else [f"   {log.note}"]
    return "\n".join(out)


def show_execution_logs(sessions: Sessions, execution_arn: str, step: str | None = None) -> str:
    """What `run-pipeline logs` prints."""
    return render(step_logs(sessions.client("sagemaker"), sessions.client("logs"), execution_arn, step))
