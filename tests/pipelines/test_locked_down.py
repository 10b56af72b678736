"""With a `network:` block every job of every pipeline runs in the VPC, network-isolated where its
container allows it, with inter-container traffic encrypted and the environment's key on volumes and
outputs; every step that takes a retry policy has one; without the block nothing about networking
changes. Fields as AWS documents them:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html (NetworkConfig),
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html (VpcConfig,
EnableNetworkIsolation, EnableInterContainerTrafficEncryption),
https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html (which steps take RetryPolicies)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from mlops_core.config import parse_environment
from pipelines.definitions import NEEDS_NETWORK, PIPELINES, STEPS_DIR, build_pipelines
from tests.conftest import REPO

SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
GROUPS = ["sg-0123456789abcdef0"]
VPC = {"Subnets": SUBNETS, "SecurityGroupIds": GROUPS}
KMS = {"Get": "Parameters.KmsKeyId"}
NETWORK_KEYS = ("NetworkConfig", "VpcConfig", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption")
JOB_STEPS = {"Processing", "Training", "Tuning", "Transform"}
RETRYABLE = JOB_STEPS | {"Model", "RegisterModel"}
SERVICE = ["Step.SERVICE_FAULT", "Step.THROTTLING"]
JOBS = ["SageMaker.RESOURCE_LIMIT", "SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR"]


def _environment(extra: str = ""):
    path = REPO / "environments" / "dev.yaml"
    return parse_environment(path.read_text() + extra, str(path), Path(path))


LOCKED_DOWN = f"""
network:
  subnets: {json.dumps(SUBNETS)}
  security_groups: {json.dumps(GROUPS)}
  isolation: true
retry:
  service: {{max_attempts: 4, interval_seconds: 3, backoff_rate: 1.5}}
  jobs: {{max_attempts: 2, interval_seconds: 90, backoff_rate: 3}}
  max_parallel_steps: 2
