"""An alarm that changes state publishes to its SNS actions as cloudwatch.amazonaws.com, only where the
topic's policy lets that service publish for this alarm, as AWS does
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html,
https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger). Differs: AWS records a refused
action in the alarm's history; the sandbox drops it (no DescribeAlarmHistory)."""

from __future__ import annotations

import json


def test_an_alarm_publishes_only_where_the_topic_policy_names_it(sandbox, sessions, prod_env):
    s = sessions(prod_env)
    account = s.in_account(prod_env.account_id)
    sns, sqs, cloudwatch = (s.client(n, account) for n in ("sns", "sqs", "cloudwatch"))
    topic = sns.create_topic(Name="alarm-test")["TopicArn"]
    queue = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    common = {
        "Namespace": "MLOps/test",
        "MetricName": "PipelineRuns",
        "Statistic": "Sum",
        "Period": 3600,
        "EvaluationPeriods": 1,
        "Threshold": 1,
        "ComparisonOperator": "LessThanThreshold",
        "AlarmActions": [topic],
    }
    cloudwatch.put_metric_alarm(AlarmName="named", **common)
    cloudwatch.put_metric_alarm(AlarmName="other", **common)
    [named, other] = cloudwatch.describe_alarms(AlarmNames=["named", "other"])["MetricAlarms"]
    owner = f"arn:aws:iam::{prod_env.account_id}:root"
    sns.set_topic_attributes(
        TopicArn=topic,
        AttributeName="Policy",
        AttributeValue=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": owner}, "Action": "sns:Publish", "Resource": topic},
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": topic,
                        "Condition": {
                            "ArnEquals": {"aws:SourceArn": named["AlarmArn"]},
                            "StringEquals": {"aws:SourceAccount": prod_env.account_id},
                        },
                    },
                ],
            }
        ),
    )

    for alarm in (named, other):
        cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="test")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert [json.loads(m["Body"])["AlarmName"] for m in received] == ["named"]
    sent = json.loads(received[0]["Body"])
    assert (sent["NewStateValue"], sent["AWSAccountId"], sent["AlarmArn"]) == (
        "ALARM",
        prod_env.account_id,
        named["AlarmArn"],
    )
