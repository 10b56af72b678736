"""Locked-down jobs on the sandbox: what the VPC checks and network isolation cost per job, as ratios
against the raw operations measured in the same run.

- VPC check (subnets and groups exist, one VPC, the role's network-interface permissions evaluated for
  every action SageMaker needs) vs moto's own subnet + security group lookups.
- An isolated step script (fresh network namespace, or the socket guard) vs the same script started
  plainly, both as a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCOUNT, REGION = "111111111111", "us-east-1"


def median_seconds(func, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def vpc_check_figures(runs: int = 200) -> tuple[float, float]:
    os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT  # the dev environment's account, as the policy names it
    # imported only now: moto reads MOTO_ACCOUNT_ID when it loads
    import boto3
    from moto import mock_aws
    from moto.ec2.models import ec2_backends

    from iam.policies import vpc_network_interfaces
    from mlops_core.config import parse_environment
    from sandbox.engine import network

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
        path = REPO / "environments" / "dev.yaml"
        env = parse_environment(
            path.read_text() + f"\nnetwork:\n  subnets: [{subnet}]\n  security_groups: [{group}]\n", str(path), path
        )
        iam = boto3.client("iam", region_name=REGION)
        iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")
        iam.put_role_policy(RoleName="bench", PolicyName="eni", PolicyDocument=json.dumps(vpc_network_interfaces(env)))
        role = f"arn:aws:iam::{ACCOUNT}:role/bench"
        vpc_config = {"Subnets": [subnet], "SecurityGroupIds": [group]}
        backend = ec2_backends[ACCOUNT][REGION]

        def raw():
            backend.get_subnet(subnet)
            backend.get_security_group_from_id(group)

        checked = median_seconds(lambda: network.check(vpc_config, role, ACCOUNT, REGION, "CreateTrainingJob"), runs)
        return checked, median_seconds(raw, runs)


def isolation_figures(runs: int = 7) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "step.py"
        script.write_text("import json, os\nprint(json.dumps(sorted(os.environ)[:1]))\n")
        wrapper = REPO / "sandbox" / "engine" / "isolated.py"
        plain = median_seconds(
            lambda: subprocess.run([sys.executable, str(script)], check=True, capture_output=True), runs
        )
        isolated = median_seconds(
            lambda: subprocess.run([sys.executable, str(wrapper), str(script)], check=True, capture_output=True), runs
        )
        how = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(wrapper.parent)!r}); import isolated; print(isolated.isolate())",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return isolated, plain, how


def main() -> None:
    checked, raw = vpc_check_figures()
    print(
        f"VPC check per job: {checked * 1e3:.2f} ms; moto's raw subnet+group lookup {raw * 1e3:.3f} ms "
        f"(ratio {checked / raw:.0f}x)"
    )
    isolated, plain, how = isolation_figures()
    print(
        f"isolated step start ({how}): {isolated * 1e3:.0f} ms; plain start {plain * 1e3:.0f} ms "
        f"(ratio {isolated / plain:.2f}x)"
    )


if __name__ == "__main__":
    main()
