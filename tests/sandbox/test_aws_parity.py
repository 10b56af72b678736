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
        trust = trust or {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}
            ],
        }
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        if statements:
            iam.put_role_policy(
                RoleName=name,
                PolicyName="permissions",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            )
        return self.assume(self.admin(account, "sts"), f"arn:aws:iam::{account}:role/{name}", **assume)

    def assume(self, sts, role_arn, **kwargs):
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="parity", **kwargs)["Credentials"]
        return Session(self.endpoint, creds)


class Session:
    def __init__(self, endpoint, creds):
        self.endpoint = endpoint
        self.creds = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }

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
    return aws.role(
        JENKINS, "jenkins-agent", [allow("sts:AssumeRole", "arn:aws:iam::*:role/cross-account-jenkins-role")]
    )


def _deploy_role(aws, trusted, external_id=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    aws.admin(PROD, "iam").create_role(
        RoleName="cross-account-jenkins-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    return f"arn:aws:iam::{PROD}:role/cross-account-jenkins-role"


@pytest.mark.parametrize(
    "trusted, allowed",
    [
        (f"arn:aws:iam::{DEV}:root", False),  # the classic: trusts dev, Jenkins is elsewhere
        (f"arn:aws:iam::{JENKINS}:role/jenkins-agnet", False),  # a typo in the agent's role name
        (f"arn:aws:iam::{JENKINS}:role/jenkins-agent", True),
        (f"arn:aws:iam::{JENKINS}:root", True),
    ],
)
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
            f"sts:AssumeRole on resource: {role_arn}"
        )


@pytest.mark.parametrize(
    "external_id, allowed", [(None, False), ("mlops-demo-dev-deploy", False), ("mlops-demo-prod-deploy", True)]
)
def test_external_id_must_match_the_trust_condition(aws, external_id, allowed):
    """A trust policy with `sts:ExternalId` refuses AssumeRole without the exact ExternalId (the
    confused-deputy guard). AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-user_externalid.html"""
    agent = _jenkins_agent(aws)
    role_arn = _deploy_role(aws, f"arn:aws:iam::{JENKINS}:role/jenkins-agent", external_id="mlops-demo-prod-deploy")
    kwargs = {"ExternalId": external_id} if external_id else {}
    if allowed:
        assert (
            aws.assume(agent.client("sts"), role_arn, **kwargs).client("sts").get_caller_identity()["Account"] == PROD
        )
    else:
        assert (
            error_code(agent.client("sts").assume_role, RoleArn=role_arn, RoleSessionName="parity", **kwargs)
            == "AccessDenied"
        )


def test_caller_needs_its_own_permission_to_assume_a_cross_account_role(aws):
    """Cross-account AssumeRole needs BOTH sides: the target's trust policy and the caller's identity
    policy. A Jenkins agent role without sts:AssumeRole is refused even though prod trusts it.
    AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html"""
    bare = aws.role(JENKINS, "jenkins-agent", [allow("s3:ListAllMyBuckets")])
    role_arn = _deploy_role(aws, f"arn:aws:iam::{JENKINS}:role/jenkins-agent")
    assert error_code(bare.client("sts").assume_role, RoleArn=role_arn, RoleSessionName="parity") == "AccessDenied"
    aws.admin(JENKINS, "iam").put_role_policy(
        RoleName="jenkins-agent",
        PolicyName="assume",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow("sts:AssumeRole", role_arn)]}),
    )
    assert aws.assume(bare.client("sts"), role_arn).client("sts").get_caller_identity()["Account"] == PROD


def test_session_tags_need_sts_tag_session_in_the_trust_policy(aws):
    """Passing session tags requires sts:TagSession in the trust policy as well as sts:AssumeRole.
    AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_permissions-required"""
    agent = aws.role(JENKINS, "jenkins-agent", [allow(["sts:AssumeRole", "sts:TagSession"], "*")])
    role_arn = _deploy_role(aws, f"arn:aws:iam::{JENKINS}:role/jenkins-agent")
    tags = [{"Key": "build", "Value": "42"}]
    assert (
        error_code(agent.client("sts").assume_role, RoleArn=role_arn, RoleSessionName="parity", Tags=tags)
        == "AccessDenied"
    )
    aws.admin(PROD, "iam").update_assume_role_policy(
        RoleName="cross-account-jenkins-role",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{JENKINS}:role/jenkins-agent"},
                        "Action": ["sts:AssumeRole", "sts:TagSession"],
                    }
                ],
            }
        ),
    )
    assert aws.assume(agent.client("sts"), role_arn, Tags=tags).client("sts").get_caller_identity()["Account"] == PROD


