"""Lambda behind the run-metrics rules (mlops-infra/modules/run_metrics): a pipeline execution reached a
terminal status, so publish PipelineRuns{Status} = 1 and PipelineDuration (seconds from its start to its
end) in the project's namespace, stamped with the execution's end (pipelines/metrics.py).

The rule matches EventBridge's "SageMaker Model Building Pipeline Execution Status Change" event
(https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html) of one
pipeline whose currentPipelineExecutionStatus is Succeeded, Failed or Stopped; its input transformer hands
this function the namespace, the environment, the pipeline's kind and the event's own fields:
    {"namespace": "MLOps/<project>", "environment": ENV, "pipeline": "train|hpo|inference|quality",
     "status": S, "start": executionStartTime, "end": executionEndTime, "execution": ARN}
Only boto3, which the Lambda runtime provides, and metric_data.py, zipped beside this file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3

try:
    import metric_data  # the function's zip holds it beside this file
except ImportError:  # the toolkit (and its tests) reach it as a package module
    from pipelines.steps import metric_data

REQUIRED = ("namespace", "environment", "pipeline", "status", "start", "end")


class BadRunEvent(Exception):
    """The rule's input transformer did not provide what this function needs."""


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def run_metric_data(event: dict) -> list[dict]:
    """The two datapoints of one ended execution, stamped with its end."""
    missing = [k for k in REQUIRED if not event.get(k)]
    if missing:
        raise BadRunEvent(f"the run event lacks {', '.join(missing)} (check the rule's input transformer)")
    start, end = _time(event["start"]), _time(event["end"])
    try:
        data = metric_data.run_data(
            event["status"], (end - start).total_seconds(), event["environment"], event["pipeline"]
        )
    except metric_data.MetricContractError as exc:
        raise BadRunEvent(str(exc)) from None
    return [{**d, "Timestamp": end} for d in data]


def publish_for(cloudwatch: Any, event: dict) -> dict:
    data = run_metric_data(event)
    metric_data.publish(event["namespace"], data, cloudwatch)
    duration = next(d["Value"] for d in data if d["MetricName"] == metric_data.PIPELINE_DURATION)
    return {"execution": event.get("execution"), "status": event["status"], "seconds": duration}


def handler(event: dict, _context: Any) -> dict:
    result = publish_for(boto3.client("cloudwatch"), event)
    print(f"{result['execution']}: {result['status']} after {result['seconds']:.0f}s")
    return result
