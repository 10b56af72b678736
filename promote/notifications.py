"""Notification rules of an environment (notifications.rules in its YAML) as EventBridge rules with input
transformers: the event pattern, the input paths and the message template mlops-infra/ applies.

A rule matches SageMaker's pipeline execution or step status events, or the model registry's package state
events (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html); its
message names fields as {field}, which become the input transformer's <field> placeholders
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html).
"""

from __future__ import annotations

import json
import string

from mlops_core.config import PIPELINE_STEPS, Environment, NotificationRule

EXECUTION_EVENT = "SageMaker Model Building Pipeline Execution Status Change"
STEP_EVENT = "SageMaker Model Building Pipeline Execution Step Status Change"
PACKAGE_EVENT = "SageMaker Model Package State Change"

# Where each event-borne field is in the event, by the kind of rule.
_COMMON_PATHS = {"account": "$.account", "region": "$.region", "time": "$.time"}
_PIPELINE_PATHS = {
    **_COMMON_PATHS,
    "pipeline": "$.detail.pipelineArn",
    "execution": "$.detail.pipelineExecutionArn",
}
INPUT_PATHS = {
    "execution": {**_PIPELINE_PATHS, "status": "$.detail.currentPipelineExecutionStatus"},
    "step": {
        **_PIPELINE_PATHS,
        "status": "$.detail.currentStepStatus",
        "step": "$.detail.stepName",
        "failure_reason": "$.detail.failureReason",
    },
    "registry": {
        **_COMMON_PATHS,
        "group": "$.detail.ModelPackageGroupName",
        "version": "$.detail.ModelPackageVersion",
        "model_package": "$.detail.ModelPackageArn",
        "status": "$.detail.ModelApprovalStatus",
    },
}


def event_pattern(env: Environment, rule: NotificationRule) -> dict:
    """The EventBridge pattern of one rule: this environment's pipelines (or model package group) only."""
    if rule.kind == "registry":
        return {
            "source": ["aws.sagemaker"],
            "detail-type": [PACKAGE_EVENT],
            "detail": {"ModelPackageGroupName": [env.model_package_group], "ModelApprovalStatus": list(rule.statuses)},
        }
    pipelines = [rule.pipeline] if rule.pipeline in PIPELINE_STEPS else list(PIPELINE_STEPS)
    detail: dict = {"pipelineArn": [env.pipeline_arn(p) for p in pipelines]}
    if rule.kind == "execution":
        detail["currentPipelineExecutionStatus"] = list(rule.statuses)
        return {"source": ["aws.sagemaker"], "detail-type": [EXECUTION_EVENT], "detail": detail}
    detail["currentStepStatus"] = list(rule.statuses)
    if rule.step != "any":
        detail["stepName"] = [rule.step]
    # A failure's name starts a Fail step's reason ("DataDriftDetected: ...") and follows the error type of a
    # job that failed with it ("AlgorithmError: DataValidationFailed: ..."): matched anywhere in the text.
    if rule.failure_reasons:
        detail["failureReason"] = [{"wildcard": f"*{r}*"} for r in rule.failure_reasons]
    if rule.except_failure_reasons:
        detail["failureReason"] = [{"anything-but": {"wildcard": [f"*{r}*" for r in rule.except_failure_reasons]}}]
    return {"source": ["aws.sagemaker"], "detail-type": [STEP_EVENT], "detail": detail}


def input_transformer(env: Environment, rule: NotificationRule) -> tuple[dict, str]:
    """(input paths, input template): the message as one JSON string, {environment} and {project} written in,
    every other field a placeholder filled from the event."""
    constants = {"environment": env.name, "project": env.project}
    paths, text = {}, []
    for literal, name, _, _ in string.Formatter().parse(rule.message):
        text.append(literal)
        if name is None:
            continue
        if name in constants:
            text.append(constants[name])
        else:
            paths[name] = INPUT_PATHS[rule.kind][name]
            text.append(f"<{name}>")
    # a quoted string template: EventBridge sends it as a JSON string, placeholders filled in as text
    return paths, json.dumps("".join(text), ensure_ascii=False)


def rule_description(rule: NotificationRule) -> str:
    if rule.kind == "registry":
        what = f"a model version becomes {' or '.join(rule.statuses)}"
    else:
        subject = "any pipeline" if rule.pipeline == "any" else f"the {rule.pipeline} pipeline"
        if rule.kind == "step":
            subject = f"{'a step' if rule.step == 'any' else f'step {rule.step}'} of {subject}"
        what = f"{subject} is {' or '.join(rule.statuses)}"
        if rule.failure_reasons:
            what += f" with {' or '.join(rule.failure_reasons)}"
        if rule.except_failure_reasons:
            what += f" for another reason than {' or '.join(rule.except_failure_reasons)}"
    return f"Notification {rule.name}: {what}."[:512]


def notification_rules(env: Environment) -> list[dict]:
    """terraform.tfvars.json's notification_rules: one EventBridge rule and SNS target each."""
    out = []
    for rule in env.notifications.rules:
        paths, template = input_transformer(env, rule)
        out.append(
            {
                "name": rule.name,
                "description": rule_description(rule),
                "topic": rule.topic,
                "event_pattern": json.dumps(event_pattern(env, rule), sort_keys=True),
                "input_paths": paths,
                "input_template": template,
            }
        )
    return out


def notification_topics(env: Environment) -> dict:
    """The topics besides the environment's own: notifications.topics, and a topic per rule with recipients."""
    topics = {name: {"emails": list(emails)} for name, emails in env.notifications.topics.items()}
    for rule in env.notifications.rules:
        if rule.recipients:
            topics[rule.topic] = {"emails": list(rule.recipients)}
    return topics
