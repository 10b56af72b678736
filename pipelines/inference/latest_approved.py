"""Lambda steps of the inference pipeline.

Resolve (first step): at run time, the Approved model package the environment runs (the version an
approver pinned for it with `promote pin`, else the latest Approved) in the central registry's group
(by ARN, cross-account), and return what the next steps need: model data URL, image, the
data-quality baseline registered with it, and its version.

Record (last step, after a successful batch transform): where the version ran, as one new object in
the registry bucket, `<account label>/runs/<environment>/<time>_v<version>_<execution id>.json`,
written with If-None-Match: * (the bucket policy refuses any other put there, so records are only
ever appended, never overwritten).

Before returning, it reads the model artefact and both baseline files and checks each against the
sha256 the version recorded at registration: a changed (or unrecorded) artefact fails the step naming
the version and the object, so nothing downstream runs on bytes nobody approved.

No approved package is a failure of this step with a message naming the group: scoring with no model
(or a stale one) must not go on. Only boto3, which the Lambda runtime provides.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
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


PIN_PREFIX = "pinned:"


INDEX_PREFIX = "pin-index:"
INDEX_VERSION = 1  # the group's first version holds its pin index (promote/pins.py writes it)


def _package_arn(group_arn: str, version: int) -> str:
    return group_arn.replace(":model-package-group/", ":model-package/") + f"/{int(version)}"


def _describe(sagemaker: Any, arn: str, *, denied_is_missing: bool = False) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = error.get("Message", "").lower()
        if "not found" in message or "does not exist" in message:
            return None
        # across accounts a deleted package answers AccessDenied (no resource policy can admit the caller);
        # the version then served is described with the same permission, so a real denial still fails
        if denied_is_missing and error.get("Code") in ("AccessDenied", "AccessDeniedException"):
            return None
        raise


def pinned_package(sagemaker: Any, group_arn: str, environment: str) -> dict | None:
    """The Approved version pinned for `environment`, read directly: the group's pin index (on its first
    version) names it, and the version itself must carry `pinned:<environment>`, which only the
    approver role writes. A stale index, or a pinned version no longer Approved, serves no pin; so does a
    deleted first version (promote pin then refuses to record one)."""
    first = _describe(sagemaker, _package_arn(group_arn, INDEX_VERSION), denied_is_missing=True)
    indexed = ((first or {}).get("CustomerMetadataProperties") or {}).get(f"{INDEX_PREFIX}{environment}", "")
    if not indexed.isdigit():
        return None
    version = int(indexed)
    package = first if version == INDEX_VERSION else _describe(sagemaker, _package_arn(group_arn, version))
    if not package or f"{PIN_PREFIX}{environment}" not in (package.get("CustomerMetadataProperties") or {}):
        return None
    return package if package.get("ModelApprovalStatus") == "Approved" else None


def latest_approved_package(sagemaker: Any, group_arn: str, environment: str | None = None) -> dict:
    """DescribeModelPackage of the version `environment` runs: the Approved one pinned for it, else the
    newest Approved (ListModelPackages, Approved only, newest first, one item). At most three calls,
    however many versions the group holds."""
    if environment:
        package = pinned_package(sagemaker, group_arn, environment)
        if package is not None:
            return package
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
    latest: dict = sagemaker.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])
    return latest


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


def record_run(s3: Any, event: dict) -> dict:
    """Append where a version ran: one new object per successful execution, never overwritten."""
    required = ("environment", "model_version", "model_package_arn", "execution_arn")
    missing = [k for k in required + ("runs_bucket", "runs_prefix") if not event.get(k)]
    if missing:
        raise ValueError(f"the record event lacks {', '.join(missing)}")
    # the account the pipeline ran in is in its execution ARN (no account id is baked into definitions)
    event = {**event, "account_id": event["execution_arn"].split(":")[4]}
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    execution_id = event["execution_arn"].rsplit("/", 1)[-1]
    key = f"{event['runs_prefix']}{at}_v{event['model_version']}_{execution_id}.json"
    record = {k: event[k] for k in (*required, "account_id")}
    record["at"] = at
    extra = {"SSEKMSKeyId": event["kms_key_id"]} if event.get("kms_key_id") else {}
    s3.put_object(
        Bucket=event["runs_bucket"],
        Key=key,
        Body=json.dumps(record, sort_keys=True).encode(),
        ContentType="application/json",
        IfNoneMatch="*",
        ServerSideEncryption="aws:kms",
        **extra,
    )
    return {"record_uri": f"s3://{event['runs_bucket']}/{key}"}


def handler(event: Any, context: Any | None = None) -> dict:  # noqa: ARG001 (Lambda's handler signature)
    event = event or {}
    if event.get("action") == "record":
        return record_run(boto3.client("s3"), event)
    group_arn = event.get("model_package_group_arn")
    if not group_arn:
        raise ValueError("the event has no model_package_group_arn")
    package = latest_approved_package(boto3.client("sagemaker"), group_arn, event.get("environment") or None)
    outputs = outputs_for(package)
    verify_artefacts(boto3.client("s3"), package, outputs)
    return outputs
