"""Registration can only be pending: a workload principal cannot register a version as Approved, by the
pipeline or by a direct API call, and cannot approve one afterwards. AWS enforces it, not our code:
the condition key sagemaker:ModelApprovalStatus (in CreateModelPackage and UpdateModelPackage requests,
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html) in the
execution roles' policies and in the model package group's resource policy
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-version.html#model-registry-version-xaccount)."""

import pytest
from botocore.exceptions import ClientError

from tests.iam.conftest import trust_account_root_too

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture(scope="module")
def roles(bootstrapped, envs, module_sessions):
    """Sessions acting as the bootstrapped workload roles (the admin stands in for the service)."""
    s = module_sessions["prod"]
    acting = {}
    for label, env, role in (
        ("dev-execution", envs["dev"], "execution"),
        ("prod-execution", envs["prod"], "execution"),
        ("prod-lambda", envs["prod"], "lambda"),
    ):
        arn = env.role_arn(role)
        trust_account_root_too(s, arn)
        acting[label] = s.client(
            "sagemaker", s.assume(arn, purpose=f"attack-{label}", source=s.in_account(env.account_id))
        )
    return acting


def _register(sagemaker, group_arn, **status):
    return sagemaker.create_model_package(
        ModelPackageGroupName=group_arn,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://mlops-demo-registry-artifacts/dev/m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        **status,
    )["ModelPackageArn"]


def _denied(call):
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException", refused.value.response
    return refused.value.response["Error"]["Message"]


@pytest.mark.parametrize("role", ["dev-execution", "prod-execution"])
def test_an_execution_role_cannot_register_a_version_as_approved(roles, envs, role):
    group = envs["prod"].model_package_group_arn
    message = _denied(lambda: _register(roles[role], group, ModelApprovalStatus="Approved"))
    assert "sagemaker:CreateModelPackage" in message and "explicit deny in a resource-based policy" in message
    # what the pipeline does is still allowed: a pending version
    arn = _register(roles[role], group, ModelApprovalStatus="PendingManualApproval")
    assert roles[role].describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"


@pytest.mark.parametrize("role", ["dev-execution", "prod-execution", "prod-lambda"])
def test_a_workload_role_cannot_approve_a_version(roles, envs, role):
    arn = _register(
        roles["dev-execution"], envs["prod"].model_package_group_arn, ModelApprovalStatus="PendingManualApproval"
    )
    _denied(lambda: roles[role].update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved"))
    _denied(lambda: roles[role].update_model_package(ModelPackageArn=arn, ApprovalDescription="looks fine to me"))
    assert roles["prod-execution"].describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == (
        "PendingManualApproval"
    )


def test_the_pipeline_has_no_approval_status_parameter(bootstrapped, cli):
    """The attack `run-pipeline ... --param ModelApprovalStatus=Approved` is bad input now: exit 2, one line,
    nothing started."""
    run = cli(
        "run-pipeline",
        "--env",
        "dev",
        "--pipeline",
        "train",
        "--start",
        "--param",
        "ModelApprovalStatus=Approved",
        env={"MLOPS_AS": "dana"},
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "'ModelApprovalStatus' is not a parameter of mlops-demo-train" in lines[0], lines
