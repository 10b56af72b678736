"""The real train pipeline of a locked-down environment on the sandbox: bootstrap-account grants the
execution role the network-interface permissions for the environment's subnets, every job runs in the
VPC (isolated where the container allows it), a double throttle injected on Train is absorbed by the
step's retry policy, and without the permissions the first job is refused.

AWS: https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html,
https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import BIN, REPO, run_cli

DEV = "111111111111"


@pytest.fixture(scope="module")
def locked_down(sandbox_server, tmp_path_factory):
    from mlops_core.config import load_environment
    from mlops_core.session import Sessions
    from pipelines.definitions import build_pipelines
    from sandbox import client

    client.reset()
    env = load_environment("dev", env_dir=REPO / "environments")
    sessions = Sessions(env)
    ec2 = sessions.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="ml-jobs", Description="ml jobs", VpcId=vpc)["GroupId"]
    directory = tmp_path_factory.mktemp("locked-down")
    path = directory / "dev.yaml"
    path.write_text(
        (REPO / "environments" / "dev.yaml").read_text()
        + f"\nnetwork:\n  subnets: [{subnet}]\n  security_groups: [{group}]\n  isolation: true\n"
        + "retry:\n  service: {max_attempts: 2, interval_seconds: 1, backoff_rate: 2}\n"
    )
    for account in ("dev", "registry"):
        done = subprocess.run(
            [str(BIN / "bootstrap-account"), "--env", str(path), "--account", account, "--apply"],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
    env = load_environment(str(path))
    spec = build_pipelines(env, "train")["train"]
    for upload in spec.uploads:
        sessions.client("s3").put_object(
            Bucket=upload.bucket,
            Key=upload.key,
            Body=upload.body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=env.kms_key_alias,
        )
    sm = sessions.client("sagemaker")
    sm.create_pipeline(PipelineName=spec.name, PipelineDefinition=spec.definition, RoleArn=spec.role_arn)
    return {"env": env, "sessions": sessions, "sm": sm, "spec": spec, "subnet": subnet, "group": group}


def _run(sm, name, timeout=300):
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if described["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
            return arn, described["PipelineExecutionStatus"], {s["StepName"]: s for s in steps}
        time.sleep(0.25)
    raise AssertionError(f"{arn} still running after {timeout}s")


def _job(sm, kind, step):
    name = step["Metadata"][f"{kind}Job"]["Arn"].rsplit("/", 1)[1]
    listed = getattr(sm, f"list_{kind.lower()}_jobs")(MaxResults=100)[f"{kind}JobSummaries"]
    real = next(j[f"{kind}JobName"] for j in listed if j[f"{kind}JobName"].lower() == name)
    return getattr(sm, f"describe_{kind.lower()}_job")(**{f"{kind}JobName": real})


def test_train_runs_in_the_vpc_and_a_double_throttle_on_train_is_retried(locked_down):
    sm, name = locked_down["sm"], locked_down["spec"].name
    vpc = {"Subnets": [locked_down["subnet"]], "SecurityGroupIds": [locked_down["group"]]}
    fault = run_cli(
        "sandbox", "fault", "--pipeline", name, "--step", "Train", "--error", "ThrottlingException", "--times", "2"
    )
    assert fault.returncode == 0, fault.stderr
    arn, status, steps = _run(sm, name)
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert steps["Train"]["AttemptCount"] == 3
    attempts = json.loads(run_cli("sandbox", "attempts", arn, "--output", "json").stdout)
    train = next(s for s in attempts["steps"] if s["StepName"] == "Train")["Attempts"]
    assert [a.get("RetryAfterSeconds") for a in train] == [1.0, 2.0, None]
    preprocess = _job(sm, "Processing", steps["Preprocess"])
    assert preprocess["NetworkConfig"]["VpcConfig"] == vpc
    evaluate = _job(sm, "Processing", steps["Evaluate"])
    # both call AWS from their container (the dataset's parts in S3, the registry): in the VPC, not isolated
    assert preprocess["NetworkConfig"]["EnableNetworkIsolation"] is False
    assert evaluate["NetworkConfig"] == {**preprocess["NetworkConfig"], "EnableNetworkIsolation": False}
    trained = _job(sm, "Training", steps["Train"])
    assert trained["VpcConfig"] == vpc
    assert trained["EnableNetworkIsolation"] is True and trained["EnableInterContainerTrafficEncryption"] is True


def test_without_the_bootstrapped_network_permissions_the_first_job_is_refused(locked_down):
    iam, env = locked_down["sessions"].client("iam"), locked_down["env"]
    role = env.roles.execution
    document = iam.get_role_policy(RoleName=role, PolicyName="vpc-network-interfaces")["PolicyDocument"]
    iam.delete_role_policy(RoleName=role, PolicyName="vpc-network-interfaces")
    try:
        _, status, steps = _run(locked_down["sm"], locked_down["spec"].name)
    finally:
        iam.put_role_policy(RoleName=role, PolicyName="vpc-network-interfaces", PolicyDocument=json.dumps(document))
    assert status == "Failed" and set(steps) == {"Preprocess"}
    assert (
        f"not authorized to perform: ec2:CreateNetworkInterface on resource: "
        f"arn:aws:ec2:us-east-1:{DEV}:subnet/{locked_down['subnet']}" in steps["Preprocess"]["FailureReason"]
    )
