"""Fixtures for the Terraform tests: a private working directory and bootstrapped accounts."""

from __future__ import annotations

import pytest


@pytest.fixture
def terraform_workdir(tmp_path, monkeypatch):
    """`promote infra` working directories (plan, tfvars, .terraform) under this test's tmp dir."""
    workdir = tmp_path / "terraform-work"
    monkeypatch.setenv("MLOPS_TERRAFORM_WORKDIR", str(workdir))
    return workdir


@pytest.fixture
def bootstrapped_prod(sandbox, cli, prod_env):
    """What an admin does once before `promote infra`: bootstrap the registry and prod accounts (state
    bucket, lock table, KMS key, events role). Returns Sessions for prod, acting as its admin."""
    from mlops_core.session import Sessions

    for account in ("registry", "prod"):
        result = cli("bootstrap-account", "--env", "prod", "--account", account, "--apply")
        assert result.returncode == 0, result.stderr
    sessions = Sessions(prod_env)
    # run-pipeline deploys the arrival and run-metrics functions with the pipelines, before Jenkins
    # applies mlops-infra/
    from pipelines.definitions import arrival_function, run_metrics_function

    for function in (arrival_function(prod_env), run_metrics_function(prod_env)):
        sessions.client("lambda").create_function(
            FunctionName=function.name,
            Role=function.role_arn,
            Handler=function.handler,
            Runtime=function.runtime,
            Code={"ZipFile": function.zip_bytes},
            Timeout=function.timeout,
        )
    return sessions
