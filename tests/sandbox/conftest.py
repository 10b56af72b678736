"""Fixtures shared by the sandbox tests (engine, events, clock)."""

from __future__ import annotations

import json

import pytest

from tests.sandbox.pipeline_account import (
    BUCKET,
    EXECUTION_POLICY,
    ROLE_NAME,
    TRUST_SAGEMAKER,
    PipelineAccount,
)


@pytest.fixture
def account(sandbox):
    acct = PipelineAccount(sandbox)
    acct.client("s3").create_bucket(Bucket=BUCKET)
    iam = acct.client("iam")
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_SAGEMAKER))
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="engine-test", PolicyDocument=json.dumps(EXECUTION_POLICY))
    return acct
