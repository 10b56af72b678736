"""Jobs in a VPC: the sandbox refuses what SageMaker refuses (unknown subnet or security group, another
account's subnet, subnets and groups of different VPCs, an execution role without the network-interface
permissions), accepts the role the bootstrap generates, shows the network configuration on the job, and
gives a network-isolated step script no network and no credentials.

AWS: https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html (the EC2 actions the role needs),
https://docs.aws.amazon.com/sagemaker/latest/dg/train-vpc.html,
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_NetworkConfig.html,
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html (EnableNetworkIsolation:
no outbound calls, no AWS credentials in the container),
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html (InvalidSubnetID.NotFound,
InvalidGroup.NotFound texts). Differs: AWS reports the refusal on the step as the job's failure; the
sandbox's wording for a missing permission is its own, naming the action and resource.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iam.policies import vpc_network_interfaces
from mlops_core.config import parse_environment
from tests.conftest import REPO
from tests.sandbox.engine.test_step_types import sourcedir, training_args
from tests.sandbox.pipeline_account import ACCOUNT, ROLE_NAME, processing_step

OTHER_ACCOUNT = "222222222222"


@pytest.fixture
def vpc(account):
    """Two VPCs in the pipeline account (a subnet and a security group in each) and a subnet in another."""
    ec2 = account.client("ec2")
    made = {}
    for label, cidr in (("a", "10.1.0.0/16"), ("b", "10.2.0.0/16")):
        vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        made[f"subnet_{label}"] = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr.replace("0.0/16", "1.0/24"))["Subnet"][
            "SubnetId"
        ]
        made[f"sg_{label}"] = ec2.create_security_group(GroupName=f"jobs-{label}", Description="jobs", VpcId=vpc_id)[
            "GroupId"
        ]
    other = account.client("ec2", account=OTHER_ACCOUNT)
    other_vpc = other.create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
    made["other_account_subnet"] = other.create_subnet(VpcId=other_vpc, CidrBlock="10.3.1.0/24")["Subnet"]["SubnetId"]
    return made


def grant_bootstrapped_eni_policy(account, subnets, groups):
    """The execution role gets exactly the document bootstrap-account generates for such a network block."""
    path = REPO / "environments" / "dev.yaml"
    env = parse_environment(
        path.read_text() + f"\nnetwork:\n  subnets: {json.dumps(subnets)}\n  security_groups: {json.dumps(groups)}\n",
        str(path),
        Path(path),
    )
    assert env.account_id == ACCOUNT
    account.client("iam").put_role_policy(
        RoleName=ROLE_NAME, PolicyName="vpc-network-interfaces", PolicyDocument=json.dumps(vpc_network_interfaces(env))
    )


def _job_name(account, step, kind):
    """The job's name as created (ARNs spell it in lower case)."""
    arn_name = step["Metadata"][f"{kind}Job"]["Arn"].rsplit("/", 1)[1]
    listed = getattr(account.client("sagemaker"), f"list_{kind.lower()}_jobs")()[f"{kind}JobSummaries"]
    return next(j[f"{kind}JobName"] for j in listed if j[f"{kind}JobName"].lower() == arn_name)


def network_step(account, subnets, groups, *, isolation=False, script="print('ran in the VPC')\n"):
    uri = account.put_script("job.py", script)
    step = processing_step("Job", uri.rsplit("/", 1)[0] + "/", "job.py", arguments=["--job", "vpc"])
    step["Arguments"]["NetworkConfig"] = {
        "EnableNetworkIsolation": isolation,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {"Subnets": subnets, "SecurityGroupIds": groups},
    }
    return step


def run_job(account, step):
    described, steps = account.run("vpc-jobs", {"Parameters": [], "Steps": [step]})
    return described["PipelineExecutionStatus"], steps["Job"]


