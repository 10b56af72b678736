"""The `network:` and `retry:` blocks of an environment: what a locked-down VPC and retries take, and
one exact line (exit 2) for each way of getting them wrong. Limits are AWS's:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_VpcConfig.html (1-16 subnets, 1-5 security
groups), https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html (MaxAttempts at most
20, IntervalSeconds at most 43200) and
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ParallelismConfiguration.html (at least 1)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import yaml

from mlops_core.config import Network, Retries, RetryPolicy, load_environment
from mlops_core.errors import ConfigError
from tests.conftest import REPO, run_cli

BASE = yaml.safe_load((REPO / "environments" / "prod.yaml").read_text())
SUBNET, SUBNET2, SG = "subnet-0123456789abcdef0", "subnet-0a1b2c3d", "sg-0123456789abcdef0"
NETWORK = {"subnets": [SUBNET, SUBNET2], "security_groups": [SG]}


def _write(tmp_path, **top):
    data = copy.deepcopy(BASE)
    data.update(top)
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_network_and_retry_blocks_load(tmp_path):
    env = load_environment(
        str(
            _write(
                tmp_path,
                network={**NETWORK, "isolation": ["Preprocess", "Train"]},
                retry={"service": {"max_attempts": 4}, "jobs": {"interval_seconds": 30}, "max_parallel_steps": 3},
            )
        )
    )
    assert env.network == Network((SUBNET, SUBNET2), (SG,), ("Preprocess", "Train"))
    assert env.network.isolates("Train") and not env.network.isolates("Evaluate")
    assert env.retries == Retries(RetryPolicy(4, 5, 2.0), RetryPolicy(3, 30, 2.0), 3)


def test_without_the_blocks_there_is_no_network_and_default_retries():
    env = load_environment("prod", env_dir=REPO / "environments")
    assert env.network is None
    assert env.retries == Retries()
    for policy in (env.retries.service, env.retries.jobs):
        assert 1 <= policy.max_attempts <= 20 and 1 <= policy.interval_seconds <= 43200 and policy.backoff_rate >= 1


def test_an_arn_of_this_environment_is_reduced_to_its_id(tmp_path):
    arn = f"arn:aws:ec2:us-east-1:222222222222:subnet/{SUBNET}"
    env = load_environment(str(_write(tmp_path, network={**NETWORK, "subnets": [arn]})))
    assert env.network.subnets == (SUBNET,)


BAD = [
    (
        {"network": {**NETWORK, "subnets": ["subnet-12345"]}},
        "network.subnets[0]: 'subnet-12345' is not a subnet id (subnet-0123456789abcdef0) or subnet ARN",
    ),
    (
        {"network": {**NETWORK, "security_groups": ["sg-XYZ12345"]}},
        (
            "network.security_groups[0]: 'sg-XYZ12345' is not a security group id (sg-0123456789abcdef0) or "
            "security-group ARN"
        ),
    ),
    (
        {"network": {**NETWORK, "subnets": [SG]}},
        f"network.subnets[0]: '{SG}' is not a subnet id (subnet-0123456789abcdef0) or subnet ARN",
    ),
    (
        {"network": {**NETWORK, "subnets": [f"arn:aws:ec2:eu-west-1:222222222222:subnet/{SUBNET}"]}},
        (
            f"network.subnets[0]: 'arn:aws:ec2:eu-west-1:222222222222:subnet/{SUBNET}' is in region eu-west-1; "
            "jobs of this environment run in us-east-1"
        ),
    ),
    (
        {"network": {**NETWORK, "security_groups": [f"arn:aws:ec2:us-east-1:111111111111:security-group/{SG}"]}},
        (
            f"network.security_groups[0]: 'arn:aws:ec2:us-east-1:111111111111:security-group/{SG}' belongs to "
            "account 111111111111; jobs of this environment run in 222222222222"
        ),
    ),
    (
        {"network": {"subnets": [SUBNET]}},
        "network.security_groups: required with network.subnets: a job in a VPC needs both subnets and security groups",
    ),
    (
        {"network": {"security_groups": [SG]}},
        "network.subnets: required with network.security_groups: a job in a VPC needs both subnets and security groups",
    ),
    (
        {"network": {**NETWORK, "subnets": [f"subnet-{i:017x}" for i in range(17)]}},
        "network.subnets: 17 entries: SageMaker's VpcConfig accepts at most 16",
    ),
    ({"network": {**NETWORK, "subnets": [SUBNET, SUBNET]}}, f"network.subnets[1]: '{SUBNET}' is listed twice"),
    (
        {"network": {**NETWORK, "isolation": "yes"}},
        "network.isolation: 'yes' is not true, false or a list of step names",
    ),
    (
        {"network": {**NETWORK, "vpc": "vpc-1"}},
        "network.vpc: unknown field (expected one of: isolation, security_groups, subnets)",
    ),
    (
        {"retry": {"service": {"max_attempts": 21}}},
        "retry.service.max_attempts: 21 is not a whole number between 1 and 20",
    ),
    ({"retry": {"jobs": {"max_attempts": 0}}}, "retry.jobs.max_attempts: 0 is not a whole number between 1 and 20"),
    (
        {"retry": {"jobs": {"interval_seconds": 43201}}},
        "retry.jobs.interval_seconds: 43201 is not a whole number between 1 and 43200",
    ),
    ({"retry": {"service": {"backoff_rate": 0.5}}}, "retry.service.backoff_rate: 0.5 is not a number of at least 1"),
    ({"retry": {"max_parallel_steps": 0}}, "retry.max_parallel_steps: 0 is not a whole number of at least 1"),
]


@pytest.mark.parametrize("top, expected", BAD, ids=[b[1].split(":")[0] + f"-{i}" for i, b in enumerate(BAD)])
def test_bad_network_or_retry_settings_fail_with_one_line(tmp_path, top, expected):
    path = _write(tmp_path, **top)
    with pytest.raises(ConfigError) as err:
        load_environment(str(path))
    assert str(err.value) == f"{path}: {expected}"


def test_isolation_asked_for_a_step_that_needs_the_network_is_exit_2_naming_the_step(tmp_path):
    path = _write(tmp_path, network={**NETWORK, "isolation": ["Train", "Evaluate"]})
    result = run_cli("run-pipeline", "--env", str(path), "--pipeline", "train", "--dry-run")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "network.isolation[1]: 'Evaluate' cannot run network-isolated: its container calls the SageMaker API "
            "(the champion lookup in the registry)"
        )
    )
    assert result.stdout == ""


def test_the_locked_down_example_is_prod_plus_a_network_and_retries():
    """environments/examples/prod-locked-down.yaml shows the blocks on prod; nothing else may drift."""
    prod = load_environment("prod", env_dir=REPO / "environments")
    example = load_environment(str(REPO / "environments" / "examples" / "prod-locked-down.yaml"))
    assert example.network is not None and example.network.isolation is True
    assert replace(example, name="prod", source=prod.source, network=None, retries=prod.retries) == prod
