"""Catalogue of classic EventBridge misconfigurations: each wrong setup and its correct twin. On AWS
the wrong one fails silently (the rule matches, nothing arrives, only the FailedInvocations metric
moves); the sandbox fails the same deliveries and records why, so a test can see it."""

import json

from tests.conftest import run_cli
from tests.sandbox.events_helpers import (
    create_quick_pipeline,
    deliveries,
    events_role,
    executions,
    received,
    topic_with_queue,
)

EVENT = {"Source": "mlops.test", "DetailType": "Model Approved", "Detail": json.dumps({"version": 3})}
PATTERN = json.dumps({"source": ["mlops.test"]})


def test_sns_target_needs_a_topic_policy_that_lets_eventbridge_publish(account):
    """Source: Amazon EventBridge User Guide, "Using resource-based policies for Amazon EventBridge",
    section "Amazon SNS permissions" (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions):
    to deliver to an SNS topic, the topic's access policy must allow the service principal
    events.amazonaws.com to sns:Publish; the default topic policy (account owner only) does not, and
    the failed invocation is only visible as the rule's FailedInvocations metric."""
    events = account.client("events")
    default_topic, default_inbox = topic_with_queue(account, "default-policy", allow_events=False)
    granted_topic, granted_inbox = topic_with_queue(account, "grants-events", allow_events=True)
    events.put_rule(Name="approved", EventPattern=PATTERN)
    events.put_targets(
        Rule="approved", Targets=[{"Id": "wrong", "Arn": default_topic}, {"Id": "right", "Arn": granted_topic}]
    )
    response = events.put_events(Entries=[EVENT])
    assert response["FailedEntryCount"] == 0  # as on AWS: PutEvents succeeds, the delivery fails later

    assert received(account, default_inbox, wait=0.5) == []
    assert len(received(account, granted_inbox, wait=1)) == 1
    [failed] = deliveries("failed")
    assert failed["target_arn"] == default_topic
    assert "does not allow events.amazonaws.com to sns:Publish" in failed["reason"]
    shown = run_cli("sandbox", "events", "--failed")
    assert shown.returncode == 0 and "default-policy" in shown.stdout and "grants-events" not in shown.stdout


def test_pipeline_target_role_needs_start_pipeline_execution(account):
    """Source: Amazon EventBridge User Guide, "Event bus targets"
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-targets.html) and the
    SageMaker Developer Guide, "Schedule a pipeline with Amazon EventBridge"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/pipeline-eventbridge.html): the target's role must
    trust events.amazonaws.com and allow sagemaker:StartPipelineExecution on the pipeline; otherwise
    EventBridge cannot start it and counts a FailedInvocation."""
    create_quick_pipeline(account, "train")
    events = account.client("events")
    unable = events_role(account, "events-cannot-start", actions=("sagemaker:DescribePipeline",))
    able = events_role(account, "events-can-start", resource="arn:aws:sagemaker:us-east-1:111111111111:pipeline/train")
    target = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/train"

    events.put_rule(Name="retrain-wrong", EventPattern=PATTERN)
    events.put_targets(Rule="retrain-wrong", Targets=[{"Id": "t", "Arn": target, "RoleArn": unable}])
    events.put_events(Entries=[EVENT])
    assert executions(account, "train") == []
    [failed] = deliveries("failed")
    assert failed["rule"] == "retrain-wrong"
    assert "AccessDenied" in failed["reason"] and "StartPipelineExecution" in failed["reason"]

    events.put_targets(Rule="retrain-wrong", Targets=[{"Id": "t", "Arn": target, "RoleArn": able}])
    events.put_events(Entries=[EVENT])
    [started] = executions(account, "train")
    assert [d["result"]["PipelineExecutionArn"] for d in deliveries("delivered")] == [started["PipelineExecutionArn"]]


def test_encrypted_topic_with_the_aws_managed_key_cannot_receive_from_eventbridge(account):
    """Source: Amazon SNS Developer Guide, "Configure AWS KMS permissions for AWS services"
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services):
    EventBridge must be allowed kms:GenerateDataKey* and kms:Decrypt on the topic's key, which the AWS
    managed key alias/aws/sns can never grant: the events are dropped."""
    events = account.client("events")
    topic, inbox = topic_with_queue(account, "encrypted-aws-managed")
    account.client("sns").set_topic_attributes(
        TopicArn=topic, AttributeName="KmsMasterKeyId", AttributeValue="alias/aws/sns"
    )
    events.put_rule(Name="approved", EventPattern=PATTERN)
    events.put_targets(Rule="approved", Targets=[{"Id": "t", "Arn": topic}])
    events.put_events(Entries=[EVENT])
    assert received(account, inbox, wait=0.5) == []
    [failed] = deliveries("failed")
    assert "alias/aws/sns" in failed["reason"]
