"""Environment files: the shipped ones load; each malformed one fails with one exact line."""

import copy

import pytest
import yaml

from mlops_core.config import load_environment
from mlops_core.errors import ConfigError
from tests.conftest import REPO, run_cli

BASE = yaml.safe_load((REPO / "environments" / "prod.yaml").read_text())


def _set(path, value):
    def mutate(data):
        keys = path.split(".")
        node = data
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return mutate


_DELETE = object()


def _rule(name, key, value):
    """Set (or, with _DELETE, remove) one field of the notification rule named `name`."""

    def mutate(data):
        [rule] = [r for r in data["notifications"]["rules"] if r["name"] == name]
        if value is _DELETE:
            del rule[key]
        else:
            rule[key] = value

    return mutate


def _topics(value):
    def mutate(data):
        data["notifications"]["topics"] = value

    return mutate


# (mutation, expected message after "<file>: ")
MALFORMED = [
    (_set("accounts.prod", "22222222222"), "accounts.prod: '22222222222' is not a 12-digit AWS account id"),
    (
        _set("accounts.dev", 111111111111),
        "accounts.dev: 111111111111 must be quoted: account ids are 12-digit strings (a number loses leading zeros)",
    ),
    (
        _set("accounts.registry", "222222222222"),
        "accounts.registry: '222222222222' is the same account as accounts.prod: "
        "the registry must be a separate account",
    ),
    (_set("accounts.registry", _DELETE), "accounts.registry: required field is missing"),
    (
        _set("account", "staging"),
        "account: 'staging' is not a workload account in 'accounts' (one of: dev, stage, prod)",
    ),
    (
        _set("account", "registry"),
        "account: 'registry' is not a workload account in 'accounts' (one of: dev, stage, prod)",
    ),
    (_set("region", "us-east"), "region: 'us-east' is not an AWS region name like eu-west-1"),
    (_set("region", "US-EAST-1"), "region: 'US-EAST-1' is not an AWS region name like eu-west-1"),
    (_set("backend", "localstack"), "backend: 'localstack' is not one of sandbox, aws"),
    (_set("kind", "staging"), "kind: 'staging' is not one of dev, prod"),
    (_set("environment", "production"), "environment: 'production' does not match the file name 'prod.yaml'"),
    (
        _set("projekt", "x"),
        "projekt: unknown field (expected one of: account, accounts, arrivals, backend, buckets, "
        "environment, inference, jenkins, kind, kms, model_package_group, monitoring, network, notifications, "
        "pipelines, project, region, retry, roles, schedule, terraform, training)",
    ),
    (
        _set("roles.excution", "x"),
        "roles.excution: unknown field (expected one of: approver, events, execution, jenkins, lambda)",
    ),
    (_set("roles.approver", _DELETE), "roles.approver: required field is missing"),
    (_set("roles.execution", "role with spaces"), "roles.execution: 'role with spaces' is not an IAM role name"),
    (
        _set("jenkins.principal_arn", "arn:aws:iam::4444:role/jenkins"),
        "jenkins.principal_arn: 'arn:aws:iam::4444:role/jenkins' is not an IAM role or user ARN "
        "(arn:aws:iam::123456789012:role/NAME)",
    ),
    (
        _set("jenkins.principal_arn", "jenkins-agent"),
        "jenkins.principal_arn: 'jenkins-agent' is not an IAM role or user ARN (arn:aws:iam::123456789012:role/NAME)",
    ),
    (
        _set("jenkins.external_id", "x"),
        "jenkins.external_id: 'x' is not an ExternalId (2-1224 characters of letters, digits and +=,.@:/-)",
    ),
    (_set("buckets.artifacts", "My_Bucket"), "buckets.artifacts: 'My_Bucket' is not a valid S3 bucket name"),
    (
        _set("buckets.registry", "mlops-demo-prod-artifacts"),
        "buckets: artifacts, registry and terraform_state must be three different buckets",
    ),
    (
        _set("kms.key_alias", "alias/aws/s3"),
        "kms.key_alias: 'alias/aws/s3' is not a customer-managed KMS alias (alias/NAME, not alias/aws/...)",
    ),
    (
        _set("kms.key_alias", "mlops-key"),
        "kms.key_alias: 'mlops-key' is not a customer-managed KMS alias (alias/NAME, not alias/aws/...)",
    ),
    (
        _set("model_package_group", "models_v1"),
        "model_package_group: 'models_v1' is not a model package group name (letters, digits, -; at most 63)",
    ),
    (
        _set("pipelines.hpo", "mlops-demo-train"),
        "pipelines: train, hpo, inference and quality must have different names",
    ),
    (
        _set("schedule", "cron(0 6 * * *)"),
        "schedule: 'cron(0 6 * * *)' has 5 fields; EventBridge cron needs 6 "
        "(minutes hours day-of-month month day-of-week year)",
    ),
    (
        _set("schedule", "cron(0 6 * * MON *)"),
        "schedule: 'cron(0 6 * * MON *)': one of day-of-month or day-of-week must be '?'",
    ),
    (
        _set("schedule", "rate(1 hours)"),
        "schedule: 'rate(1 hours)' is not a valid rate: use 'rate(1 hour)' or 'rate(N hours)', N >= 1",
    ),
    (_set("schedule", "every day"), "schedule: 'every day' is not a cron(...) or rate(...) expression"),
    (
        _set("notifications.emails", ["ml-approvers@example"]),
        "notifications.emails[0]: 'ml-approvers@example' is not an email address",
    ),
    (_set("notifications.emails", "ops@example.com"), "notifications.emails: expected a list, got 'ops@example.com'"),
    (_set("training.auc_threshold", 1.5), "training.auc_threshold: 1.5 is not a number between 0 and 1"),
    (
        _set("training.instance_type", "m5.large"),
        "training.instance_type: 'm5.large' is not a SageMaker instance type like ml.m5.large",
    ),
    (
        _set("training.hpo", {"max_jobs": 2, "max_parallel_jobs": 3}),
        "training.hpo.max_parallel_jobs: 3 is not a whole number between 1 and 2",
    ),
    (
        _set("training.hpo", {"ranges": {"eta": {"type": "continuous", "min": 0.5, "max": 0.1}}}),
        "training.hpo.ranges.eta: min 0.5 must be below max 0.1",
    ),
    (_set("inference.drift_significance", 0), "inference.drift_significance: 0 is not a number between 1e-09 and 0.5"),
    (
        _set("inference.instance_count", {"checks": 0}),
        "inference.instance_count.checks: 0 is not a whole number between 1 and 100",
    ),
    (
        _set("inference.instance_count", {"transform": 2.5}),
        "inference.instance_count.transform: 2.5 is not a whole number between 1 and 100",
    ),
    (
        _set("inference.instance_count", {"check": 2}),
        "inference.instance_count.check: unknown field (expected one of: checks, transform)",
    ),
    (_set("inference.instance_count", 4), "inference.instance_count: expected a mapping, got 4"),
    (
        _set("inference.drift_threshold", 0.25),
        (
            "inference.drift_threshold: replaced by inference.drift_significance: the false-alarm rate of the whole "
            "drift check per batch (default 0.01), which accounts for the batch size where a fixed distance did not"
        ),
    ),
    # monitoring: the alarms' settings
    (
        _set("monitoring", {"violations_limit": -1}),
        "monitoring.violations_limit: -1 is not a whole number between 0 and 1000000000.0",
    ),
    (
        _set("schedule", "cron(0 6 1 * ? *)"),
        "monitoring.inference_period_minutes: required: the period of schedule 'cron(0 6 1 * ? *)' cannot be "
        "derived (a rate(...), a daily, hourly or weekly cron can): give the longest time between two scheduled "
        "runs, in minutes",
    ),
    (
        _set("monitoring", {"missed_inference_slack_minutes": 10000}),
        "monitoring.missed_inference_slack_minutes: the schedule's period plus the slack is 11440 minutes: a "
        "CloudWatch alarm looks back at most 10080 (7 days)",
    ),
    # notification rules: one line naming the rule and the field
    (
        _rule("train-failed", "pipeline", "training"),
        "notifications.rules[train-failed].pipeline: 'training' is not one of train, hpo, inference, quality or any",
    ),
    (
        _rule("train-failed", "step", "Trian"),
        "notifications.rules[train-failed].step: 'Trian' is not a step of train (steps: Preprocess, Train, "
        "Evaluate, CheckModelQuality, Seal, Register-RegisterModel, ModelQualityBelowThreshold)",
    ),
    (
        _rule("inference-failed", "statuses", ["Failed", "Error"]),
        "notifications.rules[inference-failed].statuses[1]: 'Error' is not a step's status (one of: Starting, "
        "Executing, Stopping, Stopped, Failed, Succeeded)",
    ),
    (
        _rule("hpo-failed", "step", _DELETE),
        "notifications.rules[hpo-failed].message: unknown field {step} (this rule's fields: environment, project, "
        "account, region, pipeline, execution, status, time)",
    ),
    (
        _rule("model-pending-approval", "statuses", ["Pending"]),
        "notifications.rules[model-pending-approval].statuses[0]: 'Pending' is not a version's approval status "
        "(one of: PendingManualApproval, Approved, Rejected)",
    ),
    (
        _rule("retrain-started", "recipients", []),
        "notifications.rules[retrain-started].recipients: expected a non-empty list of email addresses, got list",
    ),
    (
        _rule("retrain-started", "message", "Drift in {feature} at {time}"),
        "notifications.rules[retrain-started].message: unknown field {feature} (this rule's fields: environment, "
        "project, account, region, pipeline, execution, status, time, step, failure_reason)",
    ),
    (
        _rule("batch-invalid", "failure_reasons", ["DataValidationError"]),
        "notifications.rules[batch-invalid].failure_reasons[0]: 'DataValidationError' is not a failure the "
        "pipelines name (one of: DataValidationFailed, DataDriftDetected, ModelQualityBelowThreshold)",
    ),
    (
        _rule("quality-dropped", "topic", "pager"),
        "notifications.rules[quality-dropped].topic: 'pager' is not default or a topic in notifications.topics "
        "(none declared)",
    ),
    (
        _topics({"pager": []}),
        "notifications.topics.pager: expected a non-empty list of email addresses, got list",
    ),
    (
        _rule("train-failed", "message", "Run {execution!r} failed"),
        "notifications.rules[train-failed].message: {execution} takes no format: write {execution}",
    ),
    (
        _rule("train-failed", "message", "Run <execution> failed"),
        "notifications.rules[train-failed].message: '<' and '>' are EventBridge's placeholder brackets: "
        "write fields as {name}",
    ),
    (
        _set("training.dataset", "ftp://data/x.csv"),
        "training.dataset: 'ftp://data/x.csv' is not a dataset (builtin:NAME, s3://BUCKET/PREFIX-OR-KEY, or a local "
        "CSV file, folder or glob)",
    ),
]


