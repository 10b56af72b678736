"""cross-account-jenkins-role touches only what the toolkit creates. Before: PutKeyPolicy and
ScheduleKeyDeletion on every key of prod but the bootstrap's (`key/*`), events:PutPermission on `*` (it
can open the default bus to Principal "*"), and GetObject on the whole artifacts bucket, training data
included. Each former over-grant is now denied by the sandbox's IAM evaluation, as on AWS, and each call
Terraform and the upsert need still works: the rows are the access matrix's (tests/iam/test_access_matrix.py).

AWS pages for the condition keys: https://docs.aws.amazon.com/kms/latest/developerguide/abac.html
(aws:ResourceTag on KMS keys, aws:RequestTag on CreateKey/TagResource),
https://docs.aws.amazon.com/kms/latest/developerguide/alias-access.html (an alias call needs permission
on the alias and on the key), https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutPermission.html
(the Principal may be "*"; IAM has no condition key on it, so the role does not hold the action)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.iam import test_access_matrix as matrix
from tests.iam.conftest import bootstrapped, clean_sandbox, envs, module_sessions  # noqa: F401 (fixtures)
from tests.iam.test_access_matrix import JENKINS_ROWS, world  # noqa: F401 (fixture)


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=f"{r.action}:{'allow' if r.allowed else 'deny'}:{i}") for i, r in enumerate(JENKINS_ROWS)],
)
def test_jenkins_role_is_narrowed_to_the_toolkits_resources(world, row):  # noqa: F811
    matrix.test_access_matrix(world, row)


def test_the_deploy_role_no_longer_holds_put_permission_or_reads_the_artifacts_bucket(prod_env):
    """As data, what the bootstrap puts on the role (iam/policies/prod/role.cross-account-jenkins-role.*)."""
    from iam.policies import jenkins_role_policies

    statements = [s for doc in jenkins_role_policies(prod_env).values() for s in doc["Statement"]]
    allowed = {
        (a, r) for s in statements if s["Effect"] == "Allow" for a in _list(s["Action"]) for r in _list(s["Resource"])
    }
    assert not [a for a, _ in allowed if a == "events:PutPermission"]
    assert not [r for a, r in allowed if a == "s3:GetObject" and prod_env.buckets.artifacts in r]
    keys = [s for s in statements if s["Effect"] == "Allow" and "kms:PutKeyPolicy" in _list(s["Action"])]
    assert keys and all(s["Condition"]["StringEquals"]["aws:ResourceTag/managed-by"] == "mlops-infra" for s in keys)


def _list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_upload_of_the_upsert_lands_where_the_deploy_role_may_write(env_name):
    """The role writes only under UPSERT_PREFIXES: an upload elsewhere would fail Jenkins' deploy."""
    from iam.policies import UPSERT_PREFIXES
    from mlops_core.config import load_environment
    from pipelines.definitions import build_pipelines

    env = load_environment(env_name, env_dir=REPO / "environments")
    base = f"s3://{env.buckets.artifacts}/"
    uploads = {u.s3_uri for spec in build_pipelines(env, "all").values() for u in spec.uploads}
    assert uploads
    assert [u for u in uploads if not (u.startswith(base) and u[len(base) :].startswith(UPSERT_PREFIXES))] == []
