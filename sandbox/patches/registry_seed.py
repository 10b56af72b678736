"""A control route that registers many model package versions in one operation, for fixtures that
need a registry group with a long history (1,000 versions) and are about reading it.

Why not CreateModelPackage 1,000 times: each call is a signed request, a policy evaluation and a
journaled, fsync'd write (~30 ms here), so a 1,000-version group would cost half a minute per test
module. The route takes the same request bodies CreateModelPackage takes and hands each to the same
backend method the API calls (the registry patch's defaults apply: PendingManualApproval unless the
body says otherwise), in one journaled operation. Nothing in the toolkit calls it.
"""

from __future__ import annotations

from sandbox.patching import Patch, Route
from sandbox.protocol import InvalidInput

MAX_VERSIONS = 5000
# CreateModelPackage request fields -> moto's backend keyword arguments
_FIELDS = {
    "ModelPackageDescription": "model_package_description",
    "InferenceSpecification": "inference_specification",
    "ModelApprovalStatus": "model_approval_status",
    "MetadataProperties": "metadata_properties",
    "ModelMetrics": "model_metrics",
    "CustomerMetadataProperties": "customer_metadata_properties",
    "DriftCheckBaselines": "drift_check_baselines",
    "Tags": "tags",
}


def _register_versions(_server, body):
    """{"versions": [CreateModelPackage request, ...]} -> {"arns": [...]}, in order (oldest first)."""
    from moto.sagemaker.models import sagemaker_backends

    versions = body.get("versions")
    if not isinstance(versions, list) or not versions or len(versions) > MAX_VERSIONS:
        raise InvalidInput(
            f"versions must be a list of 1 to {MAX_VERSIONS} CreateModelPackage requests", field="versions"
        )
    arns = []
    for index, request in enumerate(versions):
        group = str((request or {}).get("ModelPackageGroupName") or "")
        parts = group.split(":")
        if len(parts) < 6 or not parts[5].startswith("model-package-group/"):
            raise InvalidInput(f"versions[{index}].ModelPackageGroupName: not a group ARN: {group!r}", field="versions")
        unknown = set(request) - set(_FIELDS) - {"ModelPackageGroupName"}
        if unknown:
            raise InvalidInput(f"versions[{index}]: unsupported fields {sorted(unknown)}", field="versions")
        backend = sagemaker_backends[parts[4]][parts[3]]
        kwargs = {arg: request.get(field) for field, arg in _FIELDS.items()}
        arns.append(
            backend.create_model_package(
                model_package_name=None,
                model_package_group_name=group,
                validation_specification=None,
                source_algorithm_specification=None,
                certify_for_marketplace=False,
                client_token=None,
                domain=None,
                task=None,
                sample_payload_url=None,
                additional_inference_specifications=None,
                **kwargs,
            )
        )
    return 200, {"arns": arns}


PATCH = Patch(
    name="registry-seed",
    adds="control route register-versions: many CreateModelPackage requests in one operation (fixtures)",
    routes={"register-versions": Route(_register_versions)},
)
