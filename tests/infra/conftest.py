"""Fixtures for the Terraform tests: a private working directory and the state storage bootstrap makes."""

from __future__ import annotations

import pytest


@pytest.fixture
def terraform_workdir(tmp_path, monkeypatch):
    """`promote infra` working directories (plan, tfvars, .terraform) under this test's tmp dir."""
    workdir = tmp_path / "terraform-work"
    monkeypatch.setenv("MLOPS_TERRAFORM_WORKDIR", str(workdir))
    return workdir


@pytest.fixture
def state_storage(sandbox, prod_env):
    """What `bootstrap-account --account prod` provides for Terraform: the state bucket, the lock
    table and the environment's KMS key alias, created here as the prod account's admin."""
    from promote.session import Sessions

    sessions = Sessions(prod_env)
    admin = sessions.in_account(prod_env.account_id)
    s3, dynamodb, kms = (sessions.client(name, admin) for name in ("s3", "dynamodb", "kms"))
    s3.create_bucket(Bucket=prod_env.buckets.terraform_state)
    dynamodb.create_table(TableName=prod_env.terraform_lock_table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}])
    key_id = kms.create_key(Description="prod data key")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=prod_env.kms_key_alias, TargetKeyId=key_id)
    return sessions
