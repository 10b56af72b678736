"""mlops-infra/ as code: formatted, valid, clean under checkov, fed only by variables generated from the YAML."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from promote.infra import SOURCE_DIR, VARS_FILE, prepare_working_dir, terraform_vars
from tests.conftest import REPO

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


def test_terraform_fmt_check_is_clean():
    from promote.terraform import TerraformCli

    assert TerraformCli(SOURCE_DIR).fmt_check(SOURCE_DIR) == []


def test_terraform_fmt_check_catches_misformatted_code(tmp_path):
    from promote.terraform import TerraformCli

    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n}\n')
    assert TerraformCli(tmp_path).fmt_check(tmp_path) == ["bad.tf"]


def test_terraform_validate_is_clean_with_the_offline_provider(tmp_path):
    from promote.terraform import TerraformCli
    from sandbox.terraform import cli_config, ensure_provider_mirror

    shutil.copytree(SOURCE_DIR, tmp_path / "infra")
    (tmp_path / "terraform.rc").write_text(cli_config(ensure_provider_mirror()))
    tf = TerraformCli(tmp_path / "infra", env={"TF_CLI_CONFIG_FILE": str(tmp_path / "terraform.rc")})
    tf.init(None)
    assert "The configuration is valid" in tf.validate()


def test_checkov_finds_no_failed_check():
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make tools`")
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(SOURCE_DIR),
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed")}
    failed = [f"{c['check_id']} {c['resource']}" for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [], failed
    assert summary["passed"] >= 10, summary


def test_no_hand_kept_tfvars_in_the_repository():
    assert not [p for p in SOURCE_DIR.rglob("*") if p.name.endswith((".tfvars", ".tfvars.json"))]


def test_variables_come_from_the_environment_yaml(prod_env):
    tfvars = terraform_vars(prod_env)
    assert tfvars["schedule_expression"] == "cron(0 6 * * ? *)"
    assert tfvars["account_id"] == "222222222222" and tfvars["registry_account_id"] == "333333333333"
    assert tfvars["inference_pipeline_arn"] == "arn:aws:sagemaker:us-east-1:222222222222:pipeline/mlops-demo-inference"
    assert tfvars["train_pipeline_arn"].endswith(":pipeline/mlops-demo-train")
    assert tfvars["events_role_arn"] == "arn:aws:iam::222222222222:role/mlops-demo-events"
    assert tfvars["notification_emails"] == ["ml-approvers@example.com"]
    declared = set(_declared_variables())
    assert set(tfvars) == declared


def test_changing_the_yaml_changes_the_generated_tfvars(tmp_path, monkeypatch):
    from mlops_core.config import load_environment

    text = (REPO / "environments" / "prod.yaml").read_text()
    text = text.replace("cron(0 6 * * ? *)", "cron(30 4 * * ? *)").replace(
        "    - ml-approvers@example.com", "    - ml-approvers@example.com\n    - oncall@example.com"
    )
    (tmp_path / "prod.yaml").write_text(text)
    env = load_environment("prod", env_dir=tmp_path)
    monkeypatch.setenv("MLOPS_TERRAFORM_WORKDIR", str(tmp_path / "work"))

    workdir = prepare_working_dir(env)

    written = json.loads((workdir / VARS_FILE).read_text())
    assert written["schedule_expression"] == "cron(30 4 * * ? *)"
    assert written["notification_emails"] == ["ml-approvers@example.com", "oncall@example.com"]
    assert (workdir / "main.tf").read_text() == (SOURCE_DIR / "main.tf").read_text()
    assert workdir.resolve() != SOURCE_DIR.resolve() and not (SOURCE_DIR / VARS_FILE).exists()


def _declared_variables():
    import re

    return re.findall(r'^variable "([a-z_]+)"', (SOURCE_DIR / "variables.tf").read_text(), re.M)
