"""`promote infra` against the sandbox: Terraform applies for real, state is remote and locked, re-runs
change nothing, and what it creates is what the schedule, retraining and notifications need."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.slow


def _rules_and_targets(events):
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix="mlops-demo-prod-")["Rules"]}
    targets = {name: events.list_targets_by_rule(Rule=name)["Targets"] for name in rules}
    return rules, targets


def test_apply_creates_schedule_retraining_and_encrypted_notifications(
    cli, bootstrapped_prod, prod_env, terraform_workdir, tmp_path
):
    result = cli("promote", "infra", "--env", "prod", "--apply")
    assert result.returncode == 0, result.stderr
    [planned] = re.findall(r"Plan: (\d+) to add, 0 to change, 0 to destroy\.", result.stdout)
    assert f"Apply complete! Resources: {planned} added" in result.stdout
    workdir = terraform_workdir / "prod"
    assert "aws_cloudwatch_event_rule" in (workdir / "plan.txt").read_text()
    assert (workdir / "plan.tfplan").stat().st_size > 0

    sessions = bootstrapped_prod
    prod = sessions.in_account(prod_env.account_id)
    events, sns, kms, s3, dynamodb = (sessions.client(n, prod) for n in ("events", "sns", "kms", "s3", "dynamodb"))
    rules, targets = _rules_and_targets(events)
    schedule = rules["mlops-demo-prod-inference-schedule"]
    assert schedule["ScheduleExpression"] == "cron(0 6 * * ? *)"
    [start_inference] = targets["mlops-demo-prod-inference-schedule"]
    assert start_inference["Arn"] == prod_env.pipeline_arn("inference")
    assert start_inference["RoleArn"] == prod_env.role_arn("events")

    retrain = rules["mlops-demo-prod-retrain-on-inference-failure"]
    pattern = json.loads(retrain["EventPattern"])
    # retrain only on a stale model: the failed step must be the drift check's Fail step
    assert retrain["EventPattern"] and pattern["detail-type"] == [
        "SageMaker Model Building Pipeline Execution Step Status Change"
    ]
    assert pattern["detail"] == {
        "pipelineArn": [prod_env.pipeline_arn("inference")],
        "currentStepStatus": ["Failed"],
        "stepName": ["DataDriftDetected"],
    }
    [start_training] = targets[retrain["Name"]]
    assert start_training["Arn"] == prod_env.pipeline_arn("train")
    assert start_training["RoleArn"] == prod_env.role_arn("events")

    # Model quality below the baseline on labelled data starts train-with-HPO.
    dropped = rules["mlops-demo-prod-hpo-on-quality-drop"]
    assert json.loads(dropped["EventPattern"])["detail"] == {
        "pipelineArn": [prod_env.pipeline_arn("quality")],
        "currentStepStatus": ["Failed"],
        "stepName": ["ModelQualityBelowThreshold"],
    }
    [start_hpo] = targets[dropped["Name"]]
    assert (start_hpo["Arn"], start_hpo["RoleArn"]) == (prod_env.pipeline_arn("hpo"), prod_env.role_arn("events"))

    # the arrival trigger of prod.yaml: a .csv landing under prod/inbox/ invokes the arrival function
    inbox_rule = rules["mlops-demo-prod-arrival-inference-inbox"]
    assert json.loads(inbox_rule["EventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [prod_env.buckets.artifacts]},
            "object": {"key": [{"wildcard": "prod/inbox/*.csv"}]},
        },
    }
    [start_on_arrival] = targets[inbox_rule["Name"]]
    assert start_on_arrival["Arn"].endswith(":function:mlops-demo-start-on-arrival")
    # and the labels' trigger: ground truth landing under prod/ground-truth/ starts the model-quality pipeline
    labels_rule = rules["mlops-demo-prod-arrival-labels"]
    assert json.loads(labels_rule["EventPattern"])["detail"]["object"] == {
        "key": [{"wildcard": "prod/ground-truth/*.csv"}]
    }
    [start_quality] = targets[labels_rule["Name"]]
    assert start_quality["Arn"] == start_on_arrival["Arn"]

    # A re-run with nothing changed applies nothing.
    again = cli("promote", "infra", "--env", "prod", "--apply", "--output", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["has_changes"] is False and report["applied"] is False
    assert "nothing applied" in again.stderr
    assert "No changes. Your infrastructure matches the configuration." in (workdir / "plan.txt").read_text()
    topic_arn = report["outputs"]["topic_arn"]

    # Every notification rule of prod.yaml is one rule with one target on the topic, nothing else.
    notify = {f"mlops-demo-prod-{r.name}": r for r in prod_env.notifications.rules}
    assert set(notify) <= set(rules)
    # besides them: the schedule, the two retrain rules, the arrival rules and one run-metrics rule per pipeline
    run_metrics = {f"mlops-demo-prod-run-metrics-{kind}" for kind in prod_env.pipelines}
    assert run_metrics <= set(rules)
    assert len(rules) == 3 + len(prod_env.arrivals) + len(notify) + len(run_metrics), sorted(rules)
    for name in notify:
        [target] = targets[name]
        assert target["Arn"] == topic_arn
    otherwise = json.loads(rules["mlops-demo-prod-inference-failed"]["EventPattern"])
    assert otherwise["detail"]["failureReason"] == [
        {"anything-but": {"wildcard": ["*DataDriftDetected*", "*DataValidationFailed*"]}}
    ]
    approval = rules["mlops-demo-prod-model-pending-approval"]
    assert json.loads(approval["EventPattern"])["detail"] == {
        "ModelPackageGroupName": ["mlops-demo-models"],
        "ModelApprovalStatus": ["PendingManualApproval"],
    }

    # The topic uses its own customer-managed key that EventBridge may use; never alias/aws/sns.
    attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    key_id = attributes["KmsMasterKeyId"]
    assert "alias/aws/sns" not in key_id
    key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
    key_policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    [events_grant] = [s for s in key_policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert set(_as_list(events_grant["Action"])) == {"kms:GenerateDataKey*", "kms:Decrypt"}

    # Exactly the rules that target the topic may publish to it.
    topic_policy = json.loads(attributes["Policy"])
    [publish] = [s for s in topic_policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert _as_list(publish["Action"]) == ["sns:Publish"]
    assert set(_as_list(publish["Condition"]["ArnEquals"]["aws:SourceArn"])) == {rules[n]["Arn"] for n in notify}
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert {(s["Protocol"], s["Endpoint"]) for s in subscriptions} == {("email", "ml-approvers@example.com")}

    # Remote state, encrypted with the environment's key, and no lock left behind.
    state = s3.head_object(Bucket=prod_env.buckets.terraform_state, Key="mlops-infra/prod/terraform.tfstate")
    assert state["ServerSideEncryption"] == "aws:kms"
    locks = dynamodb.scan(TableName=prod_env.terraform_lock_table)["Items"]
    assert all("Info" not in item for item in locks)
    assert not list(workdir.glob("*.tfstate"))

    inbox = _inbox_on(sessions, prod_env, topic_arn)
    _dashboard_and_alarms_publish_to_the_encrypted_topic(sessions, prod_env, topic_arn, inbox)
    _inference_failure_starts_training_and_notifies(sessions, prod_env, inbox)
    _ended_runs_are_counted_in_cloudwatch(sessions, prod_env, rules, targets)
    _new_version_in_the_registry_notifies_approvers(sessions, prod_env, inbox)
    _a_changed_message_in_the_yaml_is_what_is_delivered(cli, sessions, prod_env, inbox, tmp_path)


def _dashboard_and_alarms_publish_to_the_encrypted_topic(sessions, env, topic_arn, inbox):
    """The environment's dashboard and alarms are in CloudWatch (DescribeAlarms, GetDashboard), on the metric
    contract's names, and an alarm going off reaches the topic's subscribers: the topic policy and the key
    policy let exactly these alarms publish."""
    import time

    prod = sessions.in_account(env.account_id)
    cloudwatch, sns, sqs = (sessions.client(n, prod) for n in ("cloudwatch", "sns", "sqs"))
    alarms = {
        a["AlarmName"].removeprefix("mlops-demo-prod-"): a
        for a in cloudwatch.describe_alarms(AlarmNamePrefix="mlops-demo-prod-")["MetricAlarms"]
    }
    assert set(alarms) == {
        "quality-below-floor",
        "contract-violations",
        "drift-violations",
        "quality-violations",
        "no-successful-inference",
    }
    for alarm in alarms.values():
        assert alarm["Namespace"] == "MLOps/mlops-demo" and alarm["AlarmActions"] == [topic_arn]

    def dimensions(alarm):
        return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}

    floor = alarms["quality-below-floor"]
    assert (floor["MetricName"], floor["ComparisonOperator"], floor["Threshold"]) == ("AUC", "LessThanThreshold", 0.9)
    assert dimensions(floor) == {"Environment": "prod", "Pipeline": "quality"}
    drift = alarms["drift-violations"]
    assert (drift["MetricName"], drift["ComparisonOperator"], drift["Threshold"]) == (
        "Violations",
        "GreaterThanThreshold",
        0.0,
    )
    assert dimensions(drift) == {"Environment": "prod", "Pipeline": "inference", "Check": "drift"}
    # prod runs daily (cron(0 6 * * ? *)): no success for a day plus two hours of slack is an alarm
    missed = alarms["no-successful-inference"]
    assert dimensions(missed) == {"Environment": "prod", "Pipeline": "inference", "Status": "Succeeded"}
    assert (missed["MetricName"], missed["Statistic"], missed["Period"], missed["EvaluationPeriods"]) == (
        "PipelineRuns",
        "Sum",
        (24 + 2) * 3600,
        1,
    )
    assert (missed["ComparisonOperator"], missed["Threshold"], missed["TreatMissingData"]) == (
        "LessThanThreshold",
        1.0,
        "breaching",
    )

    body = json.loads(cloudwatch.get_dashboard(DashboardName="mlops-demo-prod-monitoring")["DashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles[:5] == [
        "Drift per feature: distance",
        "Drift score (>= 1 is drift)",
        "Violations by check",
        "Model quality on labelled data",
        "Pipeline runs by status",
    ]
    [[drift_search]] = body["widgets"][0]["properties"]["metrics"]
    assert drift_search["expression"].startswith(
        'SEARCH(\'{MLOps/mlops-demo,Environment,Feature} MetricName="DriftDistance" Environment="prod"\''
    )
    assert set(body["widgets"][-1]["properties"]["alarms"]) == {a["AlarmArn"] for a in alarms.values()}

    # the topic policy names the alarms (and this account) for cloudwatch.amazonaws.com
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"])
    [publish] = [s for s in policy["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(_as_list(publish["Condition"]["ArnEquals"]["aws:SourceArn"])) == {a["AlarmArn"] for a in alarms.values()}
    assert _as_list(publish["Condition"]["StringEquals"]["aws:SourceAccount"]) == [env.account_id]

    # an alarm going off reaches the subscribers through the encrypted topic
    cloudwatch.set_alarm_state(
        AlarmName=missed["AlarmName"], StateValue="ALARM", StateReason="no successful inference for 26 hours"
    )
    deadline, messages = time.monotonic() + 30, []
    while time.monotonic() < deadline and not messages:
        time.sleep(0.2)
        messages += _take(sqs, inbox)
    [message] = messages
    sent = json.loads(message)
    assert (sent["AlarmName"], sent["NewStateValue"], sent["AlarmArn"]) == (
        missed["AlarmName"],
        "ALARM",
        missed["AlarmArn"],
    )
    assert sent["NewStateReason"] == "no successful inference for 26 hours"


def _a_changed_message_in_the_yaml_is_what_is_delivered(cli, sessions, env, inbox, tmp_path):
    """The operator edits one rule's message in the environment file and applies: the next matching event
    is delivered with the new text, its fields filled in from the event."""
    import shutil

    from tests.conftest import REPO

    env_dir = tmp_path / "environments"
    shutil.copytree(REPO / "environments", env_dir)
    yaml_file = env_dir / "prod.yaml"
    old = next(r.message for r in env.notifications.rules if r.name == "inference-failed")
    new = "On call: {environment} inference run {execution} broke in {step} at {time} because {failure_reason}."
    text = yaml_file.read_text()
    assert f'message: "{old}"' in text
    yaml_file.write_text(text.replace(f'message: "{old}"', f'message: "{new}"'))
    applied = cli("promote", "infra", "--env", "prod", "--apply", env={"MLOPS_ENV_DIR": str(env_dir)})
    assert applied.returncode == 0, applied.stderr
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in applied.stdout

    execution, message = _fail_inference_otherwise(sessions, env, inbox)
    reason = "AlgorithmError: column 'mean_radius' is not numeric"
    assert re.fullmatch(
        rf'"On call: prod inference run {re.escape(execution)} broke in DataDriftCheck at '
        rf'\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ because {re.escape(reason)}\."',
        message,
    ), message


# A pipeline that fails at once (as inference does on drift) and one that succeeds at once: what the
# rules react to, without running the real steps (the engine's own tests do that).
_FAILS = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "InputDataUri", "Type": "String", "DefaultValue": "s3://nowhere/batch.csv"}],
    "Steps": [
        {"Name": "DataDriftDetected", "Type": "Fail", "Arguments": {"ErrorMessage": "DataDriftDetected: 4 features"}}
    ],
}
# Inference failing for another reason (a malformed batch stops the drift check): notify, never retrain.
_FAILS_OTHERWISE = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "InputDataUri", "Type": "String", "DefaultValue": "s3://nowhere/batch.csv"}],
    "Steps": [
        {
            "Name": "DataDriftCheck",
            "Type": "Fail",
            "Arguments": {"ErrorMessage": "AlgorithmError: column 'mean_radius' is not numeric"},
        }
    ],
}
_SUCCEEDS = {
    "Version": "2020-12-01",
    "Steps": [
        {
            "Name": "Noop",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [{"Type": "Equals", "LeftValue": "a", "RightValue": "b"}],
                "IfSteps": [],
                "ElseSteps": [],
            },
        }
    ],
}


def _inference_failure_starts_training_and_notifies(sessions, env, inbox):
    import time

    prod = sessions.in_account(env.account_id)
    sagemaker, sqs = (sessions.client(n, prod) for n in ("sagemaker", "sqs"))
    for which, definition in (("inference", _FAILS), ("train", _SUCCEEDS)):
        sagemaker.create_pipeline(
            PipelineName=env.pipelines[which],
            RoleArn=env.role_arn("execution"),
            PipelineDefinition=json.dumps(definition),
        )

    failed = sagemaker.start_pipeline_execution(PipelineName=env.pipelines["inference"])["PipelineExecutionArn"]
    deadline = time.monotonic() + 60
    train_runs, messages = [], []
    while time.monotonic() < deadline and not (train_runs and messages):
        time.sleep(0.2)
        train_runs = sagemaker.list_pipeline_executions(PipelineName=env.pipelines["train"])[
            "PipelineExecutionSummaries"
        ]
        messages += _take(sqs, inbox)
    assert sagemaker.describe_pipeline_execution(PipelineExecutionArn=failed)["PipelineExecutionStatus"] == "Failed"
    assert len(train_runs) == 1, "the retraining rule did not start the train pipeline"
    # one human-readable line, quoted as an input transformer's string template makes it on AWS
    [message] = messages
    inference_arn = re.escape(env.pipeline_arn("inference"))
    assert re.fullmatch(
        rf'"Inference pipeline {inference_arn} FAILED at \S+ \(execution {re.escape(failed)}\) because the '
        r"model is stale \(DataDriftDetected\): retraining has been started\. A new model version will wait "
        r'for approval\."',
        message,
    ), message

    # another failure: one sentence with the reason, and no second training run
    other, message = _fail_inference_otherwise(sessions, env, inbox)
    assert message == (
        f'"Inference run {other} FAILED at {message.split(" FAILED at ")[1].split(" ")[0]} in step DataDriftCheck '
        "(AlgorithmError: column 'mean_radius' is not numeric); no retraining was started, as the model is not "
        'known to be stale."'
    )
    time.sleep(1.0)
    train_runs = sagemaker.list_pipeline_executions(PipelineName=env.pipelines["train"])["PipelineExecutionSummaries"]
    assert len(train_runs) == 1, "a failure that is not drift must not start training"

    # a batch dropped into the inbox is scored at once: inference starts on exactly that batch
    before = {
        e["PipelineExecutionArn"]
        for e in sagemaker.list_pipeline_executions(PipelineName=env.pipelines["inference"])[
            "PipelineExecutionSummaries"
        ]
    }
    s3 = sessions.client("s3", prod)
    s3.put_object(
        Bucket=env.buckets.artifacts,
        Key="prod/inbox/2024-06-01.csv",
        Body=b"a,b\n1,2\n",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=env.kms_key_alias,
    )
    deadline, started = time.monotonic() + 30, []
    while time.monotonic() < deadline and not started:
        time.sleep(0.2)
        started = [
            e
            for e in sagemaker.list_pipeline_executions(PipelineName=env.pipelines["inference"])[
                "PipelineExecutionSummaries"
            ]
            if e["PipelineExecutionArn"] not in before
        ]
    [batch_run] = started
    parameters = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=batch_run["PipelineExecutionArn"]
    )
    assert {"Name": "InputDataUri", "Value": f"s3://{env.buckets.artifacts}/prod/inbox/2024-06-01.csv"} in parameters[
        "PipelineParameters"
    ]
    # it fails at once too (the test definition): one more notification, read here so later checks start clean
    deadline, messages = time.monotonic() + 30, []
    while time.monotonic() < deadline and not messages:
        time.sleep(0.2)
        messages += _take(sqs, inbox)
    time.sleep(0.5)
    _take(sqs, inbox)


def _fail_inference_otherwise(sessions, env, inbox) -> tuple[str, str]:
    """Inference fails in DataDriftCheck for another reason than drift: (execution ARN, the one message)."""
    import time

    prod = sessions.in_account(env.account_id)
    sagemaker, sqs = (sessions.client(n, prod) for n in ("sagemaker", "sqs"))
    sagemaker.update_pipeline(PipelineName=env.pipelines["inference"], PipelineDefinition=json.dumps(_FAILS_OTHERWISE))
    execution = sagemaker.start_pipeline_execution(PipelineName=env.pipelines["inference"])["PipelineExecutionArn"]
    deadline, messages = time.monotonic() + 60, []
    while time.monotonic() < deadline and not messages:
        time.sleep(0.2)
        messages += _take(sqs, inbox)
    time.sleep(0.5)
    messages += _take(sqs, inbox)
    assert len(messages) == 1, messages
    return execution, messages[0]


def _ended_runs_are_counted_in_cloudwatch(sessions, env, rules, targets):
    """Each execution that ended is one PipelineRuns{Pipeline,Status} datapoint and one PipelineDuration,
    published by the run-metrics function that the module's rules invoke with the terminal status event
    (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html)."""
    import time
    from datetime import datetime, timedelta

    from pipelines import metrics
    from sandbox import client

    rule = rules["mlops-demo-prod-run-metrics-inference"]
    assert json.loads(rule["EventPattern"])["detail"] == {
        "pipelineArn": [env.pipeline_arn("inference")],
        "currentPipelineExecutionStatus": list(metrics.STATUSES),
    }
    [target] = targets[rule["Name"]]
    assert target["Arn"].endswith(":function:mlops-demo-run-metrics")
    assert f'"namespace": "{metrics.namespace(env.project)}"' in target["InputTransformer"]["InputTemplate"]

    prod = sessions.in_account(env.account_id)
    sagemaker, cloudwatch = (sessions.client(n, prod) for n in ("sagemaker", "cloudwatch"))
    deadline = time.monotonic() + 60
    ended: list = []
    while time.monotonic() < deadline:  # the inbox's run may still be going
        runs = [
            sagemaker.describe_pipeline_execution(PipelineExecutionArn=s["PipelineExecutionArn"])
            for which in ("inference", "train")
            for s in sagemaker.list_pipeline_executions(PipelineName=env.pipelines[which])["PipelineExecutionSummaries"]
        ]
        ended = [r for r in runs if r["PipelineExecutionStatus"] in metrics.STATUSES]
        if len(ended) == len(runs):
            break
        time.sleep(0.2)
    now = datetime.fromisoformat(client.call("clock")["now"].replace("Z", "+00:00"))
    window = {"StartTime": now - timedelta(hours=1), "EndTime": now + timedelta(hours=1)}

    def query(qid, metric, stat, **dimensions):
        datum = metrics.datum(metric, 0, env.name, **dimensions)
        return {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": metrics.namespace(env.project),
                    "MetricName": metric,
                    "Dimensions": datum["Dimensions"],
                },
                "Period": 7200,
                "Stat": stat,
            },
        }

    expected = {
        (kind, status): sum(
            1 for r in ended if r["PipelineArn"] == env.pipeline_arn(kind) and r["PipelineExecutionStatus"] == status
        )
        for kind in ("inference", "train")
        for status in ("Failed", "Succeeded")
    }
    queries = [
        query(f"{kind}_{status.lower()}", metrics.PIPELINE_RUNS, "Sum", Pipeline=kind, Status=status)
        for kind, status in expected
    ] + [
        query(f"{kind}_duration", metrics.PIPELINE_DURATION, "SampleCount", Pipeline=kind)
        for kind in ("inference", "train")
    ]
    deadline, counted = time.monotonic() + 30, {}
    while time.monotonic() < deadline:  # the rules invoke the function asynchronously, as on AWS
        answer = cloudwatch.get_metric_data(MetricDataQueries=queries, **window)["MetricDataResults"]
        counted = {r["Id"]: sum(r["Values"]) for r in answer}
        if all(counted[f"{k}_{s.lower()}"] == n for (k, s), n in expected.items()):
            break
        time.sleep(0.2)
    assert {key: counted[f"{key[0]}_{key[1].lower()}"] for key in expected} == expected
    assert expected[("inference", "Failed")] >= 2 and expected[("train", "Succeeded")] == 1
    assert counted["inference_duration"] == sum(n for (k, _), n in expected.items() if k == "inference")
    assert counted["train_duration"] == 1


def _new_version_in_the_registry_notifies_approvers(sessions, env, inbox):
    """Model package events happen in the registry account; the rule `bootstrap-account --account
    registry` creates forwards them to the workload account's bus, which mlops-infra/ lets the registry
    put events on."""
    import time

    registry = sessions.in_account(env.registry_account_id)
    events = sessions.client("events", registry)
    workload_bus = f"arn:aws:events:{env.region}:{env.account_id}:event-bus/default"
    assert events.list_rule_names_by_target(TargetArn=workload_bus)["RuleNames"] == [
        f"{env.project}-model-package-events"
    ]
    package = sessions.client("sagemaker", registry).create_model_package(
        ModelPackageGroupName=env.model_package_group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    sqs = sessions.client("sqs", sessions.in_account(env.account_id))
    deadline, messages = time.monotonic() + 30, []
    while time.monotonic() < deadline and not messages:
        time.sleep(0.2)
        messages = _take(sqs, inbox)
    assert len(messages) == 1, messages
    [message] = messages
    assert f"Model {env.model_package_group} version 1 is waiting for your approval" in message, message
    assert package["ModelPackageArn"] in message
    assert f"promote report --env {env.name} --version 1" in message


def test_missing_state_bucket_fails_with_one_line_naming_it(cli, sandbox, terraform_workdir):
    result = cli("promote", "infra", "--env", "prod", "--plan")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "state bucket 'mlops-demo-prod-tfstate' (buckets.terraform_state) does not exist" in line, line
    assert "bootstrap-account --env prod --account prod --apply" in line
    assert not (terraform_workdir / "prod").exists()


def test_a_broken_terraform_run_fails_with_terraforms_first_error(
    bootstrapped_prod, prod_env, terraform_workdir, monkeypatch
):
    from promote.infra import run_infra, terraform_vars
    from promote.terraform import TerraformFailed

    broken = {**terraform_vars(prod_env), "account_id": "not-an-account"}
    monkeypatch.setattr("promote.infra.terraform_vars", lambda env: broken)
    with pytest.raises(TerraformFailed, match=r"terraform plan failed \(exit 1\): .*12-digit AWS account id"):
        run_infra(prod_env, "plan", sessions=bootstrapped_prod, echo=lambda line: None)


def _inbox_on(sessions, env, topic_arn) -> str:
    """A queue subscribed to the topic, so a test reads what an email subscriber would get."""
    prod = sessions.in_account(env.account_id)
    sqs, sns = sessions.client("sqs", prod), sessions.client("sns", prod)
    inbox = sqs.create_queue(QueueName="ml-team-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    return inbox


def _take(sqs, queue) -> list[str]:
    """Receive and delete: a message read once is not seen again after its visibility timeout."""
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    for m in received:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return [m["Body"] for m in received]


def _as_list(value):
    return value if isinstance(value, list) else [value]