# -- IAM identity policies on real resource ARNs ------------------------------------------------------
def test_identity_policy_scoped_to_a_name_prefix_is_enforced_on_the_resource_arn(aws):
    """Identity policies are evaluated against the resource's ARN, not "*": a role allowed
    sns:CreateTopic/Publish on `mlops-demo-*` topics cannot create `other-team-alerts`, and a caller with
    no policy at all is refused. AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html"""
    scoped = aws.role(
        PROD, "notifier", [allow(["sns:CreateTopic", "sns:Publish"], f"arn:aws:sns:{REGION}:{PROD}:mlops-demo-*")]
    )
    sns = scoped.client("sns")
    assert error_code(sns.create_topic, Name="other-team-alerts") == "AuthorizationError"
    topic = sns.create_topic(Name="mlops-demo-alerts")["TopicArn"]
    sns.publish(TopicArn=topic, Message="drift")
    nobody = aws.role(PROD, "nobody", [])
    assert error_code(nobody.client("sns").publish, TopicArn=topic, Message="x") == "AuthorizationError"


# -- SageMaker model registry across accounts ---------------------------------------------------------
REGISTER = [
    "sagemaker:CreateModelPackage",
    "sagemaker:DescribeModelPackage",
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:ListModelPackages",
]
INFERENCE = {
    "Containers": [
        {
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "ModelDataUrl": f"s3://{ARTIFACTS}/dev/model.tar.gz",
        }
    ],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}


def _group(aws, statements):
    sm = aws.admin(REGISTRY, "sagemaker")
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    sm.put_model_package_group_policy(
        ModelPackageGroupName=GROUP, ResourcePolicy=json.dumps({"Version": "2012-10-17", "Statement": statements})
    )
    return sm


def _grant(sid, principals, actions):
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": actions,
        "Resource": [GROUP_ARN, PACKAGES],
    }


def _execution_role(aws, account):
    return aws.role(account, "mlops-demo-sagemaker-execution", [allow(REGISTER, [GROUP_ARN, PACKAGES])])


def _register(session):
    return session.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP_ARN,
        InferenceSpecification=INFERENCE,
        CustomerMetadataProperties={"auc": "0.97", "git_commit": "abc123"},
    )["ModelPackageArn"]


@pytest.mark.parametrize("granted", [[DEV], [DEV, PROD]])
def test_group_policy_missing_prod_means_prod_cannot_register(aws, granted):
    """CreateModelPackage with another account's group ARN needs the group's resource policy to allow
    the caller; the package is then created in the registry account. AWS:
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-version.html (cross-account) and
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PutModelPackageGroupPolicy.html"""
    sm = _group(
        aws, [_grant("Register", [f"arn:aws:iam::{a}:role/mlops-demo-sagemaker-execution" for a in granted], REGISTER)]
    )
    prod = _execution_role(aws, PROD)
    if PROD not in granted:
        assert error_code(_register, prod) == "AccessDeniedException"
        assert sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []
    else:
        arn = _register(prod)
        assert arn == f"arn:aws:sagemaker:{REGION}:{REGISTRY}:model-package/{GROUP}/1"
        described = sm.describe_model_package(ModelPackageName=arn)
        assert described["ModelApprovalStatus"] == "PendingManualApproval"  # AWS's default, moto omitted it
        assert described["CustomerMetadataProperties"]["auc"] == "0.97"


@pytest.mark.parametrize("granted", [[PROD], [PROD, DEV]])
def test_group_policy_missing_dev_means_dev_cannot_list(aws, granted):
    """ListModelPackages / DescribeModelPackageGroup on another account's group ARN are allowed only by
    its resource policy (moto silently listed the caller's own account and returned []). AWS:
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-version.html"""
    _group(aws, [_grant("Read", [f"arn:aws:iam::{a}:root" for a in granted], REGISTER)])
    _register(_execution_role(aws, PROD))
    dev = aws.role(DEV, "data-scientist", [allow(REGISTER, [GROUP_ARN, PACKAGES])])
    sm = dev.client("sagemaker")
    if DEV not in granted:
        assert error_code(sm.list_model_packages, ModelPackageGroupName=GROUP_ARN) == "AccessDeniedException"
        assert error_code(sm.describe_model_package_group, ModelPackageGroupName=GROUP_ARN) == "AccessDeniedException"
    else:
        listed = sm.list_model_packages(ModelPackageGroupName=GROUP_ARN)["ModelPackageSummaryList"]
        assert [p["ModelPackageArn"].split(":")[4] for p in listed] == [REGISTRY]
        assert sm.describe_model_package_group(ModelPackageGroupName=GROUP_ARN)["ModelPackageGroupArn"] == GROUP_ARN


