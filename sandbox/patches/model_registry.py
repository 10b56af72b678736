"""The SageMaker model registry across accounts: group resource policies, and packages created, read and
approved by ARN from other accounts in the group's owning account.

AWS: https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-version.html#model-registry-version-xaccount
A group ARN or package ARN from another account acts in that account iff the group's resource policy
allows the caller (and the caller's own IAM policy allows it, enforced by sandbox.patches.enforcement).
Also fixes moto's registry defects we depend on: approval-only updates keep the rest of the package,
ModelApprovalStatus defaults to PendingManualApproval, packages/groups can be deleted, and CreatedBy /
LastModifiedBy name the caller's IamIdentity (Arn, PrincipalId, SourceIdentity) instead of moto's fake
Studio user profile.
"""

from __future__ import annotations

from typing import Any

from sandbox import iam_policy
from sandbox.patches.enforcement import Target, arn_account, current, param, resolver
from sandbox.patching import Patch

GROUP_ACTIONS = {
    "CreateModelPackageGroup",
    "DescribeModelPackageGroup",
    "DeleteModelPackageGroup",
    "PutModelPackageGroupPolicy",
    "GetModelPackageGroupPolicy",
    "DeleteModelPackageGroupPolicy",
}
PACKAGE_ACTIONS = {"DescribeModelPackage", "UpdateModelPackage", "DeleteModelPackage"}
# SageMaker ARNs carry lower-cased resource names
_NAMED = {
    "PipelineName": "pipeline",
    "ModelName": "model",
    "TrainingJobName": "training-job",
    "ProcessingJobName": "processing-job",
    "TransformJobName": "transform-job",
    "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
    "EndpointName": "endpoint",
    "EndpointConfigName": "endpoint-config",
    "ExperimentName": "experiment",
}


def _backend(account_id: str, region: str):
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[account_id][region]


def _arn(region, account, kind, name):
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name}"


def split_group(value: str | None, caller_account: str) -> tuple[str, str | None]:
    """(owning account, group name) from a group name or ARN."""
    if value and value.startswith("arn:"):
        return arn_account(value, caller_account), value.split("/", 1)[1]
    return caller_account, value


def _group_policy(owner: str, region: str, group: str | None):
    g = _backend(owner, region).model_package_groups.get(group) if group else None
    return (getattr(g, "resource_policy", None), g is not None)


# Where each job-creating request keeps what the SageMaker condition keys describe
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html):
# condition key -> path in the request, per action.
_JOB_CONDITIONS = {
    "CreateTrainingJob": {
        "sagemaker:VpcSubnets": "VpcConfig.Subnets",
        "sagemaker:VpcSecurityGroupIds": "VpcConfig.SecurityGroupIds",
        "sagemaker:NetworkIsolation": "EnableNetworkIsolation",
        "sagemaker:InterContainerTrafficEncryption": "EnableInterContainerTrafficEncryption",
        "sagemaker:VolumeKmsKey": "ResourceConfig.VolumeKmsKeyId",
        "sagemaker:OutputKmsKey": "OutputDataConfig.KmsKeyId",
    },
    "CreateProcessingJob": {
        "sagemaker:VpcSubnets": "NetworkConfig.VpcConfig.Subnets",
        "sagemaker:VpcSecurityGroupIds": "NetworkConfig.VpcConfig.SecurityGroupIds",
        "sagemaker:NetworkIsolation": "NetworkConfig.EnableNetworkIsolation",
        "sagemaker:InterContainerTrafficEncryption": "NetworkConfig.EnableInterContainerTrafficEncryption",
        "sagemaker:VolumeKmsKey": "ProcessingResources.ClusterConfig.VolumeKmsKeyId",
        "sagemaker:OutputKmsKey": "ProcessingOutputConfig.KmsKeyId",
    },
    "CreateHyperParameterTuningJob": {
        "sagemaker:VpcSubnets": "TrainingJobDefinition.VpcConfig.Subnets",
        "sagemaker:VpcSecurityGroupIds": "TrainingJobDefinition.VpcConfig.SecurityGroupIds",
        "sagemaker:NetworkIsolation": "TrainingJobDefinition.EnableNetworkIsolation",
        "sagemaker:InterContainerTrafficEncryption": "TrainingJobDefinition.EnableInterContainerTrafficEncryption",
        "sagemaker:OutputKmsKey": "TrainingJobDefinition.OutputDataConfig.KmsKeyId",
    },
    "CreateModel": {
        "sagemaker:VpcSubnets": "VpcConfig.Subnets",
        "sagemaker:VpcSecurityGroupIds": "VpcConfig.SecurityGroupIds",
        "sagemaker:NetworkIsolation": "EnableNetworkIsolation",
    },
}


