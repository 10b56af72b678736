"""Malformed input, config and command line alike, is refused with one exact line and exit code 2
before anything acts on it: no sandbox started, no file written, no AWS call.

Each row is (case id, files to write into a scratch environments dir, command line, extra
environment variables, the exact stderr line). Commands run in-process through click's runner,
against a sandbox home that does not exist: any attempt to reach the sandbox would create it.
"""

from __future__ import annotations

import importlib
import os
import shutil

import pytest
from click.testing import CliRunner

from tests.conftest import REPO

DEV = (REPO / "environments" / "dev.yaml").read_text()
PROD = (REPO / "environments" / "prod.yaml").read_text()


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of `text` holding `needle`: expectations follow edits of dev.yaml."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


DEV_LINES = len(DEV.splitlines())
PROD_ACCOUNT_LINE = line_of(DEV, '  prod: "222222222222"')


def dev(old: str, new: str) -> dict:
    assert old in DEV, old
    return {"dev.yaml": DEV.replace(old, new, 1)}


def prod(old: str, new: str) -> dict:
    assert old in PROD, old
    return {"prod.yaml": PROD.replace(old, new, 1)}


F = "environments/dev.yaml"
P = "environments/prod.yaml"
STATUS = ["promote", "status", "--env", "dev"]
STATUS_PROD = ["promote", "status", "--env", "prod"]
TRAIN = ["run-pipeline", "--env", "dev", "--pipeline", "train"]
INFRA_PROD = ["promote", "infra", "--env", "prod", "--apply"]
NOT_A_NUMBER = "mlops-demo-train declares AucThreshold as Float, so the value must be a number"

