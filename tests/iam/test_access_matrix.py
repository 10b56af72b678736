"""The access matrix of the bootstrapped accounts: each row calls the API as that principal (assumed
role credentials) against the sandbox, which enforces IAM, resource, key and trust policies like AWS,
and checks AWS's answer: allowed, or AccessDenied."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError

from mlops_core.errors import AccessDenied
from mlops_core.session import Sessions
from pipelines import metrics
from tests.iam.conftest import trust_account_root_too

DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
DEV, PROD, REGISTRY, JENKINS = "111111111111", "222222222222", "333333333333", "444444444444"
STAGE = "555555555555"
EMPTY_PIPELINE = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": []})


class World:
    """Principals as boto3 sessions, and the ARNs the rows act on."""

    def __init__(self, envs, sessions):
        self.envs, self.sessions = envs, sessions
        self.principals: dict = {}
        self.region = envs["prod"].region

    def client(self, principal: str, service: str):
        return self.sessions.client(service, self.principals[principal])

    def key_arn(self, account: str, alias: str) -> str:
        kms = self.sessions.client("kms", self.sessions.in_account(account))
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]


@pytest.fixture(scope="module")
def world(bootstrapped, envs, module_sessions):
    dev, stage, prod = envs["dev"], envs["stage"], envs["prod"]
    s = module_sessions["prod"]
    w = World(envs, s)
    for label, env, role in (
        ("dev-execution", dev, "execution"),
        ("prod-execution", prod, "execution"),
        ("stage-execution", stage, "execution"),
        ("stage-lambda", stage, "lambda"),
        ("stage-events", stage, "events"),
        ("dev-lambda", dev, "lambda"),
        ("prod-lambda", prod, "lambda"),
        ("prod-events", prod, "events"),
    ):
        arn = env.role_arn(role)
        trust_account_root_too(s, arn)
        w.principals[label] = s.assume(arn, purpose=f"matrix-{label}", source=s.in_account(env.account_id))
    # people and Jenkins act with a source identity (the approver's and Jenkins' trust policies require one)
    w.alex = Sessions(prod, identity="alex")
    w.principals["approver"] = w.alex.as_role("approver", purpose="matrix-approver")
    w.principals["registry-admin"] = s.in_account(REGISTRY)
    w.jenkins_sessions = Sessions(prod, identity="jenkins")
    w.principals["jenkins-agent"] = _jenkins_agent(s, w.jenkins_sessions)
    w.principals["jenkins-agent-anonymous"] = s.assume(
        f"arn:aws:iam::{JENKINS}:role/jenkins-agent", purpose="matrix-anonymous-agent", source=s.in_account(JENKINS)
    )
    w.dev_key = w.key_arn(DEV, dev.kms_key_alias)
    w.prod_key = w.key_arn(PROD, prod.kms_key_alias)
    w.stage_key = w.key_arn(STAGE, stage.kms_key_alias)
    w.group_arn = prod.model_package_group_arn
    w.registry_bucket = prod.buckets.registry

    # a model trained in dev: artefact under dev/ in the registry bucket with the dev key, and its package
    w.client("dev-execution", "s3").put_object(
        Bucket=w.registry_bucket,
        Key="dev/models/train-1/model.tar.gz",
        Body=b"model bytes",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=w.dev_key,
    )
    w.client("prod-execution", "s3").put_object(
        Bucket=w.registry_bucket,
        Key="prod/models/train-1/model.tar.gz",
        Body=b"prod model",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=w.prod_key,
    )
    w.client("stage-execution", "s3").put_object(
        Bucket=w.registry_bucket,
        Key="stage/models/train-1/model.tar.gz",
        Body=b"stage model",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=w.stage_key,
    )
    w.client("dev-execution", "s3").put_object(
        Bucket=dev.buckets.artifacts,
        Key="datasets/train.csv",
        Body=b"a,b\n1,2\n",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=w.dev_key,
    )
    w.package_arn = _register(w.client("dev-execution", "sagemaker"), w)
    for account, name, env in (
        (DEV, dev.pipelines["train"], dev),
        (PROD, prod.pipelines["inference"], prod),
        (PROD, "other-project-train", prod),
    ):
        s.client("sagemaker", s.in_account(account)).create_pipeline(
            PipelineName=name, PipelineDefinition=EMPTY_PIPELINE, RoleArn=env.role_arn("execution", account)
        )
    return w


def _jenkins_agent(s, jenkins_sessions):
    """The Jenkins agent's own role in the Jenkins account, which the prod role's trust policy names; the
    agent signs in as `jenkins` (its source identity, carried into the deploy role)."""
    admin = s.in_account(JENKINS)
    iam = s.client("iam", admin)
    iam.create_role(
        RoleName="jenkins-agent",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                        "Principal": {"AWS": f"arn:aws:iam::{JENKINS}:root"},
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName="jenkins-agent",
        PolicyName="assume-deploy-roles",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                        "Resource": "arn:aws:iam::*:role/cross-account-jenkins-role",
                    }
                ],
            }
        ),
    )
    return jenkins_sessions.assume(
        f"arn:aws:iam::{JENKINS}:role/jenkins-agent", purpose="matrix-jenkins-agent", source=admin
    )


def _register(sagemaker, w, status="PendingManualApproval") -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=w.group_arn,
        **({"ModelApprovalStatus": status} if status else {}),
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://{w.registry_bucket}/dev/models/train-1/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def _jenkins(w, external_id, agent="jenkins-agent"):
    env = w.envs["prod"]
    kwargs = {"external_id": external_id} if external_id else {}
    sessions = w.jenkins_sessions if agent == "jenkins-agent" else w.sessions
    return sessions.assume(
        env.role_arn("jenkins"), purpose=f"matrix-jenkins-{external_id}", source=w.principals[agent], **kwargs
    )


def _jenkins_client(w, service):
    return w.sessions.client(service, _jenkins(w, w.envs["prod"].jenkins.external_id))


@dataclass
class Row:
    principal: str
    action: str
    resource: str
    allowed: bool
    call: Callable
    sandbox_gap: str = ""  # a known gap in the sandbox's AWS fidelity: the row runs as strict xfail


# Known sandbox gaps (strict xfail: the row starts failing the day the sandbox catches up, so the mark
# gets removed); the policies themselves are what AWS needs.


def _get(principal, key):
    return lambda w: w.client(principal, "s3").get_object(Bucket=w.registry_bucket, Key=key)["Body"].read()


def _put(principal, key, kms=True):
    def call(w):
        kms_key = {"dev": w.dev_key, "stage": w.stage_key}.get(principal.split("-")[0], w.prod_key)
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms else {}
        w.client(principal, "s3").put_object(Bucket=w.registry_bucket, Key=key, Body=b"x", **extra)

    return call


def _approve(principal):
    return lambda w: w.client(principal, "sagemaker").update_model_package(
        ModelPackageArn=w.package_arn, ModelApprovalStatus="Approved", ApprovalDescription="matrix"
    )


def _audit(w, principal, account):
    """A session of the registration-audit role in `account`, assumed from `principal`."""
    return w.sessions.assume(
        w.envs["prod"].role_arn("audit", account), purpose=f"matrix-audit-{principal}", source=w.principals[principal]
    )


def _start(principal, account, name):
    return lambda w: w.client(principal, "sagemaker").start_pipeline_execution(
        PipelineName=f"arn:aws:sagemaker:{w.region}:{account}:pipeline/{name}"
    )


# -- what cross-account-jenkins-role may touch in prod: only what the toolkit creates -----------------
# Terraform's keys carry the provider's default tags (promote/infra.py); AWS KMS ABAC decides on them:
# https://docs.aws.amazon.com/kms/latest/developerguide/abac.html (aws:ResourceTag, aws:RequestTag).
TOOLKIT_TAGS = [
    {"TagKey": "managed-by", "TagValue": "mlops-infra"},
    {"TagKey": "project", "TagValue": "mlops-demo"},
    {"TagKey": "environment", "TagValue": "prod"},
]


def _prod_key(w, name: str, tags: list) -> str:
    """A key created by prod's admin (cached on the world): another team's key, or one Terraform made."""
    cache = w.__dict__.setdefault("keys", {})
    if name not in cache:
        kms = w.sessions.client("kms", w.sessions.in_account(PROD))
        cache[name] = kms.create_key(Description=name, **({"Tags": tags} if tags else {}))["KeyMetadata"]["KeyId"]
    return cache[name]


def _key_policy(account: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )


def _prod_training_data(w) -> str:
    key = "datasets/customers/train.csv"
    w.sessions.client("s3", w.sessions.in_account(PROD)).put_object(
        Bucket=w.envs["prod"].buckets.artifacts,
        Key=key,
        Body=b"a,b\n1,2\n",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=w.prod_key,
    )
    return key


JENKINS_ROWS = [
    Row(
        "cross-account-jenkins-role",
        "kms:PutKeyPolicy",
        "another team's key in prod (not tagged as the toolkit's)",
        False,
        lambda w: _jenkins_client(w, "kms").put_key_policy(
            KeyId=_prod_key(w, "other-team", []), PolicyName="default", Policy=_key_policy(JENKINS)
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:ScheduleKeyDeletion",
        "another team's key in prod",
        False,
        lambda w: _jenkins_client(w, "kms").schedule_key_deletion(
            KeyId=_prod_key(w, "other-team", []), PendingWindowInDays=7
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:TagResource",
        "another team's key, tagging it as the toolkit's to take it over",
        False,
        lambda w: _jenkins_client(w, "kms").tag_resource(KeyId=_prod_key(w, "other-team", []), Tags=TOOLKIT_TAGS),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:CreateKey",
        "a key without the toolkit's tags",
        False,
        lambda w: _jenkins_client(w, "kms").create_key(Description="untagged"),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:CreateKey",
        "the notification topic's key, with the toolkit's tags (Terraform)",
        True,
        lambda w: _jenkins_client(w, "kms").create_key(Description="topic key", Tags=TOOLKIT_TAGS),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:PutKeyPolicy",
        "a key tagged as the toolkit's (Terraform sets the topic key's policy)",
        True,
        lambda w: _jenkins_client(w, "kms").put_key_policy(
            KeyId=_prod_key(w, "toolkit", TOOLKIT_TAGS), PolicyName="default", Policy=_key_policy(PROD)
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:CreateAlias",
        "alias/mlops-demo-prod-* on a key tagged as the toolkit's",
        True,
        lambda w: _jenkins_client(w, "kms").create_alias(
            AliasName="alias/mlops-demo-prod-matrix", TargetKeyId=_prod_key(w, "toolkit", TOOLKIT_TAGS)
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:CreateAlias",
        "alias/mlops-demo-prod-* on another team's key",
        False,
        lambda w: _jenkins_client(w, "kms").create_alias(
            AliasName="alias/mlops-demo-prod-adopted", TargetKeyId=_prod_key(w, "other-team", [])
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:ScheduleKeyDeletion",
        "a key tagged as the toolkit's (terraform destroy)",
        True,
        lambda w: _jenkins_client(w, "kms").schedule_key_deletion(
            KeyId=_prod_key(w, "toolkit-destroyed", TOOLKIT_TAGS), PendingWindowInDays=7
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "events:PutPermission",
        'the default bus, to Principal "*"',
        False,
        lambda w: _jenkins_client(w, "events").put_permission(
            Action="events:PutEvents", Principal="*", StatementId="anyone"
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "events:DescribeEventBus",
        "the default bus (Terraform reads it)",
        True,
        lambda w: _jenkins_client(w, "events").describe_event_bus(),
    ),
    Row(
        "cross-account-jenkins-role",
        "s3:GetObject",
        "training data in prod's artifacts bucket",
        False,
        lambda w: _jenkins_client(w, "s3").get_object(
            Bucket=w.envs["prod"].buckets.artifacts, Key=_prod_training_data(w)
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "s3:PutObject",
        "code/ in prod's artifacts bucket (the upsert's code bundle)",
        True,
        lambda w: _jenkins_client(w, "s3").put_object(
            Bucket=w.envs["prod"].buckets.artifacts,
            Key="code/0123abcd/steps/train.py",
            Body=b"print('train')",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=w.prod_key,
        ),
    ),
    # the environment's alarms and dashboard, and nothing else; alarm actions only on the project's topics
    # (cloudwatch:AlarmActions: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-alarm-actions.html)
    Row(
        "cross-account-jenkins-role",
        "cloudwatch:PutMetricAlarm",
        "alarm mlops-demo-prod-* publishing to a project topic",
        True,
        lambda w: _put_alarm(w, "mlops-demo-prod-matrix", "mlops-demo-prod-notifications"),
    ),
    Row(
        "cross-account-jenkins-role",
        "cloudwatch:PutMetricAlarm",
        "another team's alarm",
        False,
        lambda w: _put_alarm(w, "payments-latency", "mlops-demo-prod-notifications"),
    ),
    Row(
        "cross-account-jenkins-role",
        "cloudwatch:PutMetricAlarm",
        "alarm mlops-demo-prod-* whose action is another team's topic",
        False,
        lambda w: _put_alarm(w, "mlops-demo-prod-matrix", "payments-pager"),
    ),
    Row(
        "cross-account-jenkins-role",
        "cloudwatch:PutDashboard",
        "dashboard mlops-demo-prod-*",
        True,
        lambda w: _put_dashboard(w, "mlops-demo-prod-matrix"),
    ),
    Row(
        "cross-account-jenkins-role",
        "cloudwatch:PutDashboard",
        "another team's dashboard",
        False,
        lambda w: _put_dashboard(w, "payments"),
    ),
]


def _put_alarm(w, name: str, topic: str) -> None:
    _jenkins_client(w, "cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace=metrics.namespace("mlops-demo"),
        MetricName=metrics.PIPELINE_RUNS,
        Statistic="Sum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        AlarmActions=[f"arn:aws:sns:{w.region}:{PROD}:{topic}"],
    )


def _put_dashboard(w, name: str) -> None:
    body = {"widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 2, "properties": {"markdown": "x"}}]}
    _jenkins_client(w, "cloudwatch").put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))


ROWS = [
    # stage, the pre-prod account: reads what prod reads (models trained upstream), writes nothing in prod
    Row(
        "stage-execution",
        "s3:GetObject",
        "registry bucket dev/ (dev-trained model, dev key)",
        True,
        _get("stage-execution", "dev/models/train-1/model.tar.gz"),
    ),
    Row(
        "stage-execution",
        "kms:DescribeKey",
        "dev account key",
        True,
        lambda w: w.client("stage-execution", "kms").describe_key(KeyId=w.dev_key),
    ),
    Row(
        "stage-lambda",
        "sagemaker:DescribeModelPackage",
        "registry package",
        True,
        lambda w: w.client("stage-lambda", "sagemaker").describe_model_package(ModelPackageName=w.package_arn),
    ),
    Row(
        "stage-execution",
        "s3:PutObject",
        "registry bucket stage/ with SSE-KMS",
        True,
        _put("stage-execution", "stage/models/train-2/model.tar.gz"),
    ),
    Row(
        "stage-execution",
        "s3:PutObject",
        "registry bucket prod/ (prod's prefix)",
        False,
        _put("stage-execution", "prod/models/forged/model.tar.gz"),
    ),
    Row(
        "stage-execution",
        "s3:GetObject",
        "registry bucket prod/ (downstream of stage)",
        False,
        _get("stage-execution", "prod/models/train-1/model.tar.gz"),
    ),
    Row(
        "stage-execution",
        "kms:DescribeKey",
        "prod account key",
        False,
        lambda w: w.client("stage-execution", "kms").describe_key(KeyId=w.prod_key),
    ),
    Row(
        "stage-events",
        "sagemaker:StartPipelineExecution",
        "prod inference pipeline",
        False,
        _start("stage-events", PROD, "mlops-demo-inference"),
    ),
    Row(
        "stage-execution",
        "sagemaker:UpdateModelPackage",
        "approve a registry package",
        False,
        _approve("stage-execution"),
    ),
    Row(
        "prod-execution",
        "s3:GetObject",
        "registry bucket stage/ (stage is upstream of prod)",
        True,
        _get("prod-execution", "stage/models/train-1/model.tar.gz"),
    ),
    Row(
        "prod-execution",
        "s3:GetObject",
        "registry bucket dev/ (dev-trained model, dev key)",
        True,
        _get("prod-execution", "dev/models/train-1/model.tar.gz"),
    ),
    Row(
        "prod-execution",
        "kms:DescribeKey",
        "dev account key",
        True,
        lambda w: w.client("prod-execution", "kms").describe_key(KeyId=w.dev_key),
    ),
    Row(
        "dev-execution",
        "kms:DescribeKey",
        "prod account key",
        False,
        lambda w: w.client("dev-execution", "kms").describe_key(KeyId=w.prod_key),
    ),
    Row(
        "dev-execution",
        "s3:GetObject",
        "registry bucket prod/ (not upstream of dev)",
        False,
        _get("dev-execution", "prod/models/train-1/model.tar.gz"),
    ),
    Row(
        "dev-execution",
        "s3:GetObject",
        "dev data bucket",
        True,
        lambda w: w.client("dev-execution", "s3").get_object(
            Bucket="mlops-demo-dev-artifacts", Key="datasets/train.csv"
        ),
    ),
    Row(
        "prod-execution",
        "s3:GetObject",
        "dev data bucket (dev's training data)",
        False,
        lambda w: w.client("prod-execution", "s3").get_object(
            Bucket="mlops-demo-dev-artifacts", Key="datasets/train.csv"
        ),
    ),
    Row(
        "dev-execution",
        "s3:PutObject",
        "registry bucket dev/ with SSE-KMS",
        True,
        _put("dev-execution", "dev/models/train-2/model.tar.gz"),
    ),
    Row(
        "dev-execution",
        "s3:PutObject",
        "registry bucket prod/ (another account's prefix)",
        False,
        _put("dev-execution", "prod/models/forged/model.tar.gz"),
    ),
    Row(
        "dev-execution",
        "s3:PutObject",
        "registry bucket dev/ without SSE-KMS",
        False,
        _put("dev-execution", "dev/models/plain/model.tar.gz", kms=False),
    ),
    Row(
        "prod-execution",
        "s3:PutObject",
        "registry bucket prod/ with SSE-KMS",
        True,
        _put("prod-execution", "prod/models/train-2/model.tar.gz"),
    ),
    Row(
        "approver",
        "s3:GetObject",
        "registry bucket dev/ (report on a dev-trained model)",
        True,
        _get("approver", "dev/models/train-1/model.tar.gz"),
    ),
    Row(
        "dev-lambda",
        "s3:GetObject",
        "registry bucket dev/",
        False,
        _get("dev-lambda", "dev/models/train-1/model.tar.gz"),
    ),
    Row(
        "dev-execution",
        "sagemaker:CreateModelPackage",
        "registry group (by ARN)",
        True,
        lambda w: _register(w.client("dev-execution", "sagemaker"), w),
    ),
    Row(
        "prod-execution",
        "sagemaker:ListModelPackages",
        "registry group (by ARN)",
        True,
        lambda w: w.client("prod-execution", "sagemaker").list_model_packages(ModelPackageGroupName=w.group_arn),
    ),
    Row(
        "prod-lambda",
        "sagemaker:DescribeModelPackage",
        "registry package",
        True,
        lambda w: w.client("prod-lambda", "sagemaker").describe_model_package(ModelPackageName=w.package_arn),
    ),
    Row(
        "prod-lambda",
        "sagemaker:CreateModelPackage",
        "registry group (by ARN)",
        False,
        lambda w: _register(w.client("prod-lambda", "sagemaker"), w),
    ),
    Row(
        "dev-execution",
        "sagemaker:CreateModelPackage",
        "registry group, ModelApprovalStatus=Approved",
        False,
        lambda w: _register(w.client("dev-execution", "sagemaker"), w, "Approved"),
    ),
    Row(
        "prod-execution",
        "sagemaker:CreateModelPackage",
        "registry group, ModelApprovalStatus=Approved",
        False,
        lambda w: _register(w.client("prod-execution", "sagemaker"), w, "Approved"),
    ),
    Row(
        "dev-execution",
        "sagemaker:CreateModelPackage",
        "registry group, no ModelApprovalStatus (the condition key is absent)",
        False,
        lambda w: _register(w.client("dev-execution", "sagemaker"), w, None),
    ),
    Row(
        "dev-execution", "sagemaker:UpdateModelPackage", "approve a registry package", False, _approve("dev-execution")
    ),
    Row(
        "registry-admin",
        "sts:AssumeRole",
        "approver role without a source identity",
        False,
        lambda w: w.sessions.as_role("approver", purpose="matrix-anonymous-approver"),
    ),
    Row(
        "approver",
        "sts:AssumeRole",
        "dev registration-audit role (source identity carried)",
        True,
        lambda w: _audit(w, "approver", DEV),
    ),
    Row(
        "dev-execution",
        "sts:AssumeRole",
        "dev registration-audit role",
        False,
        lambda w: _audit(w, "dev-execution", DEV),
    ),
    Row(
        "registration-audit",
        "cloudtrail:LookupEvents",
        "prod trail",
        True,
        lambda w: w.sessions.client("cloudtrail", _audit(w, "approver", PROD)).lookup_events(MaxResults=1),
    ),
    Row(
        "registration-audit",
        "sagemaker:ListPipelineExecutions",
        "dev train pipeline (not in its policy)",
        False,
        lambda w: w.sessions.client("sagemaker", _audit(w, "approver", DEV)).list_pipeline_executions(
            PipelineName="mlops-demo-train"
        ),
    ),
    Row(
        "prod-execution",
        "sagemaker:UpdateModelPackage",
        "approve a registry package",
        False,
        _approve("prod-execution"),
    ),
    Row("approver", "sagemaker:UpdateModelPackage", "approve a registry package", True, _approve("approver")),
    Row(
        "prod-execution",
        "sagemaker:StartPipelineExecution",
        "dev train pipeline",
        False,
        _start("prod-execution", DEV, "mlops-demo-train"),
    ),
    Row(
        "prod-events",
        "sagemaker:StartPipelineExecution",
        "prod inference pipeline",
        True,
        _start("prod-events", PROD, "mlops-demo-inference"),
    ),
    Row(
        "prod-events",
        "sagemaker:StartPipelineExecution",
        "another project's pipeline",
        False,
        _start("prod-events", PROD, "other-project-train"),
    ),
    Row(
        "jenkins-agent",
        "sts:AssumeRole",
        "cross-account-jenkins-role without ExternalId",
        False,
        lambda w: _jenkins(w, None),
    ),
    Row(
        "jenkins-agent",
        "sts:AssumeRole",
        "cross-account-jenkins-role with a wrong ExternalId",
        False,
        lambda w: _jenkins(w, "guessed-id"),
    ),
    Row(
        "jenkins-agent",
        "sts:AssumeRole",
        "cross-account-jenkins-role with its ExternalId",
        True,
        lambda w: _jenkins(w, w.envs["prod"].jenkins.external_id),
    ),
    Row(
        "jenkins-agent",
        "sts:AssumeRole",
        "cross-account-jenkins-role with its ExternalId, no source identity (as withAWS does)",
        True,
        lambda w: _jenkins(w, w.envs["prod"].jenkins.external_id, agent="jenkins-agent-anonymous"),
    ),
    Row(
        "cross-account-jenkins-role",
        "sagemaker:DescribePipeline",
        "prod inference pipeline",
        True,
        lambda w: _jenkins_client(w, "sagemaker").describe_pipeline(PipelineName="mlops-demo-inference"),
    ),
    Row(
        "cross-account-jenkins-role",
        "sagemaker:UpdatePipeline",
        "another project's pipeline",
        False,
        lambda w: _jenkins_client(w, "sagemaker").update_pipeline(
            PipelineName="other-project-train", PipelineDefinition=EMPTY_PIPELINE
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "sagemaker:CreatePipeline + iam:PassRole",
        "execution role to SageMaker",
        True,
        lambda w: _jenkins_client(w, "sagemaker").create_pipeline(
            PipelineName="mlops-demo-adhoc",
            PipelineDefinition=EMPTY_PIPELINE,
            RoleArn=w.envs["prod"].role_arn("execution"),
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "sagemaker:CreatePipeline + iam:PassRole",
        "EventBridge role to SageMaker",
        False,
        lambda w: _jenkins_client(w, "sagemaker").create_pipeline(
            PipelineName="mlops-demo-adhoc-2",
            PipelineDefinition=EMPTY_PIPELINE,
            RoleArn=w.envs["prod"].role_arn("events"),
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "s3:PutObject",
        "prod artifacts bucket code/ with SSE-KMS",
        True,
        lambda w: _jenkins_client(w, "s3").put_object(
            Bucket="mlops-demo-prod-artifacts",
            Key="code/abc/sourcedir.tar.gz",
            Body=b"code",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=w.prod_key,
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "dynamodb:PutItem",
        "Terraform lock table",
        True,
        lambda w: _jenkins_client(w, "dynamodb").put_item(
            TableName="mlops-demo-prod-tflock", Item={"LockID": {"S": "mlops-infra/prod"}}
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "events:PutRule",
        "the project's schedule rule",
        True,
        lambda w: _jenkins_client(w, "events").put_rule(
            Name="mlops-demo-prod-inference-schedule", ScheduleExpression="cron(0 6 * * ? *)"
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "events:PutRule",
        "a rule outside the project's prefix",
        False,
        lambda w: _jenkins_client(w, "events").put_rule(Name="other-team-rule", ScheduleExpression="rate(1 day)"),
    ),
    Row(
        "cross-account-jenkins-role",
        "kms:PutKeyPolicy",
        "the bootstrap's own key",
        False,
        lambda w: _jenkins_client(w, "kms").put_key_policy(
            KeyId=w.prod_key,
            PolicyName="default",
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{JENKINS}:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ],
                }
            ),
        ),
    ),
    Row(
        "cross-account-jenkins-role",
        "iam:PutRolePolicy",
        "the execution role (escalation)",
        False,
        lambda w: _jenkins_client(w, "iam").put_role_policy(
            RoleName="mlops-demo-sagemaker-execution",
            PolicyName="more",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*/*"}],
                }
            ),
        ),
    ),
    # run metrics: PutMetricData only in MLOps/<project> (cloudwatch:namespace, pipelines/metrics.py)
    Row(
        "prod-execution",
        "cloudwatch:PutMetricData",
        "namespace MLOps/<project> (a step's run metrics)",
        True,
        lambda w: _put_metrics(w, "prod-execution", metrics.namespace(w.envs["prod"].project)),
    ),
    Row(
        "prod-execution",
        "cloudwatch:PutMetricData",
        "another namespace",
        False,
        lambda w: _put_metrics(w, "prod-execution", "MLOps/another-project"),
    ),
    Row(
        "prod-lambda",
        "cloudwatch:PutMetricData",
        "namespace MLOps/<project> (the run-metrics function)",
        True,
        lambda w: _put_metrics(w, "prod-lambda", metrics.namespace(w.envs["prod"].project)),
    ),
    Row(
        "prod-lambda",
        "cloudwatch:PutMetricData",
        "another namespace",
        False,
        lambda w: _put_metrics(w, "prod-lambda", "Custom/elsewhere"),
    ),
    Row(
        "prod-events",
        "cloudwatch:PutMetricData",
        "namespace MLOps/<project> (EventBridge's role publishes nothing)",
        False,
        lambda w: _put_metrics(w, "prod-events", metrics.namespace(w.envs["prod"].project)),
    ),
    *JENKINS_ROWS,
]


def _put_metrics(w, principal: str, namespace: str) -> None:
    datum = metrics.datum(metrics.VIOLATIONS, 0, "prod", Pipeline="inference", Check="drift")
    w.client(principal, "cloudwatch").put_metric_data(Namespace=namespace, MetricData=[datum])


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            r,
            id=f"{r.principal}:{r.action}:{'allow' if r.allowed else 'deny'}:{i}",
            marks=[pytest.mark.xfail(strict=True, reason=r.sandbox_gap)] if r.sandbox_gap else [],
        )
        for i, r in enumerate(ROWS)
    ],
)
def test_access_matrix(world, row):
    try:
        row.call(world)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert not row.allowed, (
            f"{row.principal} {row.action} on {row.resource}: denied ({code}: {exc.response['Error'].get('Message')})"
        )
        assert code in DENIED, f"{row.principal} {row.action} on {row.resource}: {code}, not an access denial"
        return
    except AccessDenied as exc:
        assert not row.allowed, f"{row.principal} {row.action} on {row.resource}: {exc}"
        return
    assert row.allowed, f"{row.principal} {row.action} on {row.resource}: allowed, expected AccessDenied"


def test_matrix_covers_the_rows_the_issue_names():
    named = {(r.principal, r.action, r.allowed) for r in ROWS}
    assert len(ROWS) >= 20
    assert {
        ("prod-execution", "s3:GetObject", True),
        ("dev-execution", "sagemaker:UpdateModelPackage", False),
        ("approver", "sagemaker:UpdateModelPackage", True),
        ("prod-execution", "sagemaker:StartPipelineExecution", False),
        ("jenkins-agent", "sts:AssumeRole", False),
        ("prod-events", "sagemaker:StartPipelineExecution", False),
        ("dev-execution", "sagemaker:CreateModelPackage", False),
        ("prod-execution", "sagemaker:CreateModelPackage", False),
    } <= named
