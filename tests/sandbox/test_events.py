"""EventBridge in the sandbox as rules behave on AWS: SNS and SageMaker pipeline targets, input
transformers, pipeline status-change events on the default bus, TestEventPattern."""

import json

import pytest

from tests.sandbox.events_helpers import (
    create_quick_pipeline,
    deliveries,
    events_role,
    executions,
    received,
    topic_with_queue,
)
from tests.sandbox.pipeline_account import ROLE_ARN

CUSTOM = {"Source": "mlops.test", "DetailType": "Batch Arrived", "Detail": json.dumps({"batch": "b-7", "rows": 120})}


def test_sns_target_receives_the_input_transformer_text(account):
    topic, queue = topic_with_queue(account, "approvals")
    events = account.client("events")
    events.put_rule(Name="batch-arrived", EventPattern=json.dumps({"source": ["mlops.test"]}))
    events.put_targets(
        Rule="batch-arrived",
        Targets=[
            {
                "Id": "notify",
                "Arn": topic,
                "InputTransformer": {
                    "InputPathsMap": {"batch": "$.detail.batch", "rows": "$.detail.rows"},
                    "InputTemplate": '"Batch <batch> arrived with <rows> rows"',
                },
            }
        ],
    )
    assert events.put_events(Entries=[CUSTOM])["FailedEntryCount"] == 0
    assert received(account, queue) == ['"Batch b-7 arrived with 120 rows"']


def test_constant_input_and_input_path(account):
    topic, queue = topic_with_queue(account, "approvals")
    events = account.client("events")
    events.put_rule(Name="batch-arrived", EventPattern=json.dumps({"detail-type": ["Batch Arrived"]}))
    events.put_targets(
        Rule="batch-arrived",
        Targets=[
            {"Id": "constant", "Arn": topic, "Input": json.dumps({"fixed": True})},
            {"Id": "path", "Arn": topic, "InputPath": "$.detail"},
        ],
    )
    events.put_events(Entries=[CUSTOM])
    messages = received(account, queue, wait=1) + received(account, queue, wait=0.5)
    assert sorted(json.dumps(json.loads(m), sort_keys=True) for m in messages) == [
        '{"batch": "b-7", "rows": 120}',
        '{"fixed": true}',
    ]


def test_pipeline_target_starts_the_pipeline_with_its_parameters(account):
    create_quick_pipeline(account, "retrain")
    role = events_role(account, "events-start-retrain")
    events = account.client("events")
    events.put_rule(Name="start-retrain", EventPattern=json.dumps({"source": ["mlops.test"]}))
    events.put_targets(
        Rule="start-retrain",
        Targets=[
            {
                "Id": "retrain",
                "Arn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/retrain",
                "RoleArn": role,
                "SageMakerPipelineParameters": {
                    "PipelineParameterList": [{"Name": "Reason", "Value": "batch-arrived"}]
                },
            }
        ],
    )
    events.put_events(Entries=[CUSTOM])
    [execution] = executions(account, "retrain")
    params = account.client("sagemaker").list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert params == [{"Name": "Reason", "Value": "batch-arrived"}]
    [delivery] = deliveries()
    assert delivery["status"] == "delivered"
    assert delivery["result"]["PipelineExecutionArn"] == execution["PipelineExecutionArn"]


def test_a_failed_execution_event_starts_retraining_and_notifies(account):
    """The retraining loop: inference Failed -> the train pipeline starts, approvers are told."""
    create_quick_pipeline(account, "train")
    account.client("sagemaker").create_pipeline(
        PipelineName="inference",
        RoleArn=ROLE_ARN,
        PipelineDefinition=json.dumps(
            {
                "Version": "2020-12-01",
                "Steps": [{"Name": "DriftCheck", "Type": "Fail", "Arguments": {"ErrorMessage": "DataDriftDetected"}}],
            }
        ),
    )
    topic, queue = topic_with_queue(account, "ml-alerts")
    role = events_role(account, "events-retrain", resource="arn:aws:sagemaker:us-east-1:111111111111:pipeline/train")
    events = account.client("events")
    events.put_rule(
        Name="retrain-on-failure",
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                "resources": ["arn:aws:sagemaker:us-east-1:111111111111:pipeline/inference"],
                "detail": {"currentPipelineExecutionStatus": ["Failed"]},
            }
        ),
    )
    events.put_targets(
        Rule="retrain-on-failure",
        Targets=[
            {"Id": "train", "Arn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/train", "RoleArn": role},
            {
                "Id": "tell",
                "Arn": topic,
                "InputTransformer": {
                    "InputPathsMap": {"execution": "$.detail.pipelineExecutionArn"},
                    "InputTemplate": '"Inference failed: <execution>; retraining started"',
                },
            },
        ],
    )
    failed = account.wait(
        account.client("sagemaker").start_pipeline_execution(PipelineName="inference")["PipelineExecutionArn"]
    )
    assert failed["PipelineExecutionStatus"] == "Failed"
    [train] = executions(account, "train")
    assert account.wait(train["PipelineExecutionArn"])["PipelineExecutionStatus"] == "Succeeded"
    assert received(account, queue, wait=2) == [
        f'"Inference failed: {failed["PipelineExecutionArn"]}; retraining started"'
    ]


