"""S3 event notifications to EventBridge as AWS sends them, and the arrival triggers built on them: a rule
on `Object Created` under a prefix (and suffix) invokes the arrival function, which starts a pipeline with
the object's URI as a parameter: one run per delivery marker, none for the parts before it.

AWS pages mirrored: "EventBridge event message structure"
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html: detail-type `Object Created`,
source `aws.s3`, detail.bucket.name, detail.object.key/size/etag/version-id/sequencer, detail.reason =
the creating API), "Enabling Amazon EventBridge" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-event-notifications-eventbridge.html:
only buckets with EventBridge notifications turned on send events), content filtering in event patterns
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html: prefix,
suffix, wildcard) and Lambda resource-based policies for EventBridge
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-lambda-permissions).
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile

from pipelines.definitions import ARRIVAL_SOURCE
from tests.sandbox.events_helpers import create_quick_pipeline, deliveries, executions, received, topic_with_queue
from tests.sandbox.pipeline_account import ACCOUNT, TRUST_LAMBDA

REGION = "us-east-1"


def _bucket(account, name, event_bridge):
    s3 = account.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if event_bridge:
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
    return s3


def test_object_created_reaches_eventbridge_in_aws_shape_only_from_buckets_that_enabled_it(account):
    events = account.client("events")
    topic, inbox = topic_with_queue(account, "s3-events")
    events.put_rule(
        Name="landed",
        EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}),
    )
    events.put_targets(Rule="landed", Targets=[{"Id": "topic", "Arn": topic}])
    s3 = _bucket(account, "data-lands-here", event_bridge=True)
    _bucket(account, "quiet-bucket", event_bridge=False)

    put = s3.put_object(Bucket="data-lands-here", Key="inbox/batch 1.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket="quiet-bucket", Key="inbox/batch.csv", Body=b"a,b\n1,2\n")
    s3.copy_object(Bucket="data-lands-here", Key="copies/batch.csv", CopySource="data-lands-here/inbox/batch 1.csv")

    messages = []
    deadline = time.monotonic() + 10
    while len(messages) < 2 and time.monotonic() < deadline:
        messages += [json.loads(m) for m in received(account, inbox, wait=0.5)]
    messages.sort(key=lambda e: e["detail"]["object"]["key"])
    assert len(messages) == 2, messages  # nothing from the bucket that did not turn notifications on
    copied, created = messages
    assert created["source"] == "aws.s3" and created["detail-type"] == "Object Created"
    assert created["account"] == ACCOUNT and created["region"] == REGION
    assert created["resources"] == ["arn:aws:s3:::data-lands-here"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["time"])
    detail = created["detail"]
    assert detail["version"] == "0" and detail["bucket"] == {"name": "data-lands-here"}
    assert detail["object"]["key"] == "inbox/batch 1.csv"  # not URL-encoded, unlike S3's own notifications
    assert detail["object"]["size"] == 8 and detail["object"]["etag"] == put["ETag"].strip('"')
    assert detail["object"]["version-id"] == put["VersionId"]
    assert detail["reason"] == "PutObject" and copied["detail"]["reason"] == "CopyObject"
    assert int(copied["detail"]["object"]["sequencer"], 16) > int(detail["object"]["sequencer"], 16)


def _arrival_function(account, name="start-on-arrival", invoke_rule_arn=None):
    iam, lam = account.client("iam"), account.client("lambda")
    iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA))
    iam.put_role_policy(
        RoleName=f"{name}-role",
        PolicyName="start",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution", "Resource": "*"}],
            }
        ),
    )
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("start_on_arrival.py", ARRIVAL_SOURCE.read_bytes())
    arn = lam.create_function(
        FunctionName=name,
        Role=f"arn:aws:iam::{ACCOUNT}:role/{name}-role",
        Handler="start_on_arrival.handler",
        Runtime="python3.12",
        Code={"ZipFile": raw.getvalue()},
        Timeout=30,  # as pipelines.definitions.arrival_function deploys it
    )["FunctionArn"]
    if invoke_rule_arn:
        lam.add_permission(
            FunctionName=name,
            StatementId="arrival-rule",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=invoke_rule_arn,
        )
    return arn


def _arrival_rule(account, name, bucket, prefix, suffix, pipeline, function_arn):
    """What mlops-infra/modules/arrivals creates for one trigger."""
    events = account.client("events")
    key = [{"wildcard": f"{prefix}*{suffix}"}] if suffix else [{"prefix": prefix}]
    rule_arn = events.put_rule(
        Name=name,
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [bucket]}, "object": {"key": key}},
            }
        ),
    )["RuleArn"]
    template = (
        f'{{"pipeline": "{pipeline}", "parameter": "Reason", "bucket": <bucket>, "key": <key>, '
        f'"event_id": <id>, "trigger": "{name}"}}'
    )
    events.put_targets(
        Rule=name,
        Targets=[
            {
                "Id": "start",
                "Arn": function_arn,
                "InputTransformer": {
                    "InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key", "id": "$.id"},
                    "InputTemplate": template,
                },
            }
        ],
    )
    return rule_arn


def _wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_delivery_of_many_parts_starts_one_run_when_its_marker_lands(account):
    s3 = _bucket(account, "deliveries", event_bridge=True)
    create_quick_pipeline(account, "train-on-delivery")
    rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/training-delivery"
    function = _arrival_function(account, invoke_rule_arn=rule_arn)
    _arrival_rule(account, "training-delivery", "deliveries", "training/", "/_SUCCESS", "train-on-delivery", function)

    for i in range(5):
        s3.put_object(Bucket="deliveries", Key=f"training/delivery-7/part-{i:04d}.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket="deliveries", Key="elsewhere/_SUCCESS", Body=b"")
    time.sleep(1.0)
    assert executions(account, "train-on-delivery") == []  # parts alone start nothing

    s3.put_object(Bucket="deliveries", Key="training/delivery-7/_SUCCESS", Body=b"")
    [run] = _wait_for(lambda: executions(account, "train-on-delivery"))
    time.sleep(0.5)
    assert len(executions(account, "train-on-delivery")) == 1
    described = account.client("sagemaker").describe_pipeline_execution(
        PipelineExecutionArn=run["PipelineExecutionArn"]
    )
    assert (
        described["PipelineExecutionDescription"]
        == "started by the arrival of s3://deliveries/training/delivery-7/_SUCCESS"
    )
    parameters = account.client("sagemaker").list_pipeline_parameters_for_execution(
        PipelineExecutionArn=run["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert {"Name": "Reason", "Value": "s3://deliveries/training/delivery-7/_SUCCESS"} in parameters
    [delivered] = [d for d in deliveries() if d["rule"] == "training-delivery"]
    assert delivered["status"] == "delivered" and delivered["result"]["object"].endswith("delivery-7/_SUCCESS")


def test_the_arrival_function_runs_only_for_rules_its_resource_policy_names(account):
    s3 = _bucket(account, "inbox-bucket", event_bridge=True)
    create_quick_pipeline(account, "score-batch")
    allowed = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/some-other-rule"
    function = _arrival_function(account, name="not-for-this-rule", invoke_rule_arn=allowed)
    rule_arn = _arrival_rule(account, "inbox", "inbox-bucket", "inbox/", ".csv", "score-batch", function)

    s3.put_object(Bucket="inbox-bucket", Key="inbox/batch-1.csv", Body=b"a,b\n1,2\n")
    [failed] = _wait_for(lambda: [d for d in deliveries("failed") if d["rule"] == "inbox"])
    assert failed["reason"] == (
        f"the resource policy of {function} does not allow events.amazonaws.com to lambda:InvokeFunction "
        f"for rule {rule_arn}"
    )
    assert executions(account, "score-batch") == []