@pytest.mark.parametrize("approver_in_policy", [False, True])
def test_approver_absent_from_group_policy_cannot_approve(aws, approver_in_policy):
    """The approver role holds no IAM permission of its own here: only the group policy can grant it
    UpdateModelPackage (a same-account resource policy naming the role suffices, AWS evaluation logic:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html). An
    approval-only update must keep CustomerMetadataProperties (moto wiped them) and store the
    ApprovalDescription (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateModelPackage.html)."""
    approver_arn = f"arn:aws:iam::{REGISTRY}:role/mlops-demo-approver"
    named = approver_arn if approver_in_policy else f"arn:aws:iam::{REGISTRY}:role/mlops-demo-reviewer"
    _group(
        aws,
        [
            _grant("Register", [f"arn:aws:iam::{DEV}:root"], REGISTER),
            _grant("Approve", [named], ["sagemaker:UpdateModelPackage", "sagemaker:DescribeModelPackage"]),
        ],
    )
    arn = _register(_execution_role(aws, DEV))
    approver = aws.role(REGISTRY, "mlops-demo-approver", [])
    approve = lambda: approver.client("sagemaker").update_model_package(  # noqa: E731
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="AUC 0.97 > 0.9, reviewed by jane"
    )
    if not approver_in_policy:
        assert error_code(approve) == "AccessDeniedException"
        return
    approve()
    described = aws.admin(REGISTRY, "sagemaker").describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "AUC 0.97 > 0.9, reviewed by jane"
    assert described["CustomerMetadataProperties"] == {"auc": "0.97", "git_commit": "abc123"}


def test_explicit_deny_in_group_policy_stops_workload_accounts_approving(aws):
    """An explicit Deny in the resource policy beats the workload role's own Allow: the dev execution
    role can register and read, but approving its own model is AccessDenied. AWS:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html#policy-eval-denyallow"""
    dev_role = f"arn:aws:iam::{DEV}:role/mlops-demo-sagemaker-execution"
    _group(
        aws,
        [
            _grant("Register", [dev_role], [*REGISTER, "sagemaker:UpdateModelPackage"]),
            {
                "Sid": "NoSelfApproval",
                "Effect": "Deny",
                "Principal": {"AWS": [dev_role]},
                "Action": "sagemaker:UpdateModelPackage",
                "Resource": [GROUP_ARN, PACKAGES],
            },
        ],
    )
    dev = aws.role(DEV, "mlops-demo-sagemaker-execution", [allow([*REGISTER, "sagemaker:UpdateModelPackage"], "*")])
    arn = _register(dev)
    sm = dev.client("sagemaker")
    assert sm.describe_model_package(ModelPackageName=arn)["ModelPackageGroupName"] == GROUP
    assert (
        error_code(sm.update_model_package, ModelPackageArn=arn, ModelApprovalStatus="Approved")
        == "AccessDeniedException"
    )
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"


