"""Approved bytes are immutable and verified.

Before: a version pointed at objects under dev/ in the registry bucket, which the dev execution role
could overwrite at any time (model.tar.gz, evaluation.json, the baseline); nothing noticed, inference
used the new bytes and the approval report showed the forged AUC.

Now the train pipeline's Seal step copies what a version points at under sealed/<account>/ with
`If-None-Match: *` and records each sha256 on the version; the registry bucket policy denies the
workload roles any put there without that header, and any delete
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html: S3 answers 412
PreconditionFailed when the key exists). Inference's first step and the reports check each sha256."""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import REPO
from tests.iam.conftest import trust_account_root_too
from tests.security.pipeline_world import pipeline_world, registered_versions


@pytest.fixture(scope="module")
def world(sandbox_server):
    """dev trained version 1 with the real train pipeline; the registry's admin approved it."""
    from mlops_core.config import load_environment

    env = load_environment("dev", env_dir=REPO / "environments")
    story = pipeline_world(env, ("train", "inference"))
    status, steps = story.wait(story.start("train"))
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    [summary] = registered_versions(story)
    registry = story.registry()
    registry.update_model_package(ModelPackageArn=summary["ModelPackageArn"], ModelApprovalStatus="Approved")
    story.package = registry.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    story.registry_s3 = story.sessions.client("s3", story.sessions.in_account(env.registry_account_id))
    return story


def _uris(package) -> dict:
    """What the version points at, by the metadata entry holding its sha256."""
    baselines = package["DriftCheckBaselines"]["ModelDataQuality"]
    return {
        "model_sha256": package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
        "evaluation_sha256": package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"],
        "statistics_sha256": baselines["Statistics"]["S3Uri"],
        "constraints_sha256": baselines["Constraints"]["S3Uri"],
    }


def _split(uri):
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _read(world, uri) -> bytes:
    bucket, key = _split(uri)
    return world.registry_s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _plant(world, uri, body: bytes) -> None:
    """What an account admin (not a workload role) can still do: the hash check is what catches it."""
    bucket, key = _split(uri)
    world.registry_s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=f"alias/{world.env.project}-registry",
    )


def test_each_version_records_the_sha256_of_what_it_points_at(world):
    metadata = world.package["CustomerMetadataProperties"]
    for entry, uri in _uris(world.package).items():
        assert uri.startswith(f"s3://{world.env.buckets.registry}/sealed/dev/"), uri
        assert metadata[entry] == hashlib.sha256(_read(world, uri)).hexdigest(), entry


def test_the_dev_execution_role_cannot_change_the_objects_of_an_approved_version(world):
    sessions, env = world.sessions, world.env
    role_arn = env.role_arn("execution")
    trust_account_root_too(sessions, role_arn)
    execution = sessions.assume(role_arn, purpose="attacker", source=sessions.in_account(env.account_id))
    s3 = sessions.client("s3", execution)
    dev_key = sessions.client("kms").describe_key(KeyId=env.kms_key_alias)["KeyMetadata"]["Arn"]
    forged = json.dumps({"binary_classification_metrics": {"auc": {"value": 0.999}}}).encode()
    for entry, uri in _uris(world.package).items():
        bucket, key = _split(uri)
        before = _read(world, uri)
        encrypted = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": dev_key}
        with pytest.raises(ClientError) as plain:
            s3.put_object(Bucket=bucket, Key=key, Body=forged, **encrypted)
        assert plain.value.response["Error"]["Code"] == "AccessDenied", entry
        with pytest.raises(ClientError) as conditional:
            s3.put_object(Bucket=bucket, Key=key, Body=forged, IfNoneMatch="*", **encrypted)
        assert conditional.value.response["Error"]["Code"] == "PreconditionFailed", entry
        with pytest.raises(ClientError) as delete:
            s3.delete_object(Bucket=bucket, Key=key)
        assert delete.value.response["Error"]["Code"] == "AccessDenied", entry
        assert _read(world, uri) == before, entry


def test_inference_uses_verified_bytes_and_refuses_a_changed_model_naming_version_and_object(world):
    status, steps = world.wait(world.start("inference"))
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}

    uri = _uris(world.package)["model_sha256"]
    original = _read(world, uri)
    _plant(world, uri, original + b"\0planted")
    try:
        status, steps = world.wait(world.start("inference"))
    finally:
        _plant(world, uri, original)
    assert status == "Failed"
    assert set(steps) == {"LatestApprovedModel"}, "nothing may run on the changed model"
    reason = steps["LatestApprovedModel"]["FailureReason"]
    assert f"version 1 ({world.package['ModelPackageArn']}): {uri} has sha256" in reason
    assert f"not the {world.package['CustomerMetadataProperties']['model_sha256']} recorded at registration" in reason


def test_the_report_refuses_to_show_a_forged_auc(world, cli, tmp_path):
    uri = _uris(world.package)["evaluation_sha256"]
    original = _read(world, uri)
    forged = json.loads(original)
    forged["binary_classification_metrics"]["auc"]["value"] = 0.999
    _plant(world, uri, json.dumps(forged).encode())
    try:
        approver = {"MLOPS_AS": "alex"}  # a person reads the report (the approver's source identity)
        done = cli("promote", "report", "--env", "dev", "--version", "1", "--out", str(tmp_path), env=approver)
        status = cli("promote", "status", "--env", "dev", "--output", "json", env=approver)
    finally:
        _plant(world, uri, original)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"version 1: {uri} has sha256" in line and "recorded at registration" in line
    assert "0.999" not in done.stdout + done.stderr and not list(tmp_path.glob("*/report.*"))
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)
    # status shows the AUC the pipeline recorded on the version at registration (no workload role can
    # change it afterwards), not the forged report's
    recorded = float(world.package["CustomerMetadataProperties"]["auc"])
    assert row["metrics"]["auc"] == recorded != 0.999 and row["integrity"] == ""