@pytest.mark.parametrize(
    "mutate, expected", MALFORMED, ids=[m[1].split(":")[0] + f"-{i}" for i, m in enumerate(MALFORMED)]
)
def test_malformed_environment_fails_with_one_exact_line(tmp_path, mutate, expected):
    data = copy.deepcopy(BASE)
    mutate(data)
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # accounts: are in promotion order
    with pytest.raises(ConfigError) as info:
        load_environment(str(path))
    assert str(info.value) == f"{path}: {expected}"
    assert info.value.exit_code == 2


def test_table_has_at_least_twenty_cases():
    assert len(MALFORMED) >= 20


def test_not_yaml_names_the_line(tmp_path):
    path = tmp_path / "prod.yaml"
    path.write_text("environment: prod\nregion: [us-east-1\n")
    with pytest.raises(ConfigError, match=r"prod.yaml: line 3: not valid YAML"):
        load_environment(str(path))


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        load_environment("staging", env_dir=REPO / "environments")
    assert str(info.value) == f"--env: no environment 'staging' in {REPO / 'environments'} (known: dev, prod, stage)"


@pytest.mark.parametrize("name", ["dev", "stage", "prod"])
def test_shipped_environments_load_with_sandbox_backend(name):
    env = load_environment(name, env_dir=REPO / "environments")
    assert env.backend == "sandbox"
    assert env.registry_account_id == "333333333333"
    assert env.account_id == {"dev": "111111111111", "stage": "555555555555", "prod": "222222222222"}[name]
    # one instance per job unless the file asks for more: the definitions stay as they were
    assert (env.inference.check_instance_count, env.inference.transform_instance_count) == (1, 1)


def test_instance_counts_are_read_per_job_kind(tmp_path):
    data = copy.deepcopy(BASE)
    data["inference"]["instance_count"] = {"checks": 3}
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    env = load_environment(str(path))
    assert (env.inference.check_instance_count, env.inference.transform_instance_count) == (3, 1)
    assert env.model_package_group_arn == (
        "arn:aws:sagemaker:us-east-1:333333333333:model-package-group/mlops-demo-models"
    )
    assert env.role_arn("approver") == "arn:aws:iam::333333333333:role/mlops-demo-approver"
    assert env.role_arn("jenkins") == f"arn:aws:iam::{env.account_id}:role/cross-account-jenkins-role"


def test_backend_flag_overrides_the_file():
    env = load_environment("prod", env_dir=REPO / "environments", backend="aws")
    assert env.backend == "aws"


def test_cli_reports_a_bad_file_in_one_line_with_exit_code_2(tmp_path):
    data = copy.deepcopy(BASE)
    data["accounts"]["prod"] = "2222"
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_cli("run-pipeline", "--env", str(path), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: accounts.prod: '2222' is not a 12-digit AWS account id"
    ]
