"""The catalogue of classic multi-account mistakes: each misconfiguration fails in the sandbox with the
error code AWS returns, and its corrected twin succeeds. Every principal here is a role created as AWS
would need it (trust + identity policy) and acts through real boto3 clients against the sandbox server.
"""

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

DEV, PROD, REGISTRY, JENKINS = "111111111111", "222222222222", "333333333333", "444444444444"
REGION = "us-east-1"
GROUP = "mlops-demo-models"
GROUP_ARN = f"arn:aws:sagemaker:{REGION}:{REGISTRY}:model-package-group/{GROUP}"
PACKAGES = f"arn:aws:sagemaker:{REGION}:{REGISTRY}:model-package/{GROUP}/*"
ARTIFACTS = "mlops-demo-registry-artifacts"
_CONFIG = Config(region_name=REGION, retries={"max_attempts": 1})


class Accounts:
    """Admin clients per account and a way to act as a freshly created role."""

    def __init__(self, status):
        self.endpoint = status["endpoint"]
        self.creds = {a["account_id"]: a["credentials"] for a in status["accounts"]}

    def admin(self, account, service):
        return boto3.client(service, endpoint_url=self.endpoint, config=_CONFIG, **self.creds[account])

    def role(self, account, name, statements, trust=None, **assume):
        """Create role `name` in `account` allowed `statements`, and return a session acting as it."""
        iam = self.admin(account, "iam")
        trust = trust or {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        if statements:
            iam.put_role_policy(RoleName=name, PolicyName="permissions",
                                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
        return self.assume(self.admin(account, "sts"), f"arn:aws:iam::{account}:role/{name}", **assume)

    def assume(self, sts, role_arn, **kwargs):
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="parity", **kwargs)["Credentials"]
        return Session(self.endpoint, creds)


class Session:
    def __init__(self, endpoint, creds):
        self.endpoint = endpoint
        self.creds = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                      "aws_session_token": creds["SessionToken"]}

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, config=_CONFIG, **self.creds)


@pytest.fixture
def aws(sandbox):
    return Accounts(sandbox)


def error_code(call, *args, **kwargs):
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    return info.value.response["Error"]["Code"]


def allow(actions, resources="*", **extra):
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


# -- STS: trust policies -----------------------------------------------------------------------------
def _jenkins_agent(aws):
    """The Jenkins agent's own role in the Jenkins account, allowed to assume deploy roles anywhere."""
    return aws.role(JENKINS, "jenkins-agent", [allow("sts:AssumeRole", "arn:aws:iam::*:role/cross-account-jenkins-role")])


def _deploy_role(aws, trusted, external_id=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    aws.admin(PROD, "iam").create_role(RoleName="cross-account-jenkins-role", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [statement]}))
    return f"arn:aws:iam::{PROD}:role/cross-account-jenkins-role"


