"""Plan and apply against the sandbox: --plan writes nothing, and drift someone introduces by hand is
shown as a diff and repaired. (Idempotency: test_convergence.py.)"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.iam.conftest import CallCounter, bootstrap_all


def test_plan_on_empty_accounts_writes_nothing(clean_sandbox, envs, module_sessions):
    counter = CallCounter()
    results = bootstrap_all(envs, module_sessions, apply=False, session_hook=counter)
    assert counter.writes == [] and counter.reads
    assert all(r.plan.counts()["create"] == len(r.plan.changes) for r in results.values())
    iam = module_sessions["dev"].client("iam", module_sessions["dev"].in_account("111111111111"))
    with pytest.raises(ClientError, match="NoSuchEntity"):
        iam.get_role(RoleName="mlops-demo-sagemaker-execution")


def test_hand_made_drift_is_shown_and_repaired(clean_sandbox, envs, module_sessions):
    bootstrap_all(envs, module_sessions)
    prod, s = envs["prod"], module_sessions["prod"]
    admin = s.in_account(prod.account_id)
    iam, s3, kms = s.client("iam", admin), s.client("s3", admin), s.client("kms", admin)
    # what a console session typically leaves behind
    broad = iam.create_policy(
        PolicyName="SageMakerFullAccessCopy",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sagemaker:*","Resource":"*"}]}',
    )
    iam.attach_role_policy(RoleName=prod.roles.execution, PolicyArn=broad["Policy"]["Arn"])
    s3.put_bucket_versioning(Bucket=prod.buckets.terraform_state, VersioningConfiguration={"Status": "Suspended"})
    key_id = kms.describe_key(KeyId=prod.kms_key_alias)["KeyMetadata"]["KeyId"]
    kms.disable_key_rotation(KeyId=key_id)
    iam.put_role_policy(
        RoleName=prod.roles.events,
        PolicyName="start-project-pipelines",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sagemaker:StartPipelineExecution",'
        '"Resource":"arn:aws:sagemaker:us-east-1:222222222222:pipeline/*"}]}',
    )

    from iam.bootstrap import bootstrap

    planned = bootstrap(prod, "prod", apply=False, sessions=s)
    changed = {(c.kind, c.name): c for c in planned.plan.changes if c.action != "unchanged"}
    assert set(changed) == {
        ("iam-role-policies", prod.roles.execution),
        ("s3-bucket", prod.buckets.terraform_state),
        ("kms-key", prod.kms_key_alias),
        ("iam-role-policies", prod.roles.events),
    }
    assert any("SageMakerFullAccessCopy" in r for r in changed[("iam-role-policies", prod.roles.execution)].reasons)
    diff = changed[("iam-role-policies", prod.roles.events)].diffs["start-project-pipelines"]
    lines = [line.replace(" ", "") for line in diff.splitlines()]
    assert '-"arn:aws:sagemaker:us-east-1:222222222222:pipeline/*"' in lines
    assert '+"arn:aws:sagemaker:us-east-1:222222222222:pipeline/mlops-demo-inference",' in lines
    assert planned.writes == 0

    applied = bootstrap(prod, "prod", apply=True, sessions=s)
    assert applied.writes == 4
    assert iam.list_attached_role_policies(RoleName=prod.roles.execution)["AttachedPolicies"] == []
    assert s3.get_bucket_versioning(Bucket=prod.buckets.terraform_state)["Status"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert bootstrap(prod, "prod", apply=True, sessions=s).writes == 0


def test_a_key_pending_deletion_stops_the_bootstrap_until_someone_decides(clean_sandbox, envs, module_sessions):
    from iam.bootstrap import bootstrap
    from iam.observe import BootstrapConflict

    dev, s = envs["dev"], module_sessions["dev"]
    bootstrap(dev, "dev", apply=True, sessions=s)
    kms = s.client("kms", s.in_account(dev.account_id))
    key_id = kms.describe_key(KeyId=dev.kms_key_alias)["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(BootstrapConflict, match=r"alias/mlops-demo-dev\) is pending deletion: cancel the deletion"):
        bootstrap(dev, "dev", apply=True, sessions=s)
    # cancelling leaves the key disabled, as AWS does; the next apply re-enables it and nothing else
    kms.cancel_key_deletion(KeyId=key_id)
    repaired = bootstrap(dev, "dev", apply=True, sessions=s)
    assert [(c.kind, c.action) for c in repaired.plan.changes if c.action != "unchanged"] == [("kms-key", "update")]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_a_bucket_name_owned_by_another_account_is_a_clear_conflict(sandbox, envs, module_sessions):
    from iam.bootstrap import bootstrap
    from iam.observe import BootstrapConflict

    prod, s = envs["prod"], module_sessions["prod"]
    s.client("s3", s.in_account("444444444444")).create_bucket(Bucket=prod.buckets.terraform_state)
    with pytest.raises(BootstrapConflict, match="bucket mlops-demo-prod-tfstate exists but this account cannot"):
        bootstrap(prod, "prod", apply=True, sessions=s)
