"""Cross-account sessions against the sandbox: who acts, in which account, cached, chained like Jenkins."""

import pytest

from mlops_core.session import session_name


def test_session_names_carry_the_jenkins_build_tag(monkeypatch):
    monkeypatch.setenv("BUILD_TAG", "jenkins-mlops-deploy-42")
    assert session_name("deploy-prod") == "jenkins-mlops-deploy-42@deploy-prod"


def test_session_names_fit_what_sts_accepts(monkeypatch):
    monkeypatch.setenv("BUILD_TAG", "jenkins/folder with space/" + "x" * 80)
    name = session_name("deploy-prod")
    assert len(name) == 64
    assert all(c.isalnum() or c in "_+=,.@-" for c in name)


def test_base_session_acts_in_the_environment_account(sessions, prod_env):
    s = sessions(prod_env)
    assert s.caller_account() == "222222222222"
    assert s.workload() is s.base()


def _create_role(sessions_obj, account_id, name, trust):
    import json

    iam = sessions_obj.client("iam", sessions_obj.in_account(account_id))
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))


def test_assumed_role_sessions_are_cached_and_act_in_the_target_account(sessions, prod_env):
    s = sessions(prod_env)
    _create_role(
        s,
        "333333333333",
        "mlops-demo-approver",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "sts:AssumeRole"}
            ],
        },
    )
    approver = s.as_role("approver", purpose="approve")
    assert s.as_role("approver", purpose="approve") is approver
    identity = s.client("sts", approver).get_caller_identity()
    assert identity["Account"] == "333333333333"
    assert identity["Arn"].startswith("arn:aws:sts::333333333333:assumed-role/mlops-demo-approver/")


def test_each_client_signs_as_its_own_role_though_all_share_the_service_models(sessions, prod_env):
    """A command's sessions read botocore's service models through one loader (each model parsed once a
    process), never each other's credentials: clients of two roles, created and called interleaved, act
    as the role each was made for, and IAM allows or refuses each call accordingly."""
    import json

    from botocore.exceptions import ClientError

    s = sessions(prod_env)
    registry, trust_root = (
        "333333333333",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "sts:AssumeRole"}
            ],
        },
    )
    for role in ("bucket-lister", "no-permissions"):
        _create_role(s, registry, role, trust_root)
    s.client("iam", s.in_account(registry)).put_role_policy(
        RoleName="bucket-lister",
        PolicyName="list",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
            }
        ),
    )
    lister = s.assume(f"arn:aws:iam::{registry}:role/bucket-lister", purpose="list", source=s.in_account(registry))
    lister_s3 = s.client("s3", lister)
    nobody = s.assume(f"arn:aws:iam::{registry}:role/no-permissions", purpose="none", source=s.in_account(registry))
    nobody_s3, nobody_sts = s.client("s3", nobody), s.client("sts", nobody)
    lister_sts = s.client("sts", lister)

    loaders = {id(x._session.get_component("data_loader")) for x in (s.base(), s.in_account(registry), lister, nobody)}
    assert len(loaders) == 1
    assert "/bucket-lister/" in lister_sts.get_caller_identity()["Arn"]
    assert "/no-permissions/" in nobody_sts.get_caller_identity()["Arn"]
    with pytest.raises(ClientError) as refused:
        nobody_s3.list_buckets()
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "Buckets" in lister_s3.list_buckets()
    assert "/bucket-lister/" in lister_sts.get_caller_identity()["Arn"]
    assert s.client("sts", s.base()).get_caller_identity()["Account"] == "222222222222"


def test_jenkins_credentials_chain_through_the_cross_account_role(sessions, prod_env, monkeypatch):
    """A caller from the Jenkins account (as `withAWS` leaves in AWS_* variables) reaches prod via
    cross-account-jenkins-role, with the ExternalId and a session name carrying the build."""
    import json

    s = sessions(prod_env)
    _create_role(
        s,
        "222222222222",
        "cross-account-jenkins-role",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": prod_env.jenkins.principal_arn},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": prod_env.jenkins.external_id}},
                }
            ],
        },
    )
    # the trust policy names the agent's role, so the caller must be that role (as on a real Jenkins
    # agent), not the Jenkins account's admin: the sandbox enforces trust policies like AWS
    admin = s.in_account("444444444444")
    _create_role(
        s,
        "444444444444",
        "jenkins-agent",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444444444444:root"}, "Action": "sts:AssumeRole"}
            ],
        },
    )
    s.client("iam", admin).put_role_policy(
        RoleName="jenkins-agent",
        PolicyName="deploy",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": "arn:aws:iam::*:role/cross-account-jenkins-role",
                    }
                ],
            }
        ),
    )
    jenkins = s.client("sts", admin).assume_role(
        RoleArn=prod_env.jenkins.principal_arn, RoleSessionName="jenkins-agent"
    )["Credentials"]
    monkeypatch.setenv("MLOPS_SANDBOX_CREDENTIALS", "env")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", jenkins["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", jenkins["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", jenkins["SessionToken"])
    monkeypatch.setenv("BUILD_TAG", "jenkins-mlops-7")

    chained = sessions(prod_env)
    assert chained.caller_account() == "444444444444"
    identity = chained.client("sts", chained.workload()).get_caller_identity()
    assert identity["Account"] == "222222222222"
    assert identity["Arn"] == (
        "arn:aws:sts::222222222222:assumed-role/cross-account-jenkins-role/jenkins-mlops-7@deploy-prod"
    )
    assert chained.workload() is chained.workload()


def test_unknown_profile_label_is_a_config_error(sessions, prod_env):
    from mlops_core.errors import ConfigError

    with pytest.raises(ConfigError, match="--profile: 'staging' is not a sandbox account"):
        sessions(prod_env, profile="staging").base()