@pytest.mark.parametrize("trusted, allowed", [
    (f"arn:aws:iam::{DEV}:root", False),                        # the classic: trusts dev, Jenkins is elsewhere
    (f"arn:aws:iam::{JENKINS}:role/jenkins-agnet", False),      # a typo in the agent's role name
    (f"arn:aws:iam::{JENKINS}:role/jenkins-agent", True),
    (f"arn:aws:iam::{JENKINS}:root", True),
])
def test_trust_policy_must_trust_the_jenkins_account(aws, trusted, allowed):
    """AssumeRole across accounts needs the role's trust policy to name the caller (its role ARN or its
    account) AND the caller's own policy to allow sts:AssumeRole; otherwise AccessDenied.
    AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_common-scenarios_aws-accounts.html and
    https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html (Errors: AccessDenied)."""
    agent = _jenkins_agent(aws)
    role_arn = _deploy_role(aws, trusted)
    sts = agent.client("sts")
    if allowed:
        identity = aws.assume(sts, role_arn).client("sts").get_caller_identity()
        assert identity["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/cross-account-jenkins-role/parity"
    else:
        with pytest.raises(ClientError) as info:
            sts.assume_role(RoleArn=role_arn, RoleSessionName="parity")
        assert info.value.response["Error"]["Code"] == "AccessDenied"
        assert info.value.response["Error"]["Message"] == (
            f"User: arn:aws:sts::{JENKINS}:assumed-role/jenkins-agent/parity is not authorized to perform: "
            f"sts:AssumeRole on resource: {role_arn}")


@pytest.mark.parametrize("external_id, allowed", [(None, False), ("mlops-demo-dev-deploy", False),
                                                  ("mlops-demo-prod-deploy", True)])
def test_external_id_must_match_the_trust_condition(aws, external_id, allowed):
    """A trust policy with `sts:ExternalId` refuses AssumeRole without the exact ExternalId (the
    confused-deputy guard). AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-user_externalid.html"""
    agent = _jenkins_agent(aws)
    role_arn = _deploy_role(aws, f"arn:aws:iam::{JENKINS}:role/jenkins-agent", external_id="mlops-demo-prod-deploy")
    kwargs = {"ExternalId": external_id} if external_id else {}
    if allowed:
        assert aws.assume(agent.client("sts"), role_arn, **kwargs).client("sts").get_caller_identity()["Account"] == PROD
    else:
        assert error_code(agent.client("sts").assume_role, RoleArn=role_arn, RoleSessionName="parity", **kwargs) == "AccessDenied"


def test_caller_needs_its_own_permission_to_assume_a_cross_account_role(aws):
    """Cross-account AssumeRole needs BOTH sides: the target's trust policy and the caller's identity
    policy. A Jenkins agent role without sts:AssumeRole is refused even though prod trusts it.
    AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html"""
    bare = aws.role(JENKINS, "jenkins-agent", [allow("s3:ListAllMyBuckets")])
    role_arn = _deploy_role(aws, f"arn:aws:iam::{JENKINS}:role/jenkins-agent")
    assert error_code(bare.client("sts").assume_role, RoleArn=role_arn, RoleSessionName="parity") == "AccessDenied"
    aws.admin(JENKINS, "iam").put_role_policy(RoleName="jenkins-agent", PolicyName="assume", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("sts:AssumeRole", role_arn)]}))
    assert aws.assume(bare.client("sts"), role_arn).client("sts").get_caller_identity()["Account"] == PROD


def test_session_tags_need_sts_tag_session_in_the_trust_policy(aws):
    """Passing session tags requires sts:TagSession in the trust policy as well as sts:AssumeRole.
    AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_permissions-required"""
    agent = aws.role(JENKINS, "jenkins-agent", [allow(["sts:AssumeRole", "sts:TagSession"], "*")])
    role_arn = _deploy_role(aws, f"arn:aws:iam::{JENKINS}:role/jenkins-agent")
    tags = [{"Key": "build", "Value": "42"}]
    assert error_code(agent.client("sts").assume_role, RoleArn=role_arn, RoleSessionName="parity", Tags=tags) == "AccessDenied"
    aws.admin(PROD, "iam").update_assume_role_policy(RoleName="cross-account-jenkins-role", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{JENKINS}:role/jenkins-agent"},
                                                 "Action": ["sts:AssumeRole", "sts:TagSession"]}]}))
    assert aws.assume(agent.client("sts"), role_arn, Tags=tags).client("sts").get_caller_identity()["Account"] == PROD


# -- IAM identity policies on real resource ARNs ------------------------------------------------------
def test_identity_policy_scoped_to_a_name_prefix_is_enforced_on_the_resource_arn(aws):
    """Identity policies are evaluated against the resource's ARN, not "*": a role allowed
    sns:CreateTopic/Publish on `mlops-demo-*` topics cannot create `other-team-alerts`, and a caller with
    no policy at all is refused. AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html"""
    scoped = aws.role(PROD, "notifier", [allow(["sns:CreateTopic", "sns:Publish"], f"arn:aws:sns:{REGION}:{PROD}:mlops-demo-*")])
    sns = scoped.client("sns")
    assert error_code(sns.create_topic, Name="other-team-alerts") == "AuthorizationError"
    topic = sns.create_topic(Name="mlops-demo-alerts")["TopicArn"]
    sns.publish(TopicArn=topic, Message="drift")
    nobody = aws.role(PROD, "nobody", [])
    assert error_code(nobody.client("sns").publish, TopicArn=topic, Message="x") == "AuthorizationError"