def job_request_conditions(response: Any, action: str) -> dict:
    """The SageMaker condition keys a job or model creation request sets (absent when the request has none)."""
    out = {}
    for key, path in _JOB_CONDITIONS.get(action, {}).items():
        first, *rest = path.split(".")
        value = param(response, first)
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, "", []):
            out[key] = value
    return out


# Condition keys SageMaker puts in the request context (Service Authorization Reference for SageMaker:
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html): the
# approval status is there only when the request carries ModelApprovalStatus.
APPROVAL_STATUS_ACTIONS = {"CreateModelPackage", "UpdateModelPackage"}


def _context(response, action) -> dict:
    status = param(response, "ModelApprovalStatus") if action in APPROVAL_STATUS_ACTIONS else None
    return {"sagemaker:ModelApprovalStatus": status} if status else {}


@resolver("sagemaker")
def _sagemaker(response, action, caller, region, _default_resource) -> Target:
    target = _sagemaker_target(response, action, caller, region)
    target.context.update(_context(response, action))
    return target


def _sagemaker_target(response, action, caller, region) -> Target:
    acct = caller.account_id
    if action in GROUP_ACTIONS or (
        action in ("CreateModelPackage", "ListModelPackages") and param(response, "ModelPackageGroupName")
    ):
        owner, group = split_group(param(response, "ModelPackageGroupName"), acct)
        policy, exists = _group_policy(owner, region, group)
        group_arn = _arn(region, owner, "model-package-group", group)
        if action == "CreateModelPackage":
            version = 1 + sum(
                1 for p in _backend(owner, region).model_packages.values() if p.model_package_group_name == group
            )
            resources = [_arn(region, owner, "model-package", f"{group}/{version}"), group_arn]
        elif action == "ListModelPackages":
            resources = [_arn(region, owner, "model-package", f"{group}/*"), group_arn]
        else:
            resources = [group_arn]
        return Target(resources, owner, policy=policy, missing=not exists and owner != acct)
    if action in PACKAGE_ACTIONS:
        name = param(response, "ModelPackageName") or param(response, "ModelPackageArn") or ""
        if name.startswith("arn:"):
            owner = arn_account(name, acct)
            package = _backend(owner, region).model_packages.get(name)
            group = package.model_package_group_name if package else name.split("/")[1]
            policy, exists = _group_policy(owner, region, group)
            return Target([name], owner, policy=policy, missing=package is None and owner != acct)
        return Target([_arn(region, acct, "model-package", name.lower())], acct)
    for key, kind in _NAMED.items():
        value = param(response, key)
        if value:
            if value.startswith("arn:"):
                return Target([value], arn_account(value, acct), policy_kind="none")
            context = job_request_conditions(response, action)
            return Target([_arn(region, acct, kind, value.lower())], acct, policy_kind="none", context=context)
    tagged = param(response, "ResourceArn")  # AddTags / ListTags / DeleteTags
    if tagged:
        return Target([tagged], arn_account(tagged, acct), policy_kind="none")
    execution = param(response, "PipelineExecutionArn")
    if execution:
        return Target([execution], arn_account(execution, acct), policy_kind="none")
    return Target(["*"], acct, policy_kind="none")


