"""A registry group with a long history (1,000 versions), for the scale tests and bench/registry.py.

Versions 1..N-1 are seeded through the sandbox's `register-versions` control route: the same
CreateModelPackage request bodies a RegisterModel step sends (evaluation report and baselines with
their sha256, the metrics the pipeline records), in one operation, because 1,000 CreateModelPackage
calls cost about half a minute here and these tests are about reading the history, not writing it.
Every 10th version is Approved, every 7th Rejected. Version N, the newest, is registered as the
train pipeline registers one (a RegisterModel step of an execution in dev started by alice), so
approving it runs the full separation-of-duties check.
"""

from __future__ import annotations

import json
from collections import Counter

from tests.promote.conftest import CANDIDATE_REPORT, CONSTRAINTS, STATISTICS, RegistryWorld, evaluation_report

VERSIONS = 1000


def status_of(version: int) -> str:
    if version % 10 == 0:
        return "Approved"
    return "Rejected" if version % 7 == 0 else "PendingManualApproval"


def auc_of(version: int) -> float:
    return round(0.9 + version / 100_000, 5)


class ManyVersions:
    def __init__(self, env, versions: int = VERSIONS):
        from sandbox import client

        self.env = env
        self.count = versions
        self.world = RegistryWorld(env)
        shared = "dev/models/shared"
        report = evaluation_report(0.95, [[130, 13], [9, 76]], [0.0, 1.0], [0.0, 1.0], 0.85, 0.89, 0.87, 0.9)
        uris = {
            "evaluation": self.world.put_json(f"{shared}/evaluation.json", report),
            "statistics": self.world.put_json(f"{shared}/statistics.json", STATISTICS),
            "constraints": self.world.put_json(f"{shared}/constraints.json", CONSTRAINTS),
        }
        sha = {name: self.world.sha256[f"{shared}/{name}.json"] for name in uris}
        requests = [self._request(n, uris, sha) for n in range(1, versions)]
        client.call("register-versions", {"versions": requests})
        self.world.versions = versions - 1
        self.newest = self.world.register(CANDIDATE_REPORT, registered_by="alice")
        assert self.newest == versions

    def _request(self, n: int, uris: dict, sha: dict) -> dict:
        registry = self.env.buckets.registry
        return {
            "ModelPackageGroupName": self.env.model_package_group_arn,
            "ModelApprovalStatus": status_of(n),
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                        "ModelDataUrl": f"s3://{registry}/dev/models/v{n}/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "ModelMetrics": {
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uris["evaluation"]}}
            },
            "DriftCheckBaselines": {
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": uris["statistics"]},
                    "Constraints": {"ContentType": "application/json", "S3Uri": uris["constraints"]},
                }
            },
            "MetadataProperties": {"CommitId": f"c0ffee{n}"},
            "CustomerMetadataProperties": {
                "build": f"jenkins-mlops-{n}",
                "dataset-uri": "s3://mlops-demo-dev-artifacts/data/breast-cancer.csv",
                "evaluation_sha256": sha["evaluation"],
                "statistics_sha256": sha["statistics"],
                "constraints_sha256": sha["constraints"],
                "auc": str(auc_of(n)),
            },
        }


class ApiCalls:
    """Every AWS API call this process makes while counting, by operation name (botocore's own
    dispatch, so calls made by credential refreshes and by threads count too)."""

    def __init__(self):
        self.calls: Counter = Counter()

    def __enter__(self):
        import botocore.client

        self._original = original = botocore.client.BaseClient._make_api_call
        calls = self.calls

        def counted(client, operation_name, api_params):
            calls[operation_name] += 1
            return original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counted
        return self

    def __exit__(self, *exc):
        import botocore.client

        botocore.client.BaseClient._make_api_call = self._original

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def __repr__(self) -> str:
        return json.dumps(dict(self.calls), sort_keys=True)
