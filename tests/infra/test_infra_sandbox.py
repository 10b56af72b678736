"""`promote infra` against the sandbox: Terraform applies for real, state is remote and locked, re-runs
change nothing, and what it creates is what the schedule, retraining and notifications need."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def _rules_and_targets(events):
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix="mlops-demo-prod-")["Rules"]}
    targets = {name: events.list_targets_by_rule(Rule=name)["Targets"] for name in rules}
    return rules, targets


def test_apply_creates_schedule_retraining_and_encrypted_notifications(cli, state_storage, prod_env,
                                                                       terraform_workdir):
    result = cli("promote", "infra", "--env", "prod", "--apply")
    assert result.returncode == 0, result.stderr
    assert "Plan: 15 to add, 0 to change, 0 to destroy." in result.stdout
    assert "Apply complete! Resources: 15 added" in result.stdout
    workdir = terraform_workdir / "prod"
    assert "aws_cloudwatch_event_rule" in (workdir / "plan.txt").read_text()
    assert (workdir / "plan.tfplan").stat().st_size > 0

    sessions = state_storage
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
    assert pattern["detail"] == {"pipelineArn": [prod_env.pipeline_arn("inference")],
                                 "currentPipelineExecutionStatus": ["Failed"]}
    by_id = {t["Id"]: t for t in targets[retrain["Name"]]}
    assert by_id["start-train-pipeline"]["Arn"] == prod_env.pipeline_arn("train")
    assert by_id["start-train-pipeline"]["RoleArn"] == prod_env.role_arn("events")
    topic_arn = by_id["notify-retraining"]["Arn"]
    assert "retraining has been started" in by_id["notify-retraining"]["InputTransformer"]["InputTemplate"]

    approval = rules["mlops-demo-prod-model-pending-approval"]
    assert json.loads(approval["EventPattern"])["detail"] == {
        "ModelPackageGroupName": ["mlops-demo-models"], "ModelApprovalStatus": ["PendingManualApproval"]}
    [notify_approvers] = targets[approval["Name"]]
    assert notify_approvers["Arn"] == topic_arn
    assert "promote approve" in notify_approvers["InputTransformer"]["InputTemplate"]
    [notify_failure] = targets["mlops-demo-prod-train-failed"]
    assert notify_failure["Arn"] == topic_arn

    # The topic uses its own customer-managed key that EventBridge may use; never alias/aws/sns.
    attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    key_id = attributes["KmsMasterKeyId"]
    assert "alias/aws/sns" not in key_id
    key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
    key_policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    [events_grant] = [s for s in key_policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert set(_as_list(events_grant["Action"])) == {"kms:GenerateDataKey*", "kms:Decrypt"}

    topic_policy = json.loads(attributes["Policy"])
    [publish] = [s for s in topic_policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert _as_list(publish["Action"]) == ["sns:Publish"]
    assert set(_as_list(publish["Condition"]["ArnEquals"]["aws:SourceArn"])) == {
        rules[name]["Arn"] for name in ("mlops-demo-prod-retrain-on-inference-failure",
                                        "mlops-demo-prod-train-failed", "mlops-demo-prod-model-pending-approval")}
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert {(s["Protocol"], s["Endpoint"]) for s in subscriptions} == {("email", "ml-approvers@example.com")}

    # Remote state, encrypted with the environment's key, and no lock left behind.
    state = s3.head_object(Bucket=prod_env.buckets.terraform_state, Key="mlops-infra/prod/terraform.tfstate")
    assert state["ServerSideEncryption"] == "aws:kms"
    locks = dynamodb.scan(TableName=prod_env.terraform_lock_table)["Items"]
    assert all("Info" not in item for item in locks)
    assert not list(workdir.glob("*.tfstate"))

    again = cli("promote", "infra", "--env", "prod", "--apply", "--output", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["has_changes"] is False and report["applied"] is False
    assert "nothing applied" in again.stderr
    assert report["outputs"]["topic_arn"] == topic_arn


def test_missing_state_bucket_fails_with_one_line_naming_it(cli, sandbox, terraform_workdir):
    result = cli("promote", "infra", "--env", "prod", "--plan")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "state bucket 'mlops-demo-prod-tfstate' (buckets.terraform_state) does not exist" in line, line
    assert "bootstrap-account --env prod --account prod --apply" in line
    assert not (terraform_workdir / "prod").exists()


def test_a_broken_terraform_run_fails_with_terraforms_first_error(state_storage, prod_env, terraform_workdir,
                                                                  monkeypatch):
    from promote.infra import run_infra
    from promote.terraform import TerraformFailed

    broken = {**__import__("promote.infra", fromlist=["terraform_vars"]).terraform_vars(prod_env),
              "account_id": "not-an-account"}
    monkeypatch.setattr("promote.infra.terraform_vars", lambda env: broken)
    with pytest.raises(TerraformFailed, match=r"terraform plan failed \(exit 1\): .*12-digit AWS account id"):
        run_infra(prod_env, "plan", sessions=state_storage, echo=lambda line: None)


def _as_list(value):
    return value if isinstance(value, list) else [value]
