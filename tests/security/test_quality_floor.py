"""Quality floors belong to the environment (training.auc_threshold, champion_tolerance): a run may raise
them, never weaken them, whether it is started by `run-pipeline` or by any other StartPipelineExecution.
And an Approved version registered without metrics never stops later training runs.

Before: `--param AucThreshold=0.0` registered whatever the model scored; a direct start with that
parameter did the same; an Approved version without ModelMetrics failed every later training run
(`champion ... has no ModelMetrics.ModelQuality.Statistics`)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.conftest import REPO
from tests.security.pipeline_world import pipeline_world, registered_versions

HIGH_FLOOR = 0.9999  # above what the built-in data's model scores, so only the floor can stop it


@pytest.fixture(scope="module")
def world(sandbox_server):
    from mlops_core.config import load_environment

    env = load_environment("dev", env_dir=REPO / "environments")
    return pipeline_world(env, ("train",))


@pytest.mark.parametrize(
    "param, says",
    [
        ("AucThreshold=0.0", "AucThreshold=0.0 is below the environment's training.auc_threshold (0.9)"),
        ("ChampionTolerance=1", "ChampionTolerance=1 is above the environment's training.champion_tolerance (0.02)"),
    ],
)
def test_run_pipeline_refuses_a_weakened_floor_at_start(world, cli, param, says):
    before = world.sm.list_pipeline_executions(PipelineName=world.specs["train"].name)["PipelineExecutionSummaries"]
    done = cli("run-pipeline", "--env", "dev", "--pipeline", "train", "--start", "--param", param)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert says in line
    after = world.sm.list_pipeline_executions(PipelineName=world.specs["train"].name)["PipelineExecutionSummaries"]
    assert after == before, "nothing may be started"


def test_raising_the_floor_is_allowed(world):
    from pipelines.floors import check_quality_floors

    check_quality_floors(world.env, {"AucThreshold": "0.95", "ChampionTolerance": "0.01"})  # no error


def test_a_run_started_directly_with_threshold_zero_is_still_held_to_the_environments_floor(world):
    """The floor is a literal of the definition: StartPipelineExecution with AucThreshold=0.0 (no CLI
    involved) fails ModelQualityBelowThreshold and registers nothing."""
    from pipelines.definitions import build_pipelines

    strict = replace(world.env, training=replace(world.env.training, auc_threshold=HIGH_FLOOR))
    spec = build_pipelines(strict, ("train",))["train"]  # same code bundle: only the floor differs
    world.sm.update_pipeline(PipelineName=spec.name, PipelineDefinition=spec.definition, RoleArn=spec.role_arn)
    try:
        arn = world.start("train", AucThreshold="0.0", ChampionTolerance="1.0")
        status, steps = world.wait(arn)
    finally:
        original = world.specs["train"]
        world.sm.update_pipeline(
            PipelineName=original.name, PipelineDefinition=original.definition, RoleArn=original.role_arn
        )
    assert status == "Failed", {n: s.get("FailureReason") for n, s in steps.items()}
    reason = steps["ModelQualityBelowThreshold"]["FailureReason"]
    assert f"is below AucThreshold {HIGH_FLOOR:.4f}" in reason
    assert f"AucThreshold 0.0000 is below the environment's {HIGH_FLOOR:.4f}, which applies" in reason
    assert "ChampionTolerance 1.0000 is above the environment's 0.0200, which applies" in reason
    assert not registered_versions(world)


def test_an_approved_champion_without_metrics_is_skipped_and_named_not_a_crash(world, cli, tmp_path):
    """Someone approves a version registered by hand without ModelMetrics: the next training run still
    succeeds, its evaluation report names the skipped version, and the approval report says so."""
    registry = world.registry()
    bare = registry.create_model_package(
        ModelPackageGroupName=world.env.model_package_group_arn,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://{world.env.buckets.registry}/dev/by-hand/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    status, steps = world.wait(world.start("train"))
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}

    [candidate] = [p for p in registered_versions(world) if p["ModelPackageArn"] != bare]
    package = registry.describe_model_package(ModelPackageName=candidate["ModelPackageArn"])
    uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, _, key = uri[len("s3://") :].partition("/")
    s3 = world.sessions.client("s3", world.sessions.in_account(world.env.registry_account_id))
    decision = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["decision"]
    assert decision["champion_auc"] is None
    assert decision["champions_skipped"] == [
        {"model_package_arn": bare, "reason": "no ModelMetrics.ModelQuality.Statistics"}
    ]

    version = candidate["ModelPackageVersion"]
    done = cli(
        "promote", "report", "--env", "dev", "--version", str(version), "--out", str(tmp_path), env={"MLOPS_AS": "alex"}
    )
    assert done.returncode == 0, done.stderr
    markdown = next(tmp_path.glob("*/report.md")).read_text()
    assert "No other Approved version has metrics to compare with." in markdown
    assert "Skipped as champion: version 1 is Approved but has no ModelMetrics.ModelQuality.Statistics" in markdown
