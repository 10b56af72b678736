"""Notification rules of an environment file rendered for mlops-infra/: the pattern each rule matches, and a
message that reaches subscribers as the text the YAML says, whatever characters it holds. Delivery itself
is checked on the sandbox (tests/infra/test_infra_sandbox.py)."""

from __future__ import annotations

import json

import yaml

from mlops_core.config import parse_environment
from promote.notifications import notification_rules, notification_topics
from tests.conftest import REPO

PROD = yaml.safe_load((REPO / "environments" / "prod.yaml").read_text())


def _env(rules, topics=None):
    data = {
        **PROD,
        "notifications": {"emails": ["team@example.com"], "rules": rules, **({"topics": topics} if topics else {})},
    }
    return parse_environment(yaml.safe_dump(data), "prod.yaml", REPO / "environments" / "prod.yaml")


def test_a_message_is_one_json_string_with_placeholders_for_event_fields():
    env = _env(
        [
            {
                "name": "quoted",
                "pipeline": "any",
                "statuses": ["Succeeded"],
                "message": 'Done: "{execution}" in {environment}/{project} — {{not a field}} \\ ok',
            }
        ]
    )
    [rule] = notification_rules(env)
    assert rule["input_paths"] == {"execution": "$.detail.pipelineExecutionArn"}
    # environment and project are written in; a literal brace is a brace; quotes and backslashes escaped
    assert json.loads(rule["input_template"]) == 'Done: "<execution>" in prod/mlops-demo — {not a field} \\ ok'
    pattern = json.loads(rule["event_pattern"])
    assert pattern["detail-type"] == ["SageMaker Model Building Pipeline Execution Status Change"]
    assert pattern["detail"]["pipelineArn"] == [env.pipeline_arn(p) for p in ("train", "hpo", "inference", "quality")]
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Succeeded"]


def test_recipients_get_their_own_topic_and_named_topics_are_shared():
    env = _env(
        [
            {
                "name": "drift",
                "pipeline": "inference",
                "step": "DataDriftDetected",
                "statuses": ["Failed"],
                "recipients": ["oncall@example.com"],
                "message": "{step} at {time}",
            },
            {
                "name": "approved",
                "registry": True,
                "statuses": ["Approved"],
                "topic": "audit",
                "message": "{group} v{version} approved",
            },
            {
                "name": "rejected",
                "registry": True,
                "statuses": ["Rejected"],
                "topic": "audit",
                "message": "{group} v{version} rejected",
            },
        ],
        topics={"audit": ["audit@example.com", "risk@example.com"]},
    )
    rules = {r["name"]: r for r in notification_rules(env)}
    assert {n: r["topic"] for n, r in rules.items()} == {
        "drift": "rule-drift",
        "approved": "audit",
        "rejected": "audit",
    }
    assert notification_topics(env) == {
        "audit": {"emails": ["audit@example.com", "risk@example.com"]},
        "rule-drift": {"emails": ["oncall@example.com"]},
    }
    assert json.loads(rules["drift"]["event_pattern"])["detail"]["stepName"] == ["DataDriftDetected"]
    assert json.loads(rules["approved"]["event_pattern"])["detail"] == {
        "ModelPackageGroupName": ["mlops-demo-models"],
        "ModelApprovalStatus": ["Approved"],
    }
    assert rules["approved"]["input_paths"] == {
        "group": "$.detail.ModelPackageGroupName",
        "version": "$.detail.ModelPackageVersion",
    }
