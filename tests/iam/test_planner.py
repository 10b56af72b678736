"""The pure planner, without any AWS: what it decides for empty, matching, drifted and half-created
accounts, and in what order its calls run."""

from __future__ import annotations

import copy

from iam.desired import Bucket, EventBusPermission, KmsKey, LockTable, Role, RolePolicies, desired_state
from iam.planner import PUBLIC_ACCESS_BLOCK, Json, normalize, plan
from mlops_core.config import REPO_ROOT, load_environment

PROD = desired_state(load_environment("prod", env_dir=REPO_ROOT / "environments"), "prod")
KEY_ARN = "arn:aws:kms:us-east-1:222222222222:key/0f0f0f0f-1111-2222-3333-444455556666"


def _resolved(doc):
    import json

    return json.loads(json.dumps(doc).replace("${kms-key-arn:alias/mlops-demo-prod}", KEY_ARN))


def bootstrapped(state):
    """What AWS describes for an account where the bootstrap ran to the end."""
    observed = {}
    for r in state.resources:
        if isinstance(r, KmsKey):
            o = {
                "exists": True,
                "arn": KEY_ARN,
                "key_id": KEY_ARN.rsplit("/", 1)[1],
                "state": "Enabled",
                "enabled": True,
                "description": r.description,
                "policy": _resolved(r.policy),
                "rotation": True,
                "alias_exists": True,
            }
        elif isinstance(r, Role):
            o = {"exists": True, "trust": r.trust_policy, "description": r.description, "tags": dict(r.tags)}
        elif isinstance(r, RolePolicies):
            o = {"policies": {n: _resolved(d) for n, d in r.policies.items()}, "attached": []}
        elif isinstance(r, Bucket):
            o = {
                "exists": True,
                "encryption": {"algorithm": "aws:kms", "key": KEY_ARN, "bucket_key": True},
                "versioning": "Enabled",
                "public_access_block": dict(PUBLIC_ACCESS_BLOCK),
                "policy": r.policy,
                "tags": dict(r.tags),
                "event_bridge": r.event_bridge,
                "notifications": {"EventBridgeConfiguration": {}} if r.event_bridge else {},
            }
        elif isinstance(r, LockTable):
            o = {
                "exists": True,
                "sse_type": "KMS",
                "sse_status": "ENABLED",
                "key": KEY_ARN,
                "key_schema": [("LockID", "HASH")],
            }
        elif isinstance(r, EventBusPermission):
            o = {"exists": True, "principal_account": r.principal_account}
        observed[(r.kind, r.name)] = o
    return observed


