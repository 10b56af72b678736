"""The inference pipeline's Lambda handler against the sandbox registry: it resolves the latest
Approved package at run time and refuses, with the group's ARN in the message, when there is none."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.pipelines.conftest import REPO


def load_handler():
    spec = importlib.util.spec_from_file_location(
        "latest_approved_lambda", REPO / "pipelines" / "inference" / "latest_approved.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registry(sandbox, dev_env, monkeypatch):
    """A model package group in the registry account; the Lambda's boto3 acts there as the runtime would."""
    from sandbox.client import SandboxBackend

    backend = SandboxBackend(sandbox)
    creds = backend.credentials[dev_env.registry_account_id]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
    if creds.get("aws_session_token"):
        monkeypatch.setenv("AWS_SESSION_TOKEN", creds["aws_session_token"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", backend.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", dev_env.region)
    session = backend.base_session(dev_env.region, dev_env.registry_account_id)
    client = session.client(
        "sagemaker", endpoint_url=backend.endpoint_url, config=backend.botocore_config(dev_env.region)
    )
    client.create_model_package_group(ModelPackageGroupName=dev_env.model_package_group)
    client.s3 = session.client("s3", endpoint_url=backend.endpoint_url, config=backend.botocore_config(dev_env.region))
    client.s3.create_bucket(Bucket=dev_env.buckets.registry)
    return client


def _put(client, bucket, key, body: bytes) -> str:
    """An artefact as the Seal step leaves it; returns its sha256."""
    import hashlib

    client.s3.put_object(Bucket=bucket, Key=key, Body=body)
    return hashlib.sha256(body).hexdigest()


def register(client, env, version_tag, status, baselines=True):
    bucket = env.buckets.registry
    recorded = {"model_sha256": _put(client, bucket, f"dev/models/{version_tag}/output/model.tar.gz", b"model")}
    if baselines:
        recorded["statistics_sha256"] = _put(client, bucket, f"dev/{version_tag}/statistics.json", b"{}")
        recorded["constraints_sha256"] = _put(client, bucket, f"dev/{version_tag}/constraints.json", b"{}")
    args = dict(
        CustomerMetadataProperties=recorded,
        ModelPackageGroupName=env.model_package_group,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://{bucket}/dev/models/{version_tag}/output/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    if baselines:
        args["DriftCheckBaselines"] = {
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/dev/{version_tag}/statistics.json",
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/dev/{version_tag}/constraints.json",
                },
            }
        }
    return client.create_model_package(**args)["ModelPackageArn"]


def test_no_approved_package_fails_the_step_naming_the_group(registry, dev_env):
    handler = load_handler()
    register(registry, dev_env, "candidate", "PendingManualApproval")
    with pytest.raises(handler.NoApprovedModel) as failure:
        handler.handler({"model_package_group_arn": dev_env.model_package_group_arn})
    assert str(failure.value).startswith(f"no approved model in {dev_env.model_package_group_arn}")


def test_latest_approved_package_is_resolved_at_run_time(registry, dev_env):
    handler = load_handler()
    register(registry, dev_env, "v1", "Approved")
    second = register(registry, dev_env, "v2", "Approved")
    register(registry, dev_env, "v3", "PendingManualApproval")
    found = handler.handler({"model_package_group_arn": dev_env.model_package_group_arn})
    assert found["model_package_arn"] == second
    assert found["model_version"] == "2"
    assert found["model_data_url"].endswith("/v2/output/model.tar.gz")
    assert found["baseline_statistics_uri"].endswith("/v2/statistics.json")
    assert found["baseline_constraints_uri"].endswith("/v2/constraints.json")
    assert found["image_uri"].endswith("sagemaker-xgboost:1.7-1")
    assert all(isinstance(v, str) for v in found.values()), "Lambda step outputs are declared as String"

    register(registry, dev_env, "v4", "Approved", baselines=False)
    with pytest.raises(handler.IncompleteModelPackage, match=r"has no DriftCheckBaselines\.ModelDataQuality"):
        handler.handler({"model_package_group_arn": dev_env.model_package_group_arn})


def test_evaluate_reads_the_champion_from_the_registered_report(registry, dev_env, steps, sandbox):
    from sandbox.client import SandboxBackend

    assert steps.evaluate.champion_auc(dev_env.model_package_group_arn) == (None, None, [])
    backend = SandboxBackend(sandbox)
    s3 = backend.base_session(dev_env.region, dev_env.registry_account_id).client(
        "s3", endpoint_url=backend.endpoint_url, config=backend.botocore_config(dev_env.region)
    )
    bucket = dev_env.buckets.registry
    report = json.dumps({"binary_classification_metrics": {"auc": {"value": 0.9612}}}).encode()
    evaluation_sha256 = _put(registry, bucket, "dev/run-1/evaluation/evaluation.json", report)
    older = register(registry, dev_env, "v1", "Approved")
    # The champion is the newest Approved version; its registered evaluation report holds its AUC.
    with_metrics = registry.create_model_package(
        ModelPackageGroupName=dev_env.model_package_group,
        ModelApprovalStatus="Approved",
        InferenceSpecification=registry.describe_model_package(ModelPackageName=older)["InferenceSpecification"],
        CustomerMetadataProperties={"evaluation_sha256": evaluation_sha256},
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/dev/run-1/evaluation/evaluation.json",
                }
            }
        },
    )
    register(registry, dev_env, "candidate", "PendingManualApproval")
    assert steps.evaluate.champion_auc(dev_env.model_package_group_arn) == (0.9612, with_metrics["ModelPackageArn"], [])
    decision = steps.evaluate.decide(0.95, 0.9, 0.9612, 0.01)
    assert decision["passed"] is False and decision["champion_minimum_auc"] == pytest.approx(0.9512)

    # a rewritten report is not believed: that champion is skipped (so is v1, which has no metrics)
    s3.put_object(Bucket=bucket, Key="dev/run-1/evaluation/evaluation.json", Body=report.replace(b"0.9612", b"0.5"))
    auc, arn, skipped = steps.evaluate.champion_auc(dev_env.model_package_group_arn)
    assert (auc, arn) == (None, None)
    assert [s["model_package_arn"] for s in skipped] == [with_metrics["ModelPackageArn"], older]
    assert f"not the {evaluation_sha256} recorded at registration" in skipped[0]["reason"]
