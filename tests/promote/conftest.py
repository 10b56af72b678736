"""Fixtures for the promotion tests: evaluation reports as the evaluate step writes them, and a registry
account holding a champion and a candidate version."""

from __future__ import annotations

import json

import pytest

# -- the registry account as the train pipeline leaves it -------------------------------------------
REGISTRY = "333333333333"


def evaluation_report(auc, confusion, roc_fpr, roc_tpr, precision, recall, f1, accuracy):
    return {
        "binary_classification_metrics": {
            "auc": {"value": auc, "standard_deviation": "NaN"},
            "accuracy": {"value": accuracy, "standard_deviation": "NaN"},
            "precision": {"value": precision, "standard_deviation": "NaN"},
            "recall": {"value": recall, "standard_deviation": "NaN"},
            "f1": {"value": f1, "standard_deviation": "NaN"},
            "confusion_matrix": {
                "0": {"0": confusion[0][0], "1": confusion[0][1]},
                "1": {"0": confusion[1][0], "1": confusion[1][1]},
            },
            "receiver_operating_characteristic_curve": {
                "false_positive_rates": roc_fpr,
                "true_positive_rates": roc_tpr,
            },
        }
    }


STATISTICS = {
    "version": 0.0,
    "dataset": {"item_count": 398},
    "features": [
        {
            "name": "mean radius",
            "inferred_type": "Fractional",
            "numerical_statistics": {
                "common": {"num_present": 398, "num_missing": 0},
                "mean": 14.1,
                "std_dev": 3.5,
                "min": 6.98,
                "max": 28.1,
            },
        },
        {
            "name": "mean texture",
            "inferred_type": "Fractional",
            "numerical_statistics": {
                "common": {"num_present": 398, "num_missing": 0},
                "mean": 19.3,
                "std_dev": 4.3,
                "min": 9.71,
                "max": 39.3,
            },
        },
    ],
}
CONSTRAINTS = {
    "version": 0.0,
    "features": [
        {"name": "mean radius", "inferred_type": "Fractional", "completeness": 1.0},
        {"name": "mean texture", "inferred_type": "Fractional", "completeness": 1.0},
    ],
    "monitoring_config": {"distribution_constraints": {"comparison_threshold": 0.25}},
}

CHAMPION_REPORT = evaluation_report(
    0.952, [[130, 13], [9, 76]], [0.0, 0.05, 0.2, 1.0], [0.0, 0.7, 0.93, 1.0], 0.854, 0.894, 0.874, 0.904
)
CANDIDATE_REPORT = evaluation_report(
    0.981, [[138, 5], [4, 81]], [0.0, 0.02, 0.1, 1.0], [0.0, 0.85, 0.97, 1.0], 0.942, 0.953, 0.947, 0.961
)


def approver_policy(env):
    group_arn = env.model_package_group_arn
    packages = group_arn.replace(":model-package-group/", ":model-package/") + "/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DecideOnVersions",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:ListModelPackages",
                    "sagemaker:DescribeModelPackageGroup",
                ],
                "Resource": [group_arn, packages],
            },
            {
                "Sid": "ReadReports",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{env.buckets.registry}/*"],
            },
        ],
    }


class RegistryWorld:
    """The registry account with a group, an approver role and versions registered by the pipeline."""

    def __init__(self, env):
        from mlops_core.session import Sessions

        self.env = env
        self.admin_sessions = Sessions(env)
        self.admin = self.admin_sessions.in_account(REGISTRY)
        self.sm = self.admin_sessions.client("sagemaker", self.admin)
        self.s3 = self.admin_sessions.client("s3", self.admin)
        iam = self.admin_sessions.client("iam", self.admin)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{REGISTRY}:root"}}
            ],
        }
        role = env.role_arn("approver").split("/")[-1]
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=role, PolicyName="approve", PolicyDocument=json.dumps(approver_policy(env)))
        self.s3.create_bucket(Bucket=env.buckets.registry)
        self.sm.create_model_package_group(ModelPackageGroupName=env.model_package_group)
        self.versions = 0
        self.sha256 = {}  # key -> sha256 of what put_json wrote, recorded on versions as the pipeline does

    def describe(self, version):
        from promote.registry import package_arn

        return self.sm.describe_model_package(ModelPackageName=package_arn(self.env, version))

    def put_json(self, key, doc):
        import hashlib

        body = json.dumps(doc).encode()
        self.s3.put_object(Bucket=self.env.buckets.registry, Key=key, Body=body)
        self.sha256[key] = hashlib.sha256(body).hexdigest()
        return f"s3://{self.env.buckets.registry}/{key}"

    def register(self, report, *, status="PendingManualApproval", registered_by="alice", extra_metadata=None):
        self.versions += 1
        n = self.versions
        prefix = f"dev/models/v{n}"
        metrics_uri = self.put_json(f"{prefix}/evaluation.json", report)
        stats_uri = self.put_json(f"{prefix}/statistics.json", STATISTICS)
        constraints_uri = self.put_json(f"{prefix}/constraints.json", CONSTRAINTS)
        execution = f"arn:aws:sagemaker:us-east-1:111111111111:pipeline/mlops-demo-train/execution/run{n}"
        self.sm.create_model_package(
            ModelPackageGroupName=self.env.model_package_group,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                        "ModelDataUrl": f"s3://{self.env.buckets.registry}/{prefix}/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
            DriftCheckBaselines={
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": stats_uri},
                    "Constraints": {"ContentType": "application/json", "S3Uri": constraints_uri},
                }
            },
            MetadataProperties={"CommitId": f"c0ffee{n}", "GeneratedBy": execution},
            CustomerMetadataProperties={
                **({"registered-by": registered_by} if registered_by else {}),
                "dataset-uri": "s3://mlops-demo-dev-artifacts/data/breast-cancer.csv",
                "dataset-sha256": "ab" * 32,
                "build": f"jenkins-mlops-{n}",
                "evaluation_sha256": self.sha256[f"{prefix}/evaluation.json"],
                "statistics_sha256": self.sha256[f"{prefix}/statistics.json"],
                "constraints_sha256": self.sha256[f"{prefix}/constraints.json"],
                **(extra_metadata or {}),
            },
        )
        return n


@pytest.fixture
def registry_world(sandbox, prod_env):
    return RegistryWorld(prod_env)