"""


@pytest.fixture(scope="module")
def locked_down_specs():
    return build_pipelines(_environment(LOCKED_DOWN))


def all_steps(steps):
    for step in steps:
        yield step
        yield from all_steps(step.get("Arguments", {}).get("IfSteps", []))
        yield from all_steps(step.get("Arguments", {}).get("ElseSteps", []))


def steps_of(spec) -> list[dict]:
    return list(all_steps(json.loads(spec.definition)["Steps"]))


def _base_name(step) -> str:
    # the SDK names a ModelStep's inner step "<ModelStep name>-CreateModel" / "-RegisterModel"
    return step["Name"].split("-")[0]


def test_every_step_of_every_pipeline_is_locked_down(locked_down_specs):
    seen = set()
    for which in PIPELINES:
        for step in steps_of(locked_down_specs[which]):
            kind, args, name = step["Type"], step.get("Arguments", {}), _base_name(step)
            seen.add(kind)
            isolated = name not in NEEDS_NETWORK
            if kind == "Processing":
                assert args["NetworkConfig"] == {
                    "VpcConfig": VPC,
                    "EnableNetworkIsolation": isolated,
                    "EnableInterContainerTrafficEncryption": True,
                }, name
                assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS
                if "ProcessingOutputConfig" in args or not name.startswith("Publish"):  # publishing writes no S3
                    assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS
            elif kind in ("Training", "Tuning"):
                job = args if kind == "Training" else args["TrainingJobDefinition"]
                assert job["VpcConfig"] == VPC, name
                assert job["EnableNetworkIsolation"] is isolated is True, name
                assert job["EnableInterContainerTrafficEncryption"] is True, name
                resources = job.get("ResourceConfig") or job["HyperParameterTuningResourceConfig"]
                assert resources["VolumeKmsKeyId"] == KMS and job["OutputDataConfig"]["KmsKeyId"] == KMS
                # isolated script mode: the code arrives as an input channel, not fetched by the container
                assert "code" in {c["ChannelName"] for c in job["InputDataConfig"]}
            elif kind == "Model":
                assert args["VpcConfig"] == VPC, name
                assert args.get("EnableNetworkIsolation", False) is isolated is False
            elif kind == "Transform":
                # a transform job runs in its model's VPC (CreateTransformJob has no VpcConfig)
                assert args["TransformResources"]["VolumeKmsKeyId"] == KMS
                assert args["TransformOutput"]["KmsKeyId"] == KMS
            else:
                assert not set(NETWORK_KEYS) & set(args), name
            policies = step.get("RetryPolicies")
            if kind in RETRYABLE:
                expected = [{"ExceptionType": SERVICE, "IntervalSeconds": 3, "BackoffRate": 1.5, "MaxAttempts": 4}]
                if kind in JOB_STEPS:
                    expected.append(
                        {"ExceptionType": JOBS, "IntervalSeconds": 90, "BackoffRate": 3.0, "MaxAttempts": 2}
                    )
                assert policies == expected, name
            else:
                assert policies is None, f"{name}: AWS takes no retry policy on a {kind} step"
        assert locked_down_specs[which].parallelism == {"MaxParallelExecutionSteps": 2}
    assert seen >= {"Processing", "Training", "Tuning", "Model", "Transform", "RegisterModel", "Lambda"}


def test_needs_network_lists_only_steps_that_exist(locked_down_specs):
    names = {_base_name(s) for spec in locked_down_specs.values() for s in steps_of(spec)}
    assert set(NEEDS_NETWORK) <= names


def _without_network(node):
    if isinstance(node, dict):
        return {k: _without_network(v) for k, v in node.items() if k not in NETWORK_KEYS and k != "RetryPolicies"}
    if isinstance(node, list):
        return [_without_network(v) for v in node]
    return node


def _without_code_channel(definition: dict) -> dict:
    """Isolated script-mode training receives its code as a channel; put it back the way a job with
    network fetches it, to compare the rest."""
    for step in all_steps(definition["Steps"]):
        args = step.get("Arguments", {})
        for job in (args, args.get("TrainingJobDefinition") or {}):
            channels = job.get("InputDataConfig")
            if channels and any(c["ChannelName"] == "code" for c in channels):
                job["InputDataConfig"] = [c for c in channels if c["ChannelName"] != "code"]
                hp = job.get("HyperParameters") or job.get("StaticHyperParameters")
                hp["sagemaker_submit_directory"] = "<code>"
        for job in (args, args.get("TrainingJobDefinition") or {}):
            hp = job.get("HyperParameters") or job.get("StaticHyperParameters") or {}
            if "sagemaker_submit_directory" in hp:
                hp["sagemaker_submit_directory"] = "<code>"
    return definition


def test_without_a_network_block_the_definitions_have_no_network_settings_and_differ_only_by_them(
    dev_specs, locked_down_specs
):
    plain = {which: json.loads(spec.definition) for which, spec in dev_specs.items()}
    for which, definition in plain.items():
        text = json.dumps(definition)
        for key in NETWORK_KEYS:
            assert key not in text, f"{which}: {key} without a network block"
    # the network block adds its settings and nothing else (retry policies are there either way)
    for which in PIPELINES:
        locked = _without_code_channel(_without_network(json.loads(locked_down_specs[which].definition)))
        assert _publishing_in_the_step(locked) == _without_code_channel(_without_network(plain[which]))


def test_shipped_environments_retry_every_step_that_takes_a_policy(dev_specs):
    for spec in dev_specs.values():
        for step in steps_of(spec):
            if step["Type"] in RETRYABLE:
                kinds = [p["ExceptionType"] for p in step["RetryPolicies"]]
                assert kinds[0] == SERVICE and (kinds[1:] == [JOBS] if step["Type"] in JOB_STEPS else kinds[1:] == [])


def _publishing_in_the_step(definition: dict) -> dict:
    """An isolated check cannot reach CloudWatch: it only writes metrics.json and a Publish<step>Metrics job
    publishes it. Put publishing back into the check, the way a check with network does it, to compare."""

    def strip(steps: list) -> list:
        kept = []
        for step in steps:
            if re.fullmatch(r"Publish\w+Metrics", step["Name"]):
                checked = step["Name"][len("Publish") : -len("Metrics")]
                publisher[checked] = step
                continue
            args = step.get("Arguments") or {}
            for branch in ("IfSteps", "ElseSteps"):
                if branch in args:
                    args[branch] = strip(args[branch])
            kept.append(step)
        return kept

    publisher: dict = {}
    definition["Steps"] = strip(definition["Steps"])
    names = {f"Publish{check}Metrics" for check in publisher}
    for step in all_steps(definition["Steps"]):
        if step["Name"] in publisher:
            step["Arguments"]["AppSpecification"]["ContainerArguments"].append("--publish-metrics")
        if names & set(step.get("DependsOn") or ()):  # the condition waits for the publishing job
            step["DependsOn"] = [d for d in step["DependsOn"] if d not in names]
            if not step["DependsOn"]:
                del step["DependsOn"]
    return definition


def _local_modules(script: Path) -> set[Path]:
    """The step script and every module of pipelines/steps/ it imports, transitively."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            todo += [STEPS_DIR / f"{n.split('.')[0]}.py" for n in names]
    return seen


def test_no_step_that_runs_isolated_calls_aws_from_its_container(locked_down_specs):
    """A step script (or a module of pipelines/steps/ it imports) that uses boto3 needs the network: it
    must be listed in NEEDS_NETWORK, or it would fail on AWS with no network and no credentials."""
    checked = set()
    for spec in locked_down_specs.values():
        for step in steps_of(spec):
            args = step.get("Arguments", {})
            job = args.get("TrainingJobDefinition") or args
            if step["Type"] == "Processing":
                isolated = args["NetworkConfig"]["EnableNetworkIsolation"]
                script = STEPS_DIR / Path(args["AppSpecification"]["ContainerEntrypoint"][-1]).name
            elif step["Type"] in ("Training", "Tuning"):
                isolated = job["EnableNetworkIsolation"]
                hps = job.get("HyperParameters") or job.get("StaticHyperParameters")
                script = STEPS_DIR / json.loads(hps["sagemaker_program"])
            else:
                continue
            if not isolated:
                continue
            modules = _local_modules(script)
            if "--publish-metrics" not in args.get("AppSpecification", {}).get("ContainerArguments", []):
                # the metric contract calls CloudWatch only when asked to publish; an isolated step never is
                modules.discard(STEPS_DIR / "metric_data.py")
            uses_aws = [p.name for p in modules if "boto3" in p.read_text()]
            assert uses_aws == [], f"{step['Name']} runs isolated but {uses_aws} call AWS: add it to NEEDS_NETWORK"
            checked.add(step["Name"])
    assert checked >= {"Train", "Tune", "DataDriftCheck"}
