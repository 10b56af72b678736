"""Lambda behind the arrival rules: an S3 object landed under a configured prefix, so start the configured
pipeline with one parameter set to that object's s3:// URI (a delivery marker, an inbox batch, labels).

EventBridge rules cannot pass event values as SageMaker pipeline parameters (a rule's
SageMakerPipelineParameters are constants; dynamic paths exist only for EventBridge Pipes) and the
Terraform AWS provider 3.39 has no sagemaker_pipeline_target at all: the rule's input transformer hands
this function the pipeline, the parameter and the object, and the function calls StartPipelineExecution.
The event id is the ClientRequestToken, so a repeated delivery of the same event starts no second run.

Event (built by the rule's input transformer):
    {"pipeline": NAME, "parameter": NAME, "bucket": B, "key": K, "event_id": ID, "rule": ARN}
Only boto3, which the Lambda runtime provides.
"""

from __future__ import annotations

from typing import Any

import boto3

REQUIRED = ("pipeline", "parameter", "bucket", "key", "event_id")


class BadArrivalEvent(Exception):
    """The rule's input transformer did not provide what this function needs."""


def start_for(sagemaker: Any, event: dict) -> dict:
    missing = [k for k in REQUIRED if not event.get(k)]
    if missing:
        raise BadArrivalEvent(f"the arrival event lacks {', '.join(missing)} (check the rule's input transformer)")
    uri = f"s3://{event['bucket']}/{event['key']}"
    token = event["event_id"].replace("-", "")
    token = (token * 2)[:64] if len(token) < 32 else token[:128]  # ClientRequestToken: 32 to 128 characters
    response = sagemaker.start_pipeline_execution(
        PipelineName=event["pipeline"],
        PipelineParameters=[{"Name": event["parameter"], "Value": uri}],
        PipelineExecutionDescription=f"started by the arrival of {uri}"[:3072],
        ClientRequestToken=token,
    )
    return {"pipeline_execution_arn": response["PipelineExecutionArn"], "object": uri}


def handler(event: dict, _context: Any) -> dict:
    result = start_for(boto3.client("sagemaker"), event)
    print(f"{result['object']} started {result['pipeline_execution_arn']}")
    return result
