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
