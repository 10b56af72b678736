"""What the EventBridge and clock tests share: a pipeline that runs in milliseconds, a role
EventBridge may use to start it, and an SNS topic whose messages are read through an SQS queue."""

import json
import time

from tests.sandbox.pipeline_account import ACCOUNT, ROLE_ARN

QUICK_PIPELINE = {
    "Parameters": [{"Name": "Reason", "Type": "String", "DefaultValue": "manual"}],
    "Steps": [
        {
            "Name": "Noop",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.Reason"}, "RightValue": "never"}],
                "IfSteps": [],
                "ElseSteps": [],
            },
        }
    ],
}
TRUST_EVENTS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def pipeline_arn(name, account=ACCOUNT):
    return f"arn:aws:sagemaker:us-east-1:{account}:pipeline/{name}"


def create_quick_pipeline(account, name):
    account.client("sagemaker").create_pipeline(
        PipelineName=name, RoleArn=ROLE_ARN, PipelineDefinition=json.dumps(QUICK_PIPELINE)
    )
    return pipeline_arn(name)


def events_role(account, name, actions=("sagemaker:StartPipelineExecution",), resource="*"):
    iam = account.client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_EVENTS))
    iam.put_role_policy(
        RoleName=name,
        PolicyName="start",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]}
        ),
    )
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def topic_with_queue(account, name, allow_events=True):
    """A topic (policy allowing EventBridge to publish, or the default one) and a queue subscribed to it."""
    sns, sqs = account.client("sns"), account.client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    if allow_events:
        sns.set_topic_attributes(
            TopicArn=topic,
            AttributeName="Policy",
            AttributeValue=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "EventBridgePublishes",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sns:Publish",
                            "Resource": topic,
                        }
                    ],
                }
            ),
        )
    queue = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return topic, queue


def received(account, queue, wait=0.0):
    deadline = time.monotonic() + wait
    while True:
        messages = account.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if messages or time.monotonic() >= deadline:
            return [m["Body"] for m in messages]
        time.sleep(0.1)


def executions(account, name):
    return account.client("sagemaker").list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]


def deliveries(status=None):
    from sandbox import client

    return client.call("events", {"status": status} if status else {})["deliveries"]