def user_context() -> dict | None:
    """SageMaker's UserContext for the caller of this request: outside Studio only IamIdentity, with the
    session's source identity (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_IamIdentity.html)."""
    state = current()
    if state is None or state.caller.kind == "anonymous":
        return None
    caller = state.caller
    identity = {"Arn": caller.arn, "PrincipalId": caller.principal_id}
    if caller.source_identity:
        identity["SourceIdentity"] = caller.source_identity
    return {"IamIdentity": identity}


def _owner_backend(self):
    state = current()
    account = state.owner_account if state and state.owner_account else self.current_account
    return _backend(account, self.region)


# -- request layer: the group-policy APIs moto lacks ------------------------------------------------
def put_model_package_group_policy(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError

    group = self.sagemaker_backend.describe_model_package_group(
        split_group(self._get_param("ModelPackageGroupName"), self.current_account)[1]
    )
    text = self._get_param("ResourcePolicy")
    try:
        document = iam_policy.parse(text)
        iam_policy.statements(document)
    except (ValueError, AttributeError) as exc:
        raise ValidationError(f"Invalid ResourcePolicy: {exc}") from None
    if not any("Principal" in s for s in iam_policy.statements(document)):
        raise ValidationError("Invalid ResourcePolicy: a resource policy must name a Principal")
    group.resource_policy = text
    return ActionResult({"ModelPackageGroupArn": group.arn})


def get_model_package_group_policy(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError

    group = self.sagemaker_backend.describe_model_package_group(
        split_group(self._get_param("ModelPackageGroupName"), self.current_account)[1]
    )
    if not getattr(group, "resource_policy", None):
        raise ValidationError(f"Cannot find resource policy for ModelPackageGroup {group.arn}")
    return ActionResult({"ResourcePolicy": group.resource_policy})


def delete_model_package_group_policy(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    group = self.sagemaker_backend.describe_model_package_group(
        split_group(self._get_param("ModelPackageGroupName"), self.current_account)[1]
    )
    group.resource_policy = None
    return EmptyResult()


def delete_model_package(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    backend = self.sagemaker_backend
    package = backend.describe_model_package(self._get_param("ModelPackageName"))
    backend.model_packages.pop(package.arn, None)
    for key in [k for k, v in backend.model_package_name_mapping.items() if v == package.arn]:
        backend.model_package_name_mapping.pop(key)
    return EmptyResult()


def delete_model_package_group(self: Any) -> Any:
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError

    backend = self.sagemaker_backend
    name = split_group(self._get_param("ModelPackageGroupName"), self.current_account)[1]
    group = backend.describe_model_package_group(name)
    if any(p.model_package_group_name == name for p in backend.model_packages.values()):
        raise ValidationError(f"Model Package Group {group.arn} is not empty: delete its model packages first")
    backend.model_package_groups.pop(name)
    return EmptyResult()


def patch_model_registry() -> None:
    from moto.sagemaker.models import ModelPackageGroup, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    SageMakerResponse.sagemaker_backend = property(_owner_backend)
    for handler in (
        put_model_package_group_policy,
        get_model_package_group_policy,
        delete_model_package_group_policy,
        delete_model_package,
        delete_model_package_group,
    ):
        setattr(SageMakerResponse, handler.__name__, handler)

    create_package = SageMakerModelBackend.create_model_package
    create_group = SageMakerModelBackend.create_model_package_group
    describe_group = SageMakerModelBackend.describe_model_package_group
    list_packages = SageMakerModelBackend.list_model_packages

    def create_model_package(self, model_package_name, model_package_group_name, *args, **kwargs):
        group = split_group(model_package_group_name, self.account_id)[1]
        arn = create_package(self, model_package_name, group, *args, **kwargs)
        package = self.model_packages[arn]
        if group and package.model_approval_status is None:
            package.model_approval_status = "PendingManualApproval"  # AWS's default for versioned packages
        package.created_by = package.last_modified_by = user_context()
        return arn

    def create_model_package_group(self, *args, **kwargs):
        arn = create_group(self, *args, **kwargs)
        for group in self.model_package_groups.values():
            if group.arn == arn:
                group.created_by = user_context()
        return arn

    def describe_model_package_group(self, model_package_group_name):
        return describe_group(self, split_group(model_package_group_name, self.account_id)[1])

    def list_model_packages(self, *args, **kwargs):
        if kwargs.get("model_package_group_name"):
            kwargs["model_package_group_name"] = split_group(kwargs["model_package_group_name"], self.account_id)[1]
        return list_packages(self, *args, **kwargs)

    def update_model_package(
        self,
        model_package_arn,
        model_approval_status,
        approval_description,
        customer_metadata_properties,
        customer_metadata_properties_to_remove,
        additional_inference_specifications_to_add,
    ):
        from moto.sagemaker.exceptions import ValidationError

        arn = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        package = self.model_packages.get(arn)
        if package is None:
            raise ValidationError(f"Model package {model_package_arn} not found")
        # UpdateModelPackage changes only what the request carries (moto replaced everything)
        if model_approval_status is not None:
            package.set_model_approval_status(model_approval_status)
        if approval_description is not None:
            package.approval_description = approval_description
        if customer_metadata_properties:
            package.customer_metadata_properties = {
                **(package.customer_metadata_properties or {}),
                **customer_metadata_properties,
            }
        if customer_metadata_properties_to_remove and package.customer_metadata_properties:
            for key in customer_metadata_properties_to_remove:
                package.customer_metadata_properties.pop(key, None)
        if additional_inference_specifications_to_add:
            package.add_additional_inference_specifications(additional_inference_specifications_to_add)
        package.modifications_done()
        package.last_modified_by = user_context()
        return package.arn

    SageMakerModelBackend.create_model_package = create_model_package
    SageMakerModelBackend.create_model_package_group = create_model_package_group
    SageMakerModelBackend.describe_model_package_group = describe_model_package_group
    SageMakerModelBackend.list_model_packages = list_model_packages
    SageMakerModelBackend.update_model_package = update_model_package
    ModelPackageGroup.resource_policy = None  # class default: groups pickled before this patch still load
    group_response = ModelPackageGroup.gen_response_object

    def group_response_with_creator(self):
        # AWS's DescribeModelPackageGroup answers CreatedBy; moto leaves it out
        response = group_response(self)
        if isinstance(getattr(self, "created_by", None), dict) and "IamIdentity" in self.created_by:
            response["CreatedBy"] = self.created_by
        return response

    ModelPackageGroup.gen_response_object = group_response_with_creator


PATCH = Patch(
    name="model-registry-cross-account",
    adds=(
        "model package group policies stored and enforced; packages created/read/approved by ARN "
        "from other accounts; approval updates keep metadata; default PendingManualApproval; CreatedBy/"
        "LastModifiedBy name the caller's IamIdentity with its source identity; sagemaker:ModelApprovalStatus "
        "from the request"
    ),
    overrides=(
        "moto.sagemaker.models.ModelPackageGroup.resource_policy",
        "moto.sagemaker.models.ModelPackageGroup.gen_response_object",
        "moto.sagemaker.models.SageMakerModelBackend.create_model_package",
        "moto.sagemaker.models.SageMakerModelBackend.create_model_package_group",
        "moto.sagemaker.models.SageMakerModelBackend.describe_model_package_group",
        "moto.sagemaker.models.SageMakerModelBackend.list_model_packages",
        "moto.sagemaker.models.SageMakerModelBackend.update_model_package",
        "moto.sagemaker.responses.SageMakerResponse.sagemaker_backend",
        "moto.sagemaker.responses.SageMakerResponse.delete_model_package",
        "moto.sagemaker.responses.SageMakerResponse.delete_model_package_group",
        "moto.sagemaker.responses.SageMakerResponse.delete_model_package_group_policy",
        "moto.sagemaker.responses.SageMakerResponse.get_model_package_group_policy",
        "moto.sagemaker.responses.SageMakerResponse.put_model_package_group_policy",
    ),
    apply=patch_model_registry,
)
