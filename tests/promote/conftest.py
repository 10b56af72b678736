"""Fixtures for the promotion tests: evaluation reports as the evaluate step writes them, and a registry
account holding a champion and a candidate version."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

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


class RegistryWorld:
    """dev and the registry bootstrapped as the README says; each version is registered the way the train
    pipeline does it: by a RegisterModel step of a pipeline execution in dev, running as dev's execution
    role, started by a person logged in with a source identity (so AWS's records say who trained it)."""

    def __init__(self, env):
        from iam.bootstrap import bootstrap
        from mlops_core.config import load_environment
        from mlops_core.session import Sessions

        self.env = env
        self.dev = load_environment("dev", env_dir=REPO / "environments")
        for kind, environment in (("dev", self.dev), ("registry", env)):
            bootstrap(environment, kind, apply=True, sessions=Sessions(environment))
        self.admin_sessions = Sessions(env)
        self.admin = self.admin_sessions.in_account(REGISTRY)
        self.sm = self.admin_sessions.client("sagemaker", self.admin)
        self.s3 = self.admin_sessions.client("s3", self.admin)
        self.versions = 0
        self.sha256 = {}  # key -> sha256 of what put_json wrote, recorded on versions as the pipeline does
        self.executions: dict[int, str] = {}

    def describe(self, version):
        from promote.registry import package_arn

        return self.sm.describe_model_package(ModelPackageName=package_arn(self.env, version))

    def put_json(self, key, doc):
        import hashlib

        body = json.dumps(doc).encode()
        self.s3.put_object(
            Bucket=self.env.buckets.registry,
            Key=key,
            Body=body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=f"alias/{self.env.project}-registry",
        )
        self.sha256[key] = hashlib.sha256(body).hexdigest()
        return f"s3://{self.env.buckets.registry}/{key}"

    def register(self, report, *, status="PendingManualApproval", registered_by="alice", extra_metadata=None):
        """Version N, registered by a pipeline execution `registered_by` started: a person's source
        identity; "" the account's admin without one; None the events role, as the retrain rule does.
        status=Approved approves it as the registry's admin afterwards (a champion from before)."""
        self.versions += 1
        n = self.versions
        prefix = f"dev/models/v{n}"
        metrics_uri = self.put_json(f"{prefix}/evaluation.json", report)
        stats_uri = self.put_json(f"{prefix}/statistics.json", STATISTICS)
        constraints_uri = self.put_json(f"{prefix}/constraints.json", CONSTRAINTS)
        arguments = {
            "ModelPackageGroupName": self.env.model_package_group_arn,
            "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                        "ModelDataUrl": f"s3://{self.env.buckets.registry}/{prefix}/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
            "DriftCheckBaselines": {
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": stats_uri},
                    "Constraints": {"ContentType": "application/json", "S3Uri": constraints_uri},
                }
            },
            "MetadataProperties": {"CommitId": f"c0ffee{n}"},
            "CustomerMetadataProperties": {
                "pipeline_execution_arn": {"Get": "Execution.PipelineExecutionArn"},
                "dataset-uri": "s3://mlops-demo-dev-artifacts/data/breast-cancer.csv",
                "dataset-sha256": "ab" * 32,
                "build": f"jenkins-mlops-{n}",
                "evaluation_sha256": self.sha256[f"{prefix}/evaluation.json"],
                "statistics_sha256": self.sha256[f"{prefix}/statistics.json"],
                "constraints_sha256": self.sha256[f"{prefix}/constraints.json"],
                **(extra_metadata or {}),
            },
        }
        self.executions[n] = self._run_registration(arguments, registered_by)
        if status != "PendingManualApproval":
            from promote.registry import package_arn

            self.sm.update_model_package(ModelPackageArn=package_arn(self.env, n), ModelApprovalStatus=status)
        return n

    def _run_registration(self, arguments: dict, started_by: str | None) -> str:
        import time

        from mlops_core.session import Sessions
        from tests.iam.conftest import trust_account_root_too

        definition = {
            "Version": "2020-12-01",
            "Parameters": [],
            "Steps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": arguments}],
        }
        # started_by: a person's source identity; "" the account's admin with none; None the events role
        owner_sessions = Sessions(self.dev, identity=started_by if started_by is not None else "pipeline-owner")
        owner = owner_sessions.client("sagemaker", owner_sessions.workload())
        name, text = self.dev.pipelines["train"], json.dumps(definition)
        if self.executions:
            owner.update_pipeline(PipelineName=name, PipelineDefinition=text)
        else:
            owner.create_pipeline(PipelineName=name, PipelineDefinition=text, RoleArn=self.dev.role_arn("execution"))
        starter = owner
        if started_by is None:  # EventBridge starts pipelines as the events role (the admin stands in for it)
            admin = Sessions(self.dev)
            trust_account_root_too(admin, self.dev.role_arn("events"))
            events = admin.assume(self.dev.role_arn("events"), purpose="retrain-rule", source=admin.base())
            starter = admin.client("sagemaker", events)
        execution = starter.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
        for _ in range(600):
            described = owner.describe_pipeline_execution(PipelineExecutionArn=execution)
            if described["PipelineExecutionStatus"] != "Executing":
                assert described["PipelineExecutionStatus"] == "Succeeded", described
                return execution
            time.sleep(0.1)
        raise AssertionError(f"{execution} did not finish")


@pytest.fixture
def registry_world(sandbox, prod_env):
    return RegistryWorld(prod_env)