# -- KMS across accounts ------------------------------------------------------------------------------
def _key_policy(*statements, root_delegation=True, account=DEV):
    base = (
        [
            {
                "Sid": "EnableIamPolicies",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ]
        if root_delegation
        else []
    )
    return json.dumps({"Version": "2012-10-17", "Statement": base + list(statements)})


def _dev_key(aws, *statements, root_delegation=True):
    kms = aws.admin(DEV, "kms")
    policy = _key_policy(*statements, root_delegation=root_delegation)
    if not root_delegation:
        # AWS refuses a policy that would lock the creator out unless told to skip that check
        return kms.create_key(Policy=policy, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["Arn"]
    return kms.create_key(Policy=policy)["KeyMetadata"]["Arn"]


PROD_READS = {
    "Sid": "ProdDecrypts",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{PROD}:root"},
    "Action": ["kms:Decrypt", "kms:DescribeKey"],
    "Resource": "*",
}


@pytest.mark.parametrize("key_grants_prod", [False, True])
def test_dev_key_policy_missing_prod_means_prod_cannot_decrypt(aws, key_grants_prod):
    """A key ARN from another account resolves to that account's key (moto answered NotFound); using
    it needs the key policy to allow the caller's account AND the caller's IAM policy. AWS:
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html"""
    key_arn = _dev_key(aws, *([PROD_READS] if key_grants_prod else []))
    blob = aws.admin(DEV, "kms").encrypt(KeyId=key_arn, Plaintext=b"model weights key")["CiphertextBlob"]
    prod = aws.role(
        PROD,
        "mlops-demo-sagemaker-execution",
        [allow(["kms:Decrypt", "kms:DescribeKey"], f"arn:aws:kms:*:{DEV}:key/*")],
    )
    kms = prod.client("kms")
    if not key_grants_prod:
        assert error_code(kms.decrypt, CiphertextBlob=blob) == "AccessDeniedException"
        assert error_code(kms.describe_key, KeyId=key_arn) == "AccessDeniedException"
    else:
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"model weights key"
        assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["Arn"] == key_arn
        assert error_code(kms.encrypt, KeyId=key_arn, Plaintext=b"x") == "AccessDeniedException"  # only decrypt granted


def test_key_policy_grant_to_another_account_still_needs_that_accounts_iam_policy(aws):
    """Cross-account key use is evaluated on both sides: the dev key policy trusts the prod account,
    but a prod role whose own policy does not allow kms:Decrypt is refused. AWS:
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html#cross-account-give-permission"""
    key_arn = _dev_key(aws, PROD_READS)
    blob = aws.admin(DEV, "kms").encrypt(KeyId=key_arn, Plaintext=b"secret")["CiphertextBlob"]
    no_kms = aws.role(PROD, "reporting", [allow("s3:ListAllMyBuckets")])
    assert error_code(no_kms.client("kms").decrypt, CiphertextBlob=blob, KeyId=key_arn) == "AccessDeniedException"
    aws.admin(PROD, "iam").put_role_policy(
        RoleName="reporting",
        PolicyName="kms",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow("kms:Decrypt", key_arn)]}),
    )
    assert no_kms.client("kms").decrypt(CiphertextBlob=blob, KeyId=key_arn)["Plaintext"] == b"secret"


@pytest.mark.parametrize("root_delegation", [False, True])
def test_iam_policy_alone_cannot_use_a_key_whose_policy_does_not_delegate_to_the_account(aws, root_delegation):
    """Unlike other resources, a KMS key is governed by its key policy: without the account-root
    statement, IAM policies in the same account grant nothing. AWS:
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam"""
    trainer_arn = f"arn:aws:iam::{DEV}:role/trainer"
    key_arn = _dev_key(
        aws,
        {
            "Sid": "Admin",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{DEV}:user/sandbox-admin"},
            "Action": "kms:*",
            "Resource": "*",
        },
        root_delegation=root_delegation,
    )
    trainer = aws.role(DEV, "trainer", [allow(["kms:Encrypt", "kms:GenerateDataKey"], key_arn)])
    kms = trainer.client("kms")
    if not root_delegation:
        assert error_code(kms.generate_data_key, KeyId=key_arn, KeySpec="AES_256") == "AccessDeniedException"
        # naming the role in the key policy is enough on its own, in the key's account
        aws.admin(DEV, "kms").put_key_policy(
            KeyId=key_arn,
            PolicyName="default",
            Policy=_key_policy(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{DEV}:user/sandbox-admin"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": trainer_arn},
                    "Action": "kms:GenerateDataKey",
                    "Resource": "*",
                },
                root_delegation=False,
            ),
            BypassPolicyLockoutSafetyCheck=True,
        )
    assert len(kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")["Plaintext"]) == 32


@pytest.mark.parametrize("root_delegation", [False, True])
def test_key_policy_that_locks_its_author_out_is_refused(aws, root_delegation):
    """CreateKey/PutKeyPolicy refuse a policy under which the caller could never change the key policy
    again (a policy naming only the prod account, no root statement): MalformedPolicyDocumentException,
    unless BypassPolicyLockoutSafetyCheck. AWS:
    https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html (BypassPolicyLockoutSafetyCheck)"""
    kms = aws.admin(DEV, "kms")
    policy = _key_policy(PROD_READS, root_delegation=root_delegation)
    if root_delegation:
        key_arn = kms.create_key(Policy=policy)["KeyMetadata"]["Arn"]
        kms.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=policy)
    else:
        assert error_code(kms.create_key, Policy=policy) == "MalformedPolicyDocumentException"
        key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        assert (
            error_code(kms.put_key_policy, KeyId=key_arn, PolicyName="default", Policy=policy)
            == "MalformedPolicyDocumentException"
        )