def test_empty_account_creates_everything_in_dependency_order():
    p = plan(PROD, {})
    assert p.counts() == {"create": len(PROD.resources), "update": 0, "unchanged": 0}
    methods = [c.method for c in p.calls]
    assert methods.index("create_role") < methods.index("create_key") < methods.index("put_role_policy")
    assert methods.index("create_key") < methods.index("put_bucket_encryption")
    create_key = next(c for c in p.calls if c.method == "create_key")
    assert create_key.store_as == "${kms-key-arn:alias/mlops-demo-prod}"
    # later calls refer to the key by the variable the executor fills in
    encryption = next(c for c in p.calls if c.method == "put_bucket_encryption")
    rule = encryption.params["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == create_key.store_as


def test_bootstrapped_account_plans_no_call():
    p = plan(PROD, bootstrapped(PROD))
    assert p.is_noop and p.counts()["unchanged"] == len(PROD.resources)
    assert p.variables == {"${kms-key-arn:alias/mlops-demo-prod}": KEY_ARN}


def test_policies_as_aws_returns_them_are_not_changes():
    """AWS hands back one-item lists as strings, booleans as strings, statements in its own order."""
    observed = bootstrapped(PROD)
    bucket_name = "mlops-demo-prod-artifacts"
    bucket = observed[("s3-bucket", bucket_name)]
    reformatted = copy.deepcopy(bucket["policy"])
    reformatted["Statement"].reverse()
    for s in reformatted["Statement"]:
        if isinstance(s["Action"], list) and len(s["Action"]) == 1:
            s["Action"] = s["Action"][0]
    bucket["policy"] = reformatted
    assert normalize(reformatted) == normalize(next(r.policy for r in PROD.resources if r.name == bucket_name))
    assert plan(PROD, observed).is_noop


def test_drifted_trust_policy_is_an_update_with_a_json_diff():
    observed = bootstrapped(PROD)
    trust = observed[("iam-role", "cross-account-jenkins-role")]["trust"]
    loose = copy.deepcopy(trust)
    del loose["Statement"][0]["Condition"]  # someone removed the ExternalId guard
    observed[("iam-role", "cross-account-jenkins-role")]["trust"] = loose
    p = plan(PROD, observed)
    (change,) = [c for c in p.changes if c.action != "unchanged"]
    assert (change.kind, change.name, change.action) == ("iam-role", "cross-account-jenkins-role", "update")
    assert [c.method for c in change.calls] == ["update_assume_role_policy"]
    diff = change.diffs["trust policy"]
    assert '+      "Condition": {' in diff and '"mlops-demo-prod-deploy"' in diff


def test_attached_managed_policy_and_unknown_inline_policy_are_removed():
    observed = bootstrapped(PROD)
    policies = observed[("iam-role-policies", "mlops-demo-sagemaker-execution")]
    policies["attached"] = ["arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"]
    policies["policies"]["console-leftover"] = {"Version": "2012-10-17", "Statement": []}
    (change,) = [c for c in plan(PROD, observed).changes if c.action != "unchanged"]
    assert sorted(c.method for c in change.calls) == ["delete_role_policy", "detach_role_policy"]
    assert any("AmazonSageMakerFullAccess" in r for r in change.reasons)


def test_key_created_by_an_interrupted_run_is_adopted_not_duplicated():
    observed = bootstrapped(PROD)
    observed[("kms-key", "alias/mlops-demo-prod")]["alias_exists"] = False
    (change,) = [c for c in plan(PROD, observed).changes if c.action != "unchanged"]
    assert [(c.method, c.params) for c in change.calls] == [
        ("create_alias", {"AliasName": "alias/mlops-demo-prod", "TargetKeyId": "0f0f0f0f-1111-2222-3333-444455556666"})
    ]


def test_bucket_without_versioning_and_with_the_wrong_key_is_repaired_in_place():
    observed = bootstrapped(PROD)
    bucket = observed[("s3-bucket", "mlops-demo-prod-tfstate")]
    bucket["versioning"] = "Suspended"
    bucket["encryption"] = {"algorithm": "AES256", "key": None, "bucket_key": False}
    (change,) = [c for c in plan(PROD, observed).changes if c.action != "unchanged"]
    assert change.action == "update"
    assert [c.method for c in change.calls] == ["put_bucket_encryption", "put_bucket_versioning"]
    policy_call = next(c for c in plan(PROD, {}).calls if c.method == "put_bucket_policy")
    assert isinstance(policy_call.params["Policy"], Json)


class _FlakyKms:
    """Stands for AWS right after IAM created a role: policies naming it are refused for a while."""

    def __init__(self, refusals):
        self.refusals, self.calls = refusals, 0

    def create_key(self, **params):
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls <= self.refusals:
            raise ClientError(
                {
                    "Error": {
                        "Code": "MalformedPolicyDocumentException",
                        "Message": "Policy contains a statement with one or more invalid principals.",
                    }
                },
                "CreateKey",
            )
        return {"KeyMetadata": {"Arn": KEY_ARN}}


def _key_call():
    return next(c for c in plan(PROD, {}).calls if c.method == "create_key")


def test_executor_waits_for_a_new_role_to_become_visible_to_policy_validation():
    from iam.executor import Executor

    kms, slept = _FlakyKms(refusals=2), []
    executor = Executor(lambda service: kms, sleep=slept.append)
    executor._call(_key_call())
    assert kms.calls == 3 and slept == [1.0, 2.0]
    assert executor.variables["${kms-key-arn:alias/mlops-demo-prod}"] == KEY_ARN


def test_executor_gives_up_with_the_order_to_bootstrap_in():
    import pytest

    from iam.executor import Executor, PolicyRejected

    kms = _FlakyKms(refusals=100)
    with pytest.raises(PolicyRejected, match=r"kms:create_key was refused: .*invalid principals.*dev, prod, then"):
        Executor(lambda service: kms, retry_for=5, sleep=lambda s: None)._call(_key_call())


def test_executor_waves_put_roles_first_then_the_key_alone_then_its_users():
    from iam.executor import waves

    grouped = [[c.kind for c in wave] for wave in waves(plan(PROD, {}).changes)]
    assert grouped == [
        ["iam-role"] * 5,  # execution, Lambda, Jenkins, EventBridge, registration audit
        ["kms-key"],
        ["iam-role-policies"] * 5 + ["s3-bucket"] * 2 + ["dynamodb-table", "bus-permission"],
    ]
    observed = bootstrapped(PROD)
    observed[("iam-role", "mlops-demo-events")] = {"exists": False}
    observed[("iam-role-policies", "mlops-demo-events")] = {"policies": {}, "attached": []}
    assert [[c.name for c in w] for w in waves(plan(PROD, observed).changes)] == [["mlops-demo-events"]] * 2


def test_buckets_that_receive_data_get_eventbridge_notifications_and_keep_their_other_ones():
    """prod.yaml has arrival triggers: its artifacts bucket must send S3 events to EventBridge
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-event-notifications-eventbridge.html);
    PutBucketNotificationConfiguration replaces the whole configuration, so what else is there stays."""
    observed = bootstrapped(PROD)
    bucket = observed[("s3-bucket", "mlops-demo-prod-artifacts")]
    queue = {"QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-east-1:222222222222:audit", "Events": ["s3:*"]}]}
    bucket.update(event_bridge=False, notifications=dict(queue))
    [change] = [c for c in plan(PROD, observed).changes if c.action != "unchanged"]
    assert change.name == "mlops-demo-prod-artifacts" and change.reasons == [
        "EventBridge notifications off -> on (arrival triggers)"
    ]
    [call] = change.calls
    assert call.method == "put_bucket_notification_configuration"
    assert call.params["NotificationConfiguration"] == {**queue, "EventBridgeConfiguration": {}}
    state_bucket = next(r for r in PROD.resources if r.name == "mlops-demo-prod-tfstate")
    assert state_bucket.event_bridge is False  # no data lands there
