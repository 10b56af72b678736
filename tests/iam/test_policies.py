"""Policies as data, without AWS: every generated document lints clean with parliament (or the finding
is justified in iam/policies.py), nothing is "*" without a reason, and the reviewable JSON files under
iam/policies/ are exactly what the code generates."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from iam import policies
from iam.desired import Bucket, KmsKey, Role, RolePolicies, desired_state
from iam.export import generated
from mlops_core.config import REPO_ROOT, load_environment

ENVS = REPO_ROOT / "environments"
EXAMPLE_KEY = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _states():
    dev = load_environment("dev", env_dir=ENVS)
    stage = load_environment("stage", env_dir=ENVS)
    prod = load_environment("prod", env_dir=ENVS)
    locked_down = load_environment(str(ENVS / "examples" / "prod-locked-down.yaml"))
    return {
        "dev": desired_state(dev, "dev"),
        "stage": desired_state(stage, "stage"),
        "prod": desired_state(prod, "prod"),
        "registry": desired_state(prod, "registry"),
        "examples/prod-locked-down": desired_state(locked_down, "prod"),
    }


STATES = _states()
DOCUMENTS = [(kind, name, doc) for kind, state in STATES.items() for name, doc in state.documents().items()]


def _rendered(doc) -> str:
    # placeholders stand for key ARNs AWS assigns at creation; lint a real-looking one
    return re.sub(r"\$\{kms-key-arn:[^}]+\}", EXAMPLE_KEY, json.dumps(doc))


def test_every_document_lints_clean_with_parliament_or_is_justified():
    from parliament import analyze_policy_string

    unexplained, used = [], set()
    for kind, name, doc in DOCUMENTS:
        text = _rendered(doc)
        assert "${" not in text, f"{kind}/{name}: unresolved placeholder left for the linter"
        for finding in analyze_policy_string(text, include_community_auditors=True).findings:
            accepted = [
                i
                for i, (pattern, issue, _) in enumerate(policies.LINT_ACCEPTED)
                if issue == finding.issue and fnmatch.fnmatch(name, pattern)
            ]
            used.update(accepted)
            if not accepted:
                unexplained.append(f"{kind}/{name}: {finding.issue} {finding.detail}")
    assert unexplained == []
    stale = [policies.LINT_ACCEPTED[i][:2] for i in range(len(policies.LINT_ACCEPTED)) if i not in used]
    assert stale == [], "justifications that no longer match a finding: remove them"


def test_no_wildcard_action_and_no_star_resource_without_a_reason():
    for kind, name, doc in DOCUMENTS:
        key_policy = name.startswith("kms-key-policy.")
        for s in doc["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert "*" not in actions, f"{kind}/{name} {s['Sid']}: Action *"
            if s["Effect"] == "Allow" and s.get("Resource") == "*" and not key_policy:
                unjustified = [a for a in actions if a not in policies.STAR_RESOURCE_JUSTIFIED]
                assert unjustified == [], f"{kind}/{name} {s['Sid']}: Resource * for {unjustified}"
            if key_policy and actions == ["kms:*"]:
                # kms:* only ever to the key's own account root (delegation to IAM)
                assert s["Principal"] == {"AWS": f"arn:aws:iam::{STATES[kind].account_id}:root"}


def test_inline_policies_fit_the_iam_size_limit_per_role():
    # IAM rejects a role whose inline policies add up to more than 10,240 characters (whitespace excluded)
    for kind, state in STATES.items():
        for r in state.resources:
            if isinstance(r, RolePolicies):
                size = sum(len(json.dumps(d, separators=(",", ":"))) for d in r.policies.values())
                assert size < 10240, f"{kind} {r.role}: {size} characters of inline policy"


def test_committed_policy_files_match_what_the_code_generates():
    files = generated(ENVS)
    on_disk = {
        str(p.relative_to(REPO_ROOT / "iam" / "policies")): p.read_text()
        for p in (REPO_ROOT / "iam" / "policies").rglob("*.json")
    }
    assert sorted(on_disk) == sorted(files), "run `python -m iam.export` and commit iam/policies/"
    for rel, text in files.items():
        assert on_disk[rel] == text, f"iam/policies/{rel} is stale: run `python -m iam.export`"


def test_dev_key_is_shared_with_stage_prod_and_the_registry_for_decrypt_only():
    key = next(r for r in STATES["dev"].resources if isinstance(r, KmsKey))
    shared = next(s for s in key.policy["Statement"] if s["Sid"] == "OtherAccountsDecrypt")
    assert sorted(shared["Principal"]["AWS"]) == [
        "arn:aws:iam::222222222222:root",
        "arn:aws:iam::333333333333:root",
        "arn:aws:iam::555555555555:root",
    ]
    assert shared["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
    prod_key = next(r for r in STATES["prod"].resources if isinstance(r, KmsKey))
    prod_shared = next(s for s in prod_key.policy["Statement"] if s["Sid"] == "OtherAccountsDecrypt")
    assert prod_shared["Principal"]["AWS"] == ["arn:aws:iam::333333333333:root"]  # dev never reads prod's models
    stage_key = next(r for r in STATES["stage"].resources if isinstance(r, KmsKey))
    stage_shared = next(s for s in stage_key.policy["Statement"] if s["Sid"] == "OtherAccountsDecrypt")
    assert sorted(stage_shared["Principal"]["AWS"]) == [
        "arn:aws:iam::222222222222:root",
        "arn:aws:iam::333333333333:root",
    ]


def test_desired_state_orders_roles_before_the_key_that_names_them_and_the_key_before_its_users():
    for state in STATES.values():
        kinds = [type(r) for r in state.resources]
        key_at = kinds.index(KmsKey)
        assert all(i < key_at for i, k in enumerate(kinds) if k is Role)
        assert all(i > key_at for i, k in enumerate(kinds) if k in (RolePolicies, Bucket))


@pytest.mark.parametrize("kind", ["dev", "prod"])
def test_execution_role_passes_only_itself_and_only_to_sagemaker(kind):
    r = next(
        r for r in STATES[kind].resources if isinstance(r, RolePolicies) and r.role == "mlops-demo-sagemaker-execution"
    )
    passes = [s for d in r.policies.values() for s in d["Statement"] if "iam:PassRole" in s["Action"]]
    assert len(passes) == 1
    assert passes[0]["Resource"] == f"arn:aws:iam::{STATES[kind].account_id}:role/mlops-demo-sagemaker-execution"
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_execution_role_gets_network_interface_permissions_only_with_a_network_block():
    """Conditioned as https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html describes: interfaces
    created only in the environment's subnets with its security groups, managed only in those subnets."""

    def execution_policies(kind):
        return next(
            r.policies
            for r in STATES[kind].resources
            if isinstance(r, RolePolicies) and r.role == "mlops-demo-sagemaker-execution"
        )

    for kind in ("dev", "stage", "prod"):
        assert "vpc-network-interfaces" not in execution_policies(kind)
        assert "ec2:" not in json.dumps(execution_policies(kind))
    env = load_environment(str(ENVS / "examples" / "prod-locked-down.yaml"))
    doc = execution_policies("examples/prod-locked-down")["vpc-network-interfaces"]
    ec2 = "arn:aws:ec2:us-east-1:222222222222"
    subnets = [f"{ec2}:subnet/{s}" for s in env.network.subnets]
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    create = by_sid["CreateJobInterfacesInProjectSubnets"]
    assert create["Action"] == "ec2:CreateNetworkInterface"
    assert create["Resource"] == [
        *subnets,
        *(f"{ec2}:security-group/{g}" for g in env.network.security_groups),
        f"{ec2}:network-interface/*",
    ]
    manage = by_sid["ManageJobInterfacesInProjectSubnets"]
    assert manage["Resource"] == f"{ec2}:network-interface/*"
    assert manage["Condition"] == {"ArnEquals": {"ec2:Subnet": subnets}}
    assert all(a.startswith("ec2:Describe") for a in by_sid["DescribeNetwork"]["Action"])
    for sid, key, values in (
        ("NoJobInOtherSubnets", "sagemaker:VpcSubnets", list(env.network.subnets)),
        ("NoJobWithOtherSecurityGroups", "sagemaker:VpcSecurityGroupIds", list(env.network.security_groups)),
    ):
        assert by_sid[sid]["Effect"] == "Deny"
        assert by_sid[sid]["Condition"] == {"ForAnyValue:StringNotEquals": {key: values}}
    assert by_sid["NoJobOutsideTheEnvironmentVpc"]["Condition"] == {"Null": {"sagemaker:VpcSubnets": "true"}}
