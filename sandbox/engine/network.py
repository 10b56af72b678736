"""What SageMaker checks before a job or model runs in a VPC, and what network isolation does to it.

A job with a VpcConfig gets network interfaces in those subnets, created with the execution role: the
subnets and security groups must exist in the job's account and region, in one VPC, and the role must
be allowed the EC2 network-interface actions SageMaker's guide lists
(https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html,
https://docs.aws.amazon.com/sagemaker/latest/dg/train-vpc.html). With network isolation the container
has no network and no AWS credentials
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html, EnableNetworkIsolation).
"""

from __future__ import annotations

from sandbox import iam_policy
from sandbox.patches.enforcement import caller_for_role

ENI_MANAGEMENT = (
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)
DESCRIBE = (
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


class NetworkRefused(Exception):
    """SageMaker refuses the job's network configuration; the message is the API error's."""


def vpc_config(args: dict, step_kind: str) -> dict | None:
    """The VpcConfig a step's job or model asks for, wherever its API keeps it."""
    if step_kind == "Processing":
        return (args.get("NetworkConfig") or {}).get("VpcConfig") or None
    if step_kind == "Tuning":
        return (args.get("TrainingJobDefinition") or {}).get("VpcConfig") or None
    return args.get("VpcConfig") or None


def isolated(args: dict, step_kind: str) -> bool:
    if step_kind == "Processing":
        return bool((args.get("NetworkConfig") or {}).get("EnableNetworkIsolation"))
    if step_kind == "Tuning":
        return bool((args.get("TrainingJobDefinition") or {}).get("EnableNetworkIsolation"))
    return bool(args.get("EnableNetworkIsolation"))


def check(vpc: dict | None, role_arn: str, account: str, region: str, operation: str) -> None:
    """Raise NetworkRefused as the `operation` (CreateTrainingJob...) call would, else return."""
    if not vpc:
        return
    from moto.ec2.exceptions import InvalidSubnetIdError
    from moto.ec2.models import ec2_backends

    def refuse(code: str, message: str):
        raise NetworkRefused(
            f"ClientError: An error occurred ({code}) when calling the {operation} operation: {message}"
        )

    ec2 = ec2_backends[account][region]
    subnets, groups = list(vpc.get("Subnets") or []), list(vpc.get("SecurityGroupIds") or [])
    if not subnets or not groups:
        refuse("ValidationException", "VpcConfig needs at least one subnet and one security group")
    found_subnets = []
    for subnet_id in subnets:
        try:
            found_subnets.append(ec2.get_subnet(subnet_id))
        except InvalidSubnetIdError:
            # another account's subnet does not exist in this one either
            refuse("ValidationException", f"The subnet ID '{subnet_id}' does not exist")
    found_groups = []
    for group_id in groups:
        group = ec2.get_security_group_from_id(group_id)
        if group is None:
            refuse("ValidationException", f"The security group '{group_id}' does not exist")
        found_groups.append(group)
    vpc_id = found_subnets[0].vpc_id
    for subnet in found_subnets[1:]:
        if subnet.vpc_id != vpc_id:
            refuse("ValidationException", f"Subnets {subnets[0]} and {subnet.id} belong to different networks.")
    for group in found_groups:
        if group.vpc_id != vpc_id:
            refuse(
                "ValidationException",
                f"Security group {group.id} and subnet {subnets[0]} belong to different networks.",
            )
    missing = _denied_eni_actions(role_arn, account, region, vpc_id, subnets, groups)
    if missing:
        action, resource = missing
        refuse(
            "ValidationException",
            f"The execution role {role_arn} is not authorized to perform: {action} on resource: {resource} "
            "(SageMaker creates the job's network interfaces with it)",
        )


def _denied_eni_actions(role_arn, account, region, vpc_id, subnets, groups) -> tuple | None:
    policies = caller_for_role(role_arn).policies
    arn = f"arn:aws:ec2:{region}:{account}"
    vpc_arn = f"{arn}:vpc/{vpc_id}"
    checks = []
    for subnet in subnets:
        context = {"ec2:Subnet": f"{arn}:subnet/{subnet}", "ec2:Vpc": vpc_arn}
        checks.append(("ec2:CreateNetworkInterface", f"{arn}:subnet/{subnet}", context))
        checks.append(("ec2:CreateNetworkInterface", f"{arn}:network-interface/*", context))
        checks += [(action, f"{arn}:network-interface/*", context) for action in ENI_MANAGEMENT]
    checks += [("ec2:CreateNetworkInterface", f"{arn}:security-group/{g}", {"ec2:Vpc": vpc_arn}) for g in groups]
    checks += [(action, "*", {}) for action in DESCRIBE]
    for action, resource, context in checks:
        if iam_policy.evaluate(policies, action, resource, context).decision != iam_policy.ALLOW:
            return action, resource
    return None