def test_step_status_events_reach_rules(account):
    topic, queue = topic_with_queue(account, "steps")
    create_quick_pipeline(account, "quick")
    events = account.client("events")
    events.put_rule(
        Name="step-changes",
        EventPattern=json.dumps(
            {
                "detail-type": ["SageMaker Model Building Pipeline Execution Step Status Change"],
                "detail": {"currentStepStatus": ["Succeeded"]},
            }
        ),
    )
    events.put_targets(Rule="step-changes", Targets=[{"Id": "t", "Arn": topic, "InputPath": "$.detail.stepName"}])
    account.wait(account.client("sagemaker").start_pipeline_execution(PipelineName="quick")["PipelineExecutionArn"])
    assert received(account, queue, wait=2) == ['"Noop"']


def test_scheduled_and_disabled_rules_do_not_react_to_events(account):
    topic, queue = topic_with_queue(account, "quiet")
    events = account.client("events")
    events.put_rule(Name="nightly", ScheduleExpression="cron(0 6 * * ? *)")
    events.put_rule(Name="switched-off", EventPattern=json.dumps({"source": ["mlops.test"]}), State="DISABLED")
    for rule in ("nightly", "switched-off"):
        events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": topic}])
    events.put_events(Entries=[CUSTOM])
    assert received(account, queue, wait=0.5) == []
    assert deliveries() == []


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ({"source": ["aws.sagemaker"], "detail": {"currentPipelineExecutionStatus": ["Failed"]}}, True),
        ({"source": ["aws.sagemaker"], "detail": {"currentPipelineExecutionStatus": ["Succeeded"]}}, False),
        ({"detail": {"currentPipelineExecutionStatus": [{"anything-but": "Succeeded"}]}}, True),
    ],
)
def test_test_event_pattern_answers(account, pattern, expected):
    event = {
        "id": "1",
        "account": "111111111111",
        "source": "aws.sagemaker",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail-type": "x",
        "detail": {"currentPipelineExecutionStatus": "Failed"},
    }
    result = account.client("events").test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))
    assert result["Result"] is expected


def test_a_new_model_version_pending_approval_notifies_the_approvers(account):
    """The registry's "SageMaker Model Package State Change" event, as the approval rule expects it."""
    topic, queue = topic_with_queue(account, "approvers")
    events = account.client("events")
    events.put_rule(
        Name="pending-approval",
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {"ModelPackageGroupName": ["models"], "ModelApprovalStatus": ["PendingManualApproval"]},
            }
        ),
    )
    events.put_targets(
        Rule="pending-approval",
        Targets=[
            {
                "Id": "mail",
                "Arn": topic,
                "InputTransformer": {
                    "InputPathsMap": {
                        "group": "$.detail.ModelPackageGroupName",
                        "version": "$.detail.ModelPackageVersion",
                    },
                    "InputTemplate": '"Model <group> version <version> is waiting for your approval"',
                },
            }
        ],
    )
    sm = account.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="models")
    package = sm.create_model_package(
        ModelPackageGroupName="models",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    assert received(account, queue, wait=1) == ['"Model models version 1 is waiting for your approval"']
    sm.update_model_package(ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved")
    assert received(account, queue, wait=0.5) == []  # approved: the rule's pattern no longer matches


RECORDS_STATUS = """
import json, os
import boto3

def handler(event, context):
    status = event['detail']['currentPipelineExecutionStatus']
    boto3.client('s3').put_object(Bucket=os.environ['BUCKET'], Key=f'seen/{status}.json', Body=json.dumps(event))
    return status
"""


def test_a_lambda_target_of_a_terminal_status_event_can_write_to_the_sandbox(account):
    """EventBridge invokes a Lambda target asynchronously
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-targets.html, "EventBridge invokes Lambda
    asynchronously"): a function reacting to an execution's terminal status (the run-metrics function's
    PutMetricData, here an S3 PutObject) runs after the status change it reacts to is done and its own
    writes go through. The sandbox once invoked it inside that change, where its write waited for the change
    to end until the function timed out: nothing was written and the execution ended a timeout late."""
    import time

    from tests.sandbox.pipeline_account import BUCKET

    lam, events = account.client("lambda"), account.client("events")
    writes = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/seen/*"}
    function = account.create_lambda(
        "records-status", RECORDS_STATUS, statements=[writes], environment={"BUCKET": BUCKET}
    )
    pipeline = create_quick_pipeline(account, "status-to-lambda")
    rule = events.put_rule(
        Name="terminal-status",
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                "detail": {"pipelineArn": [pipeline], "currentPipelineExecutionStatus": ["Succeeded", "Failed"]},
            }
        ),
    )["RuleArn"]
    lam.add_permission(
        FunctionName="records-status",
        StatementId="terminal-status",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule,
    )
    events.put_targets(Rule="terminal-status", Targets=[{"Id": "records", "Arn": function}])

    arn = account.client("sagemaker").start_pipeline_execution(PipelineName="status-to-lambda")["PipelineExecutionArn"]
    assert account.wait(arn)["PipelineExecutionStatus"] == "Succeeded"
    deadline, written = time.monotonic() + 60, None
    while written is None and time.monotonic() < deadline:
        try:
            written = json.loads(account.read(f"s3://{BUCKET}/seen/Succeeded.json"))
        except account.client("s3").exceptions.NoSuchKey:
            time.sleep(0.2)
    assert written is not None, [
        {k: d.get(k) for k in ("rule", "status", "error", "reason", "target")} for d in deliveries()
    ]
    assert written["detail"]["pipelineExecutionArn"] == arn
    assert [d["status"] for d in deliveries() if d["rule"] == "terminal-status"] == ["queued", "delivered"]