def test_disabled_and_pending_deletion_keys_refuse_to_work(aws):
    """Cryptographic operations on a disabled key fail with DisabledException, on a key pending
    deletion with KMSInvalidStateException; re-enabling restores them. AWS:
    https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html"""
    kms = aws.admin(DEV, "kms")
    key_arn = _dev_key(aws)
    blob = kms.encrypt(KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key_arn)
    assert error_code(kms.encrypt, KeyId=key_arn, Plaintext=b"x") == "DisabledException"
    assert error_code(kms.decrypt, CiphertextBlob=blob) == "DisabledException"
    assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "Disabled"  # still describable
    kms.enable_key(KeyId=key_arn)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    kms.schedule_key_deletion(KeyId=key_arn, PendingWindowInDays=7)
    assert error_code(kms.generate_data_key, KeyId=key_arn, KeySpec="AES_256") == "KMSInvalidStateException"


# -- S3: bucket policies and SSE-KMS ------------------------------------------------------------------
DEV_BUCKET = "mlops-demo-dev-artifacts"
PROD_EXECUTION = f"arn:aws:iam::{PROD}:role/mlops-demo-sagemaker-execution"


def _bucket(aws, account, name, statements=(), key_arn=None):
    s3 = aws.admin(account, "s3")
    s3.create_bucket(Bucket=name)
    if key_arn:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}
                ]
            },
        )
    if statements:
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    return s3


