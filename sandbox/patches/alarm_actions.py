"""CloudWatch alarm actions: an alarm that changes state publishes to the SNS topics of that state's
actions, as cloudwatch.amazonaws.com, and only where the topic's policy lets that service publish for
this alarm (aws:SourceArn, aws:SourceAccount) and, for an encrypted topic, the key policy lets it use
the key. moto stores the actions and never runs them.

AWS: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html
(alarm notifications through SNS, the JSON message), https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger
(the topic policy statement for cloudwatch.amazonaws.com, conditioned on the alarm's ARN) and
https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services (the key).
What differs: the sandbox evaluates no alarm (a state changes only through SetAlarmState, as in AWS's own
testing advice), the message carries no Trigger block, and a refused action is dropped (AWS writes "Failed
to execute action ..." in the alarm's history, which the sandbox does not keep: DescribeAlarmHistory is not
implemented).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sandbox import iam_policy
from sandbox.events import _topic_key_problem
from sandbox.patching import Patch

_STATE_ACTIONS = {"ALARM": "alarm_actions", "OK": "ok_actions", "INSUFFICIENT_DATA": "insufficient_data_actions"}


def message(alarm: Any, account: str, old_state: str | None) -> dict:
    """The JSON CloudWatch sends an SNS action (its documented fields, without Trigger)."""
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(alarm.state_updated_timestamp),
        "Region": alarm.region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_state,
    }


def _iso(moment) -> str:
    if not isinstance(moment, datetime):
        return str(moment)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def publish(alarm: Any, account: str, old_state: str | None) -> list[tuple[str, str]]:
    """Run the actions of the alarm's new state: (topic ARN, "delivered" or why it was refused) each."""
    from moto.sns.models import sns_backends

    results: list[tuple[str, str]] = []
    if not alarm.actions_enabled or alarm.state_value == old_state:
        return results
    principal = iam_policy.Principal(account_id="", arn="cloudwatch.amazonaws.com", service="cloudwatch.amazonaws.com")
    context = {"aws:SourceArn": alarm.alarm_arn, "aws:SourceAccount": account}
    for arn in getattr(alarm, _STATE_ACTIONS[alarm.state_value], None) or []:
        if arn.split(":")[2:3] != ["sns"]:
            continue
        _, _, _, region, topic_account, _ = arn.split(":", 5)
        topic = sns_backends[topic_account][region].topics.get(arn)
        if topic is None:
            results.append((arn, f"topic {arn} does not exist"))
            continue
        decision = iam_policy.evaluate([topic.policy], "sns:Publish", arn, context, principal=principal)
        if decision.denied or not decision.allowed:
            results.append((arn, f"the access policy of {arn} does not allow cloudwatch.amazonaws.com to publish"))
            continue
        problem = _topic_key_problem(topic, principal, context)
        if problem:
            results.append((arn, problem.replace("events.amazonaws.com", "cloudwatch.amazonaws.com")))
            continue
        subject = f'{alarm.state_value}: "{alarm.name}" in {alarm.region_name}'
        sns_backends[topic_account][region].publish(
            json.dumps(message(alarm, account, old_state)), arn=arn, subject=subject[:100]
        )
        results.append((arn, "delivered"))
    return results


def run_alarm_actions() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.set_alarm_state

    def set_alarm_state(self, alarm_name, reason, reason_data, state_value):
        old = self.alarms[alarm_name].state_value if alarm_name in self.alarms else None
        original(self, alarm_name, reason, reason_data, state_value)
        publish(self.alarms[alarm_name], self.account_id, old)

    CloudWatchBackend.set_alarm_state = set_alarm_state


PATCH = Patch(
    name="cloudwatch-alarm-actions",
    adds=(
        "an alarm changing state publishes to its SNS actions as cloudwatch.amazonaws.com, if the topic policy "
        "(aws:SourceArn of the alarm) and the topic's key policy allow it"
    ),
    overrides=("moto.cloudwatch.models.CloudWatchBackend.set_alarm_state",),
    apply=run_alarm_actions,
)