CASES = [
    # -- environment files ------------------------------------------------------------------------
    (
        "duplicate-top-level-key",
        dev("region: us-east-1\n", "region: us-east-1\nregion: eu-west-1\n"),
        STATUS,
        {},
        f"{F}: line 7: duplicate key 'region' (first at line 6)",
    ),
    (
        "duplicate-nested-key",
        dev('  prod: "222222222222"\n', '  prod: "222222222222"\n  prod: "555555555555"\n'),
        STATUS,
        {},
        f"{F}: line {PROD_ACCOUNT_LINE + 1}: duplicate key 'prod' (first at line {PROD_ACCOUNT_LINE})",
    ),
    (
        "arabic-indic-digits",
        dev('dev: "111111111111"', 'dev: "١١١١١١١١١١١١"'),
        STATUS,
        {},
        f"{F}: accounts.dev: '١١١١١١١١١١١١' is not a 12-digit AWS account id",
    ),
    (
        "fullwidth-digits",
        dev('prod: "222222222222"', 'prod: "２２２２２２２２２２２２"'),
        STATUS,
        {},
        f"{F}: accounts.prod: '２２２２２２２２２２２２' is not a 12-digit AWS account id",
    ),
    (
        "account-id-trailing-newline",
        dev('dev: "111111111111"', 'dev: "111111111111\\n"'),
        STATUS,
        {},
        f"{F}: accounts.dev: '111111111111\\n' is not a 12-digit AWS account id",
    ),
    (
        "jenkins-arn-non-ascii-digits",
        dev("arn:aws:iam::444444444444:role", "arn:aws:iam::٤٤٤٤٤٤٤٤٤٤٤٤:role"),
        STATUS,
        {},
        (
            f"{F}: jenkins.principal_arn: 'arn:aws:iam::٤٤٤٤٤٤٤٤٤٤٤٤:role/jenkins-agent' is not an IAM role or user "
            "ARN (arn:aws:iam::123456789012:role/NAME)"
        ),
    ),
    (
        "dev-equals-prod",
        dev('prod: "222222222222"', 'prod: "111111111111"'),
        STATUS,
        {},
        (
            f"{F}: accounts.prod: '111111111111' is the same account as accounts.dev: "
            "each stage of the promotion path needs its own account"
        ),
    ),
    (
        "registry-equals-dev-seen-from-prod",
        prod('registry: "333333333333"', 'registry: "111111111111"'),
        STATUS_PROD,
        {},
        (
            f"{P}: accounts.registry: '111111111111' is the same account as accounts.dev: "
            "the registry must be a separate account"
        ),
    ),
    (
        "stage-equals-prod",
        dev('  stage: "555555555555"\n', '  stage: "222222222222"\n'),
        STATUS,
        {},
        (
            f"{F}: accounts.prod: '222222222222' is the same account as accounts.stage: "
            "each stage of the promotion path needs its own account"
        ),
    ),
    (
        "jenkins-in-a-workload-account",
        dev("arn:aws:iam::444444444444:role", "arn:aws:iam::111111111111:role"),
        STATUS,
        {},
        (
            f"{F}: jenkins.principal_arn: account '111111111111' is the same account as accounts.dev: "
            "Jenkins must act from its own account"
        ),
    ),
    (
        "nesting-5000-deep",
        {"dev.yaml": DEV + "extra: " + "[" * 5000 + "]" * 5000 + "\n"},
        STATUS,
        {},
        f"{F}: line {DEV_LINES + 1}: nested deeper than 16 levels: not an environment file",
    ),
    (
        "nesting-mappings",
        {"dev.yaml": DEV + "extra:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)) + "  " * 40 + "x: 1\n"},
        STATUS,
        {},
        f"{F}: line {DEV_LINES + 16}: nested deeper than 16 levels: not an environment file",
    ),
    (
        "file-over-256-KiB",
        {"dev.yaml": DEV + ("#" * 1023 + "\n") * 300},
        STATUS,
        {},
        f"{F}: file is larger than 256 KiB, the limit for an environment file",
    ),
    (
        "not-utf8",
        {"dev.yaml": DEV.encode() + b"# \xff\xfe\n"},
        STATUS,
        {},
        f"{F}: byte {len(DEV.encode()) + 2}: not UTF-8 text",
    ),
    (
        "region-trailing-newline",
        dev("region: us-east-1", 'region: "us-east-1\\n"'),
        STATUS,
        {},
        f"{F}: region: 'us-east-1\\n' is not an AWS region name like eu-west-1",
    ),
    (
        "role-name-non-ascii",
        dev("execution: mlops-demo-sagemaker-execution", "execution: mlops-démo-execution"),
        STATUS,
        {},
        f"{F}: roles.execution: 'mlops-démo-execution' is not an IAM role name",
    ),
    (
        "schedule-trailing-newline",
        dev("schedule: rate(1 day)", 'schedule: "rate(1 day)\\n"'),
        STATUS,
        {},
        f"{F}: schedule: 'rate(1 day)\\n' is not a cron(...) or rate(...) expression",
    ),
    # -- run-pipeline --param and --tag --------------------------------------------------------------
    (
        "param-unknown-with-dry-run",
        {},
        TRAIN + ["--dry-run", "--param", "Foo=bar"],
        {},
        (
            "--param: 'Foo' is not a parameter of mlops-demo-train (known: ArtifactsBucket, AucThreshold, BuildId, "
            "BuildUrl, ChampionTolerance, DeliveryUri, ExecutionRoleArn, GitCommit, InputDataUri, KmsKeyId, "
            "ModelArtifactsBucket, ModelPackageGroupArn, ProcessingInstanceType, TrainingInstanceType)"
        ),
    ),
    (
        "param-float-not-a-number",
        {},
        TRAIN + ["--start", "--param", "AucThreshold=abc"],
        {},
        f"--param: AucThreshold='abc': {NOT_A_NUMBER}",
    ),
    (
        "param-float-inf",
        {},
        TRAIN + ["--start", "--param", "AucThreshold=inf"],
        {},
        f"--param: AucThreshold='inf': {NOT_A_NUMBER}",
    ),
    (
        "param-float-nan",
        {},
        TRAIN + ["--wait", "--param", "AucThreshold=nan"],
        {},
        f"--param: AucThreshold='nan': {NOT_A_NUMBER}",
    ),
    (
        "param-float-arabic-digits",
        {},
        TRAIN + ["--start", "--param", "AucThreshold=٠.٩"],
        {},
        f"--param: AucThreshold='٠.٩': {NOT_A_NUMBER}",
    ),
    (
        "param-without-start",
        {},
        TRAIN + ["--param", "AucThreshold=0.95"],
        {},
        "--param: --param only applies with --start, --wait or --dry-run",
    ),
    (
        "param-given-twice",
        {},
        TRAIN + ["--start", "--param", "AucThreshold=0.9", "--param", "AucThreshold=0.95"],
        {},
        "--param: 'AucThreshold' is given twice ('0.9' and '0.95')",
    ),
    (
        "param-not-key-value",
        {},
        TRAIN + ["--start", "--param", "AucThreshold"],
        {},
        "--param: 'AucThreshold' is not KEY=VALUE",
    ),
    ("param-empty-key", {}, TRAIN + ["--start", "--param", "=1"], {}, "--param: '=1' is not KEY=VALUE"),
    (
        "tag-given-twice",
        {},
        TRAIN + ["--tag", "team=a", "--tag", "team=b"],
        {},
        "--tag: 'team' is given twice ('a' and 'b')",
    ),
    # -- numeric ranges, checked by click before the command runs ----------------------------------
    (
        "approve-version-negative",
        {},
        ["promote", "approve", "--env", "dev", "--version", "-1", "--reason", "ok"],
        {},
        "Invalid value for '--version': -1 is not in the range x>=1.",
    ),
    (
        "approve-version-zero",
        {},
        ["promote", "approve", "--env", "dev", "--version", "0", "--reason", "ok"],
        {},
        "Invalid value for '--version': 0 is not in the range x>=1.",
    ),
    (
        "reject-version-text",
        {},
        ["promote", "reject", "--env", "dev", "--version", "latest", "--reason", "no"],
        {},
        "Invalid value for '--version': 'latest' is not a valid integer range.",
    ),
    (
        "lineage-version-fraction",
        {},
        ["promote", "lineage", "--env", "dev", "--version", "1.5"],
        {},
        "Invalid value for '--version': '1.5' is not a valid integer range.",
    ),
    (
        "sandbox-port-too-large",
        {},
        ["sandbox", "up", "--port", "70000"],
        {},
        "Invalid value for '--port': 70000 is not in the range 0<=x<=65535.",
    ),
    (
        "sandbox-port-negative",
        {},
        ["sandbox", "up", "--port", "-1"],
        {},
        "Invalid value for '--port': -1 is not in the range 0<=x<=65535.",
    ),
    (
        "follow-negative-timeout",
        {},
        ["run-pipeline", "follow", "--env", "dev", "--pipeline", "train", "--appear-timeout", "-5"],
        {},
        "Invalid value for '--appear-timeout': -5.0 is not in the range 0<=x<=86400.",
    ),
    # -- notification rules: refused before Terraform or the sandbox is reached -------------------------
    (
        "notification-rule-unknown-step",
        prod(
            "      step: any\n      statuses: [Failed]\n      failure_reasons: [DataDriftDetected]\n",
            "      step: DriftCheck\n      statuses: [Failed]\n      failure_reasons: [DataDriftDetected]\n",
        ),
        INFRA_PROD,
        {},
        (
            f"{P}: notifications.rules[retrain-started].step: 'DriftCheck' is not a step of inference (steps: "
            "LatestApprovedModel, DataValidation, CheckDataValidation, DataValidationMerge, "
            "PublishDataValidationMetrics, DataValidationFailed, DataDriftCheck, DataDriftCheckMerge, "
            "PublishDataDriftCheckMetrics, CheckDataDrift, DataDriftDetected, CreateModel-CreateModel, BatchTransform, "
            "RecordRun)"
        ),
    ),
    (
        "notification-rule-unknown-field",
        prod("because the model is stale ({step})", "because the model is stale ({stepname})"),
        INFRA_PROD,
        {},
        (
            f"{P}: notifications.rules[retrain-started].message: unknown field {{stepname}} (this rule's fields: "
            "environment, project, account, region, pipeline, execution, status, time, step, failure_reason)"
        ),
    ),
    (
        "notification-rule-empty-recipients",
        prod("    - name: hpo-failed\n", "    - name: hpo-failed\n      recipients: []\n"),
        INFRA_PROD,
        {},
        f"{P}: notifications.rules[hpo-failed].recipients: expected a non-empty list of email addresses, got list",
    ),
    (
        "notification-rule-unknown-status",
        prod(
            "      registry: true\n      statuses: [PendingManualApproval]\n",
            "      registry: true\n      statuses: [Pending]\n",
        ),
        INFRA_PROD,
        {},
        (
            f"{P}: notifications.rules[model-pending-approval].statuses[0]: 'Pending' is not a version's approval "
            "status (one of: PendingManualApproval, Approved, Rejected)"
        ),
    ),
    # -- backend: aws never reaches a local endpoint -----------------------------------------------
    (
        "aws-backend-loopback-endpoint",
        {},
        STATUS + ["--backend", "aws"],
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
        (
            "AWS_ENDPOINT_URL: 'http://127.0.0.1:4566' is an endpoint on this machine, not AWS: "
            "unset AWS_ENDPOINT_URL or use the sandbox backend"
        ),
    ),
    (
        "aws-backend-localhost-service-endpoint",
        {},
        TRAIN + ["--backend", "aws", "--start"],
        {"AWS_ENDPOINT_URL_SAGEMAKER": "http://localhost:5000"},
        (
            "AWS_ENDPOINT_URL_SAGEMAKER: 'http://localhost:5000' is an endpoint on this machine, not AWS: "
            "unset AWS_ENDPOINT_URL_SAGEMAKER or use the sandbox backend"
        ),
    ),
    (
        "aws-backend-ipv6-loopback",
        {},
        STATUS + ["--backend", "aws"],
        {"AWS_ENDPOINT_URL_S3": "http://[::1]:9000"},
        (
            "AWS_ENDPOINT_URL_S3: 'http://[::1]:9000' is an endpoint on this machine, not AWS: "
            "unset AWS_ENDPOINT_URL_S3 or use the sandbox backend"
        ),
    ),
]

COMMANDS = {
    "promote": "promote.cli",
    "run-pipeline": "pipelines.run_pipeline",
    "sandbox": "sandbox.cli",
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch working directory with its own environments/ and a sandbox home that does not exist."""
    env_dir = tmp_path / "environments"
    env_dir.mkdir()
    (env_dir / "dev.yaml").write_text(DEV)
    (env_dir / "prod.yaml").write_text(PROD)
    shutil.copytree(REPO / "environments" / "contracts", env_dir / "contracts")  # the files name their contract
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_ENV_DIR", raising=False)
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    home = tmp_path / "sandbox-home"
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(home))
    return tmp_path


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case, files, argv, environ, line", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_refused_in_one_line_and_nothing_is_written(
    workdir, monkeypatch, case, files, argv, environ, line
):
    for name, text in files.items():
        path = workdir / "environments" / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    before = _snapshot(workdir)

    command = importlib.import_module(COMMANDS[argv[0]]).main
    result = CliRunner().invoke(command, argv[1:], prog_name=argv[0])

    assert (result.exit_code, result.stderr.splitlines()) == (2, [f"error: {line}"]), result.output
    assert result.stdout == ""
    assert not (workdir / "sandbox-home").exists(), "the sandbox was reached"
    assert _snapshot(workdir) == before, "a file was written"


def test_table_has_at_least_thirty_cases():
    assert len(CASES) >= 30