def _read_grant(principal, bucket=DEV_BUCKET):
    return {
        "Sid": "ProdReadsModels",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/models/*",
    }


def _prod_reader(aws, extra=()):
    return aws.role(
        PROD,
        "mlops-demo-sagemaker-execution",
        [
            allow("s3:GetObject", f"arn:aws:s3:::{DEV_BUCKET}/*"),
            allow(["kms:Decrypt", "kms:DescribeKey"], f"arn:aws:kms:*:{DEV}:key/*"),
            *extra,
        ],
    )


@pytest.mark.parametrize("key_grants_prod", [False, True])
def test_dev_key_policy_missing_prod_means_prod_cannot_read_the_model_artifact(aws, key_grants_prod):
    """An object written under bucket-default SSE-KMS records its key; reading it needs kms:Decrypt on
    that key for the reader, so prod fails exactly when the dev key policy does not grant prod, even
    though the bucket policy lets it read (moto stored plaintext readable by anyone). AWS:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html and
    https://repost.aws/knowledge-center/cross-account-access-denied-error-s3 (KMS-encrypted objects)."""
    key_arn = _dev_key(aws, *([PROD_READS] if key_grants_prod else []))
    s3 = _bucket(aws, DEV, DEV_BUCKET, [_read_grant(PROD_EXECUTION)], key_arn=key_arn)
    s3.put_object(Bucket=DEV_BUCKET, Key="models/1/model.tar.gz", Body=b"weights")
    head = s3.head_object(Bucket=DEV_BUCKET, Key="models/1/model.tar.gz")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    prod = _prod_reader(aws).client("s3")
    if not key_grants_prod:
        assert error_code(prod.get_object, Bucket=DEV_BUCKET, Key="models/1/model.tar.gz") == "AccessDenied"
    else:
        assert prod.get_object(Bucket=DEV_BUCKET, Key="models/1/model.tar.gz")["Body"].read() == b"weights"


@pytest.mark.parametrize("bucket_grants_prod", [False, True])
def test_cross_account_read_needs_the_bucket_policy_as_well_as_the_readers_policy(aws, bucket_grants_prod):
    """Across accounts S3 needs both the bucket policy and the caller's identity policy to allow
    (a bucket policy granting only the dev role leaves prod out). AWS:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-walkthroughs-managing-access-example2.html"""
    grantee = PROD_EXECUTION if bucket_grants_prod else f"arn:aws:iam::{DEV}:role/mlops-demo-sagemaker-execution"
    s3 = _bucket(aws, DEV, DEV_BUCKET, [_read_grant(grantee)])
    s3.put_object(Bucket=DEV_BUCKET, Key="models/baseline.json", Body=b"{}")
    prod = _prod_reader(aws).client("s3")
    if bucket_grants_prod:
        assert prod.get_object(Bucket=DEV_BUCKET, Key="models/baseline.json")["Body"].read() == b"{}"
        assert error_code(prod.put_object, Bucket=DEV_BUCKET, Key="models/x", Body=b"x") == "AccessDenied"
    else:
        assert error_code(prod.get_object, Bucket=DEV_BUCKET, Key="models/baseline.json") == "AccessDenied"


DENY_UNENCRYPTED = {
    "Sid": "DenyUnencryptedPuts",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:PutObject",
    "Resource": f"arn:aws:s3:::{ARTIFACTS}/*",
    "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
}


def test_bucket_policy_denying_unencrypted_puts(aws):
    """A Deny on s3:PutObject unless `s3:x-amz-server-side-encryption` is aws:kms refuses a plain put
    and accepts one asking for SSE-KMS; the object records the full key ARN even when the request named
    an alias. AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms"""
    kms = aws.admin(REGISTRY, "kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/mlops-demo-registry", TargetKeyId=key_arn)
    _bucket(aws, REGISTRY, ARTIFACTS, [DENY_UNENCRYPTED])
    writer = aws.role(
        REGISTRY,
        "publisher",
        [allow("s3:PutObject", f"arn:aws:s3:::{ARTIFACTS}/*"), allow("kms:GenerateDataKey", key_arn)],
    ).client("s3")
    assert error_code(writer.put_object, Bucket=ARTIFACTS, Key="prod/model.tar.gz", Body=b"w") == "AccessDenied"
    writer.put_object(
        Bucket=ARTIFACTS,
        Key="prod/model.tar.gz",
        Body=b"w",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId="alias/mlops-demo-registry",
    )
    head = aws.admin(REGISTRY, "s3").head_object(Bucket=ARTIFACTS, Key="prod/model.tar.gz")
    assert head["SSEKMSKeyId"] == key_arn


def test_bucket_policy_pinning_the_kms_key_refuses_another_key(aws):
    """`s3:x-amz-server-side-encryption-aws-kms-key-id` pins puts to the registry key: prod encrypting
    with its own key is refused, with the registry key accepted (and that needs GenerateDataKey granted
    to prod by the registry key policy). AWS:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-policies.html (SSE-KMS key condition)."""
    registry_key = aws.admin(REGISTRY, "kms").create_key(
        Policy=_key_policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": PROD_EXECUTION},
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": "*",
            },
            account=REGISTRY,
        )
    )["KeyMetadata"]["Arn"]
    prod_key = aws.admin(PROD, "kms").create_key()["KeyMetadata"]["Arn"]
    _bucket(
        aws,
        REGISTRY,
        ARTIFACTS,
        [
            {
                "Sid": "ProdWrites",
                "Effect": "Allow",
                "Principal": {"AWS": PROD_EXECUTION},
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{ARTIFACTS}/prod/*",
            },
            {
                "Sid": "OnlyRegistryKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{ARTIFACTS}/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": registry_key}},
            },
        ],
    )
    prod = aws.role(
        PROD,
        "mlops-demo-sagemaker-execution",
        [
            allow("s3:PutObject", f"arn:aws:s3:::{ARTIFACTS}/prod/*"),
            allow(["kms:GenerateDataKey", "kms:Decrypt"], [prod_key, registry_key]),
        ],
    ).client("s3")

    def put(key):
        return prod.put_object(
            Bucket=ARTIFACTS,
            Key="prod/model.tar.gz",
            Body=b"w",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key,
        )

    assert error_code(put, prod_key) == "AccessDenied"
    put(registry_key)
    assert (
        aws.admin(REGISTRY, "s3").head_object(Bucket=ARTIFACTS, Key="prod/model.tar.gz")["SSEKMSKeyId"] == registry_key
    )


@pytest.mark.parametrize("secure_transport, allowed", [("true", False), ("false", True)])
def test_tls_only_bucket_policy_with_the_condition_inverted_locks_everyone_out(aws, secure_transport, allowed):
    """The TLS-only guard is `Deny ... Bool aws:SecureTransport false`; inverting it to "true" denies
    every (HTTPS) request. The sandbox stands in for AWS's HTTPS endpoints, so its requests count as
    TLS. AWS: https://repost.aws/knowledge-center/s3-bucket-policy-for-config-rule"""
    s3 = _bucket(
        aws,
        DEV,
        DEV_BUCKET,
        [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{DEV_BUCKET}", f"arn:aws:s3:::{DEV_BUCKET}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": secure_transport}},
            }
        ],
    )
    if allowed:
        s3.put_object(Bucket=DEV_BUCKET, Key="data.csv", Body=b"a,b")
        assert s3.get_object(Bucket=DEV_BUCKET, Key="data.csv")["Body"].read() == b"a,b"
    else:
        assert error_code(s3.put_object, Bucket=DEV_BUCKET, Key="data.csv", Body=b"a,b") == "AccessDenied"


def test_key_policy_granting_decrypt_only_via_s3_refuses_direct_decrypt(aws):
    """`kms:ViaService` limits a grant to use through a service: prod may decrypt the dev key's data
    when S3 reads an object for it, not by calling kms:Decrypt itself. AWS:
    https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service"""
    key_arn = _dev_key(
        aws,
        {
            "Sid": "ProdViaS3",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{PROD}:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}},
        },
    )
    s3 = _bucket(aws, DEV, DEV_BUCKET, [_read_grant(PROD_EXECUTION)], key_arn=key_arn)
    s3.put_object(Bucket=DEV_BUCKET, Key="models/m.tar.gz", Body=b"weights")
    blob = aws.admin(DEV, "kms").encrypt(KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"]
    prod = _prod_reader(aws)
    assert prod.client("s3").get_object(Bucket=DEV_BUCKET, Key="models/m.tar.gz")["Body"].read() == b"weights"
    assert error_code(prod.client("kms").decrypt, CiphertextBlob=blob) == "AccessDeniedException"


def test_reading_an_object_whose_key_was_disabled_fails_with_kms_disabled(aws):
    """S3 surfaces KMS's key state: GetObject of an SSE-KMS object under a disabled key fails with
    KMS.DisabledException until the key is enabled again. AWS:
    https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (KMS.DisabledException)."""
    key_arn = _dev_key(aws)
    s3 = _bucket(aws, DEV, DEV_BUCKET, key_arn=key_arn)
    s3.put_object(Bucket=DEV_BUCKET, Key="models/m.tar.gz", Body=b"weights")
    aws.admin(DEV, "kms").disable_key(KeyId=key_arn)
    assert error_code(s3.get_object, Bucket=DEV_BUCKET, Key="models/m.tar.gz") == "KMS.DisabledException"
    aws.admin(DEV, "kms").enable_key(KeyId=key_arn)
    assert s3.get_object(Bucket=DEV_BUCKET, Key="models/m.tar.gz")["Body"].read() == b"weights"


@pytest.mark.parametrize("accounts, allowed", [([DEV], False), ([DEV, PROD], True)])
def test_bucket_policy_with_principal_account_condition(aws, accounts, allowed):
    """`Principal: "*"` narrowed by `aws:PrincipalAccount` admits only the listed accounts. AWS:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalaccount"""
    s3 = _bucket(
        aws,
        DEV,
        DEV_BUCKET,
        [
            {
                "Sid": "OrgAccounts",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{DEV_BUCKET}/*",
                "Condition": {"StringEquals": {"aws:PrincipalAccount": accounts}},
            }
        ],
    )
    s3.put_object(Bucket=DEV_BUCKET, Key="models/card.json", Body=b"{}")
    prod = _prod_reader(aws).client("s3")
    if allowed:
        assert prod.get_object(Bucket=DEV_BUCKET, Key="models/card.json")["Body"].read() == b"{}"
    else:
        assert error_code(prod.get_object, Bucket=DEV_BUCKET, Key="models/card.json") == "AccessDenied"


@pytest.mark.parametrize(
    "passed_to, allowed", [(None, False), ("lambda.amazonaws.com", False), ("sagemaker.amazonaws.com", True)]
)
def test_deploy_role_needs_pass_role_on_the_execution_role_to_upsert_a_pipeline(aws, passed_to, allowed):
    """CreatePipeline hands the execution role to SageMaker, which needs iam:PassRole on that role
    (commonly limited by `iam:PassedToService`); without it AccessDeniedException. AWS:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html and
    https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-pass-role"""
    execution = f"arn:aws:iam::{PROD}:role/mlops-demo-sagemaker-execution"
    statements = [
        allow(
            ["sagemaker:CreatePipeline", "sagemaker:DescribePipeline"],
            f"arn:aws:sagemaker:{REGION}:{PROD}:pipeline/mlops-demo-*",
        )
    ]
    if passed_to:
        statements.append(
            allow("iam:PassRole", execution, Condition={"StringEquals": {"iam:PassedToService": passed_to}})
        )
    deployer = aws.role(PROD, "cross-account-jenkins-role", statements).client("sagemaker")
    create = lambda: deployer.create_pipeline(  # noqa: E731
        PipelineName="mlops-demo-train",
        RoleArn=execution,
        ClientRequestToken="parity-create-pipeline-0000000001",
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": []}),
    )
    if allowed:
        create()
        assert deployer.describe_pipeline(PipelineName="mlops-demo-train")["RoleArn"] == execution
    else:
        assert error_code(create) == "AccessDeniedException"


def test_group_policies_and_object_keys_survive_a_sandbox_restart(tmp_path, monkeypatch):
    """`sandbox down` / `sandbox up` keeps what the fidelity patches added: a model package group's
    resource policy, an object's SSE-KMS key, and enforcement itself (AWS state outlives a laptop)."""
    from sandbox import client

    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path / "home"))
    try:
        aws = Accounts(client.up({"dev": DEV, "registry": REGISTRY}))
        policy = json.dumps(
            {"Version": "2012-10-17", "Statement": [_grant("Read", [f"arn:aws:iam::{PROD}:root"], REGISTER)]}
        )
        aws.admin(REGISTRY, "sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
        aws.admin(REGISTRY, "sagemaker").put_model_package_group_policy(
            ModelPackageGroupName=GROUP, ResourcePolicy=policy
        )
        key_arn = aws.admin(REGISTRY, "kms").create_key()["KeyMetadata"]["Arn"]
        _bucket(aws, REGISTRY, ARTIFACTS, key_arn=key_arn).put_object(Bucket=ARTIFACTS, Key="m", Body=b"w")
        assert client.down()
        aws = Accounts(client.up())
        assert (
            aws.admin(REGISTRY, "sagemaker").get_model_package_group_policy(ModelPackageGroupName=GROUP)[
                "ResourcePolicy"
            ]
            == policy
        )
        assert aws.admin(REGISTRY, "s3").head_object(Bucket=ARTIFACTS, Key="m")["SSEKMSKeyId"] == key_arn
        assert (
            error_code(aws.admin(DEV, "sagemaker").list_model_packages, ModelPackageGroupName=GROUP_ARN)
            == "AccessDeniedException"
        )
    finally:
        client.down(save=False)


@pytest.mark.parametrize("key_grants_registry", [False, True])
def test_copying_a_dev_encrypted_artifact_into_the_registry_needs_decrypt_on_the_dev_key(aws, key_grants_registry):
    """CopyObject reads its source: the copier needs s3:GetObject on it and kms:Decrypt on the source
    object's key, then GenerateDataKey on the destination's key. A registry publisher copying a model
    trained in dev fails when the dev key policy leaves the registry account out. AWS:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html and
    https://repost.aws/knowledge-center/s3-troubleshoot-copy-between-buckets"""
    publisher_arn = f"arn:aws:iam::{REGISTRY}:role/publisher"
    grant = {
        "Sid": "RegistryDecrypts",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{REGISTRY}:root"},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    dev_key = _dev_key(aws, *([grant] if key_grants_registry else []))
    _bucket(aws, DEV, DEV_BUCKET, [_read_grant(publisher_arn)], key_arn=dev_key).put_object(
        Bucket=DEV_BUCKET, Key="models/1/model.tar.gz", Body=b"weights"
    )
    registry_key = aws.admin(REGISTRY, "kms").create_key()["KeyMetadata"]["Arn"]
    _bucket(aws, REGISTRY, ARTIFACTS, key_arn=registry_key)
    publisher = aws.role(
        REGISTRY,
        "publisher",
        [
            allow("s3:GetObject", f"arn:aws:s3:::{DEV_BUCKET}/models/*"),
            allow("s3:PutObject", f"arn:aws:s3:::{ARTIFACTS}/*"),
            allow("kms:Decrypt", dev_key),
            allow("kms:GenerateDataKey", registry_key),
        ],
    ).client("s3")

    def copy():
        return publisher.copy_object(
            Bucket=ARTIFACTS,
            Key="dev/1/model.tar.gz",
            CopySource={"Bucket": DEV_BUCKET, "Key": "models/1/model.tar.gz"},
        )

    if not key_grants_registry:
        assert error_code(copy) == "AccessDenied"
        return
    copy()
    head = aws.admin(REGISTRY, "s3").head_object(Bucket=ARTIFACTS, Key="dev/1/model.tar.gz")
    assert head["SSEKMSKeyId"] == registry_key


def test_presigned_url_carries_the_signers_permissions(aws):
    """A presigned URL acts as whoever signed it: one signed by a role allowed s3:GetObject opens the
    report, one signed by a role without it is refused. AWS:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html (who can create one)."""
    import urllib.error
    import urllib.request

    aws.admin(DEV, "s3").create_bucket(Bucket=DEV_BUCKET)
    aws.admin(DEV, "s3").put_object(Bucket=DEV_BUCKET, Key="reports/approval.html", Body=b"<html/>")
    reader = aws.role(DEV, "report-reader", [allow("s3:GetObject", f"arn:aws:s3:::{DEV_BUCKET}/reports/*")])
    other = aws.role(DEV, "no-reports", [allow("s3:ListAllMyBuckets")])
    params = {"Bucket": DEV_BUCKET, "Key": "reports/approval.html"}
    with urllib.request.urlopen(reader.client("s3").generate_presigned_url("get_object", Params=params)) as resp:
        assert resp.read() == b"<html/>"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(other.client("s3").generate_presigned_url("get_object", Params=params))
    assert info.value.code == 403 and b"AccessDenied" in info.value.read()