def test_the_bootstrapped_role_runs_a_job_in_the_vpc_and_describe_shows_its_network(account, vpc):
    grant_bootstrapped_eni_policy(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    status, step = run_job(account, network_step(account, [vpc["subnet_a"]], [vpc["sg_a"]]))
    assert status == "Succeeded", step.get("FailureReason")
    job = account.client("sagemaker").describe_processing_job(ProcessingJobName=_job_name(account, step, "Processing"))
    assert job["NetworkConfig"] == {
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {"Subnets": [vpc["subnet_a"]], "SecurityGroupIds": [vpc["sg_a"]]},
    }


def test_a_role_without_the_network_interface_permissions_is_refused(account, vpc):
    status, step = run_job(account, network_step(account, [vpc["subnet_a"]], [vpc["sg_a"]]))
    assert status == "Failed"
    assert step["FailureReason"] == (
        "ClientError: An error occurred (ValidationException) when calling the CreateProcessingJob operation: "
        f"The execution role arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME} is not authorized to perform: "
        f"ec2:CreateNetworkInterface on resource: arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/{vpc['subnet_a']} "
        "(SageMaker creates the job's network interfaces with it)"
    )


def test_the_bootstrapped_role_is_refused_in_a_subnet_it_was_not_generated_for(account, vpc):
    grant_bootstrapped_eni_policy(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    status, step = run_job(account, network_step(account, [vpc["subnet_b"]], [vpc["sg_b"]]))
    assert status == "Failed"
    assert "not authorized to perform: ec2:CreateNetworkInterface on resource: " in step["FailureReason"]
    assert f"subnet/{vpc['subnet_b']}" in step["FailureReason"]


@pytest.mark.parametrize(
    "subnet, group, message",
    [
        ("subnet-0123456789abcdef0", "sg_a", "The subnet ID 'subnet-0123456789abcdef0' does not exist"),
        ("other_account_subnet", "sg_a", "The subnet ID '{other_account_subnet}' does not exist"),
        ("subnet_a", "sg-0123456789abcdef0", "The security group 'sg-0123456789abcdef0' does not exist"),
        ("subnet_a", "sg_b", "Security group {sg_b} and subnet {subnet_a} belong to different networks."),
    ],
)
def test_unknown_foreign_or_mismatched_network_ids_are_refused_with_aws_errors(account, vpc, subnet, group, message):
    subnet, group = vpc.get(subnet, subnet), vpc.get(group, group)
    grant_bootstrapped_eni_policy(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    status, step = run_job(account, network_step(account, [subnet], [group]))
    assert status == "Failed"
    assert step["FailureReason"] == (
        "ClientError: An error occurred (ValidationException) when calling the CreateProcessingJob operation: "
        + message.format(**vpc)
    )


PROBE = """
import os, socket, sys
print("credentials:", "AWS_ACCESS_KEY_ID" in os.environ)
host, port = os.environ["AWS_ENDPOINT_URL"].rsplit("/", 1)[1].split(":")
socket.create_connection((host, int(port)), timeout=5).close()
print("connected")
"""


@pytest.mark.parametrize("isolation", [False, True])
def test_an_isolated_step_script_has_no_network_and_no_credentials(account, vpc, isolation):
    grant_bootstrapped_eni_policy(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    status, step = run_job(
        account, network_step(account, [vpc["subnet_a"]], [vpc["sg_a"]], isolation=isolation, script=PROBE)
    )
    if not isolation:
        assert status == "Succeeded", step.get("FailureReason")
        return
    assert status == "Failed"
    assert step["FailureReason"].startswith("AlgorithmError: ")
    assert "Network is unreachable" in step["FailureReason"] or "Connection refused" in step["FailureReason"]
    job = _job_name(account, step, "Processing")
    log = account.client("logs").get_log_events(
        logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=f"{job}/algo-1"
    )
    assert "credentials: False" in [e["message"] for e in log["events"]]


def test_isolated_script_mode_training_gets_its_code_as_the_code_channel(account, vpc):
    """What the SDK writes for an estimator with enable_network_isolation: the source tarball as a
    "code" input channel and sagemaker_submit_directory pointing into it."""
    account.put("train/train.csv", "1\n2\n3\n")
    grant_bootstrapped_eni_policy(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    args = training_args(sourcedir(account))
    code_uri = json.loads(args["HyperParameters"]["sagemaker_submit_directory"])
    args["HyperParameters"]["sagemaker_submit_directory"] = json.dumps("/opt/ml/input/data/code/sourcedir.tar.gz")
    args["InputDataConfig"].append(
        {
            "ChannelName": "code",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": code_uri}},
        }
    )
    args.update(
        VpcConfig={"Subnets": [vpc["subnet_a"]], "SecurityGroupIds": [vpc["sg_a"]]},
        EnableNetworkIsolation=True,
        EnableInterContainerTrafficEncryption=True,
    )
    described, steps = account.run(
        "vpc-train", {"Parameters": [], "Steps": [{"Name": "Train", "Type": "Training", "Arguments": args}]}
    )
    assert described["PipelineExecutionStatus"] == "Succeeded", steps["Train"].get("FailureReason")
    job = account.client("sagemaker").describe_training_job(
        TrainingJobName=_job_name(account, steps["Train"], "Training")
    )
    assert job["VpcConfig"] == {"Subnets": [vpc["subnet_a"]], "SecurityGroupIds": [vpc["sg_a"]]}
    assert job["EnableNetworkIsolation"] is True and job["EnableInterContainerTrafficEncryption"] is True


def test_the_bootstrapped_role_may_create_no_job_outside_the_environment_vpc(account, vpc):
    """AWS-enforced as well: the role's policy denies job creation whose request has no VpcConfig or other
    subnets (the sagemaker:VpcSubnets / sagemaker:VpcSecurityGroupIds condition keys,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html)."""
    grant_bootstrapped_eni_policy(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    step = network_step(account, [vpc["subnet_a"]], [vpc["sg_a"]])
    del step["Arguments"]["NetworkConfig"]
    status, job = run_job(account, step)
    assert status == "Failed"
    assert "AccessDenied" in job["FailureReason"] and "sagemaker:CreateProcessingJob" in job["FailureReason"]
    assert "explicit deny" in job["FailureReason"]
