"""Lambda step of the inference pipeline: resolve, at run time, the latest Approved model package in
the central registry's group (by ARN, cross-account) and return what the next steps need: model data
URL, image, the data-quality baseline registered with it, and its version.

Before returning, it reads the model artefact and both baseline files and checks each against the
sha256 the version recorded at registration: a changed (or unrecorded) artefact fails the step naming
the version and the object, so nothing downstream runs on bytes nobody approved.

No approved package is a failure of this step with a message naming the group: scoring with no model
(or a stale one) must not go on. Only boto3, which the Lambda runtime provides.
"""

from __future__ import annotations

import hashlib
from typing import Any

import boto3

# step output -> the CustomerMetadataProperties entry holding its sha256 (pipelines/definitions.py)
RECORDED_SHA256 = {
    "model_data_url": "model_sha256",
    "baseline_statistics_uri": "statistics_sha256",
    "baseline_constraints_uri": "constraints_sha256",
}


class NoApprovedModel(Exception):
    """The group holds no package whose status is Approved."""


class IncompleteModelPackage(Exception):
    """The approved package lacks something batch inference needs (container, baseline)."""


def latest_approved_package(sagemaker: Any, group_arn: str) -> dict:
    """DescribeModelPackage of the newest Approved package in the group."""
    found = sagemaker.list_model_packages(
        ModelPackageGroupName=group_arn,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = found.get("ModelPackageSummaryList", [])
    if not summaries:
        raise NoApprovedModel(
            f"no approved model in {group_arn}: approve a version "
            "(promote approve --version N) before running inference"
        )
    return sagemaker.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def outputs_for(package: dict) -> dict:
    arn = package["ModelPackageArn"]
    containers = package.get("InferenceSpecification", {}).get("Containers") or []
    if not containers or not containers[0].get("ModelDataUrl"):
        raise IncompleteModelPackage(f"model package {arn} has no container with a ModelDataUrl")
    quality = package.get("DriftCheckBaselines", {}).get("ModelDataQuality", {})
    statistics = quality.get("Statistics", {}).get("S3Uri")
    constraints = quality.get("Constraints", {}).get("S3Uri")
    if not statistics or not constraints:
        raise IncompleteModelPackage(
            f"model package {arn} has no DriftCheckBaselines.ModelDataQuality "
            "statistics and constraints: register it with a data-quality baseline"
        )
    version = package.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1]
    return {
        "model_package_arn": arn,
        "model_version": str(version),
        "model_data_url": containers[0]["ModelDataUrl"],
        "image_uri": containers[0]["Image"],
        "baseline_statistics_uri": statistics,
        "baseline_constraints_uri": constraints,
    }


class ArtefactChanged(Exception):
    """An object a version points at is not the one registered (or no hash was registered for it)."""


def object_sha256(s3: Any, uri: str) -> str:
    bucket, _, key = uri[len("s3://") :].partition("/")
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def verify_artefacts(s3: Any, package: dict, outputs: dict) -> None:
    """Each artefact's sha256 equals the one recorded at registration, or ArtefactChanged."""
    metadata = package.get("CustomerMetadataProperties") or {}
    version, arn = outputs["model_version"], outputs["model_package_arn"]
    for output, entry in RECORDED_SHA256.items():
        uri, recorded = outputs[output], metadata.get(entry)
        if not recorded:
            raise ArtefactChanged(
                f"version {version} ({arn}) records no {entry} for {uri}: only artefacts whose hash was "
                "recorded at registration are used; register the model with the train pipeline"
            )
        try:
            actual = object_sha256(s3, uri)
        except Exception as exc:  # botocore errors: the object cannot be verified, so it is not used
            raise ArtefactChanged(f"version {version} ({arn}): cannot read {uri} to verify its sha256: {exc}") from None
        if actual != recorded:
            raise ArtefactChanged(
                f"version {version} ({arn}): {uri} has sha256 {actual}, not the {recorded} recorded at "
                "registration: refusing a changed artefact"
            )


def handler(event: Any, context: Any | None = None) -> dict:  # noqa: ARG001 (Lambda's handler signature)
    group_arn = (event or {}).get("model_package_group_arn")
    if not group_arn:
        raise ValueError("the event has no model_package_group_arn")
    package = latest_approved_package(boto3.client("sagemaker"), group_arn)
    outputs = outputs_for(package)
    verify_artefacts(boto3.client("s3"), package, outputs)
    return outputs
