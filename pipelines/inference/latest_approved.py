"""Lambda step of the inference pipeline: resolve, at run time, the latest Approved model package in
the central registry's group (by ARN, cross-account) and return what the next steps need: model data
URL, image, the data-quality baseline registered with it, and its version.

No approved package is a failure of this step with a message naming the group: scoring with no model
(or a stale one) must not go on. Only boto3, which the Lambda runtime provides.
"""

from __future__ import annotations

from typing import Any

import boto3


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


def handler(event: Any, context: Any | None = None) -> dict:  # noqa: ARG001 (Lambda's handler signature)
    group_arn = (event or {}).get("model_package_group_arn")
    if not group_arn:
        raise ValueError("the event has no model_package_group_arn")
    return outputs_for(latest_approved_package(boto3.client("sagemaker"), group_arn))
