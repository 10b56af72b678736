"""The real pipelines (pipelines/definitions.py) executed by the sandbox engine in the bootstrapped
accounts: train registers cross-account; inference fails clearly without an approved model; a
drifted batch fails with DataDriftDetected and the retrain rule starts training.

One bootstrapped sandbox for the module (building the definitions and bootstrapping cost seconds);
the tests run in file order and build on each other like the story does."""

import json
import math
import subprocess
import time

import pytest

from tests.conftest import BIN, REPO

DEV, REGISTRY = "111111111111", "333333333333"


class Story:
    def __init__(self, env, sessions, specs):
        self.env, self.sessions, self.specs = env, sessions, specs
        self.sm = sessions.client("sagemaker")

    ended = 0.0  # when the last run this story waited for was seen to end (time.time())

    def start(self, which, **params):
        # metrics_of reads a run's window to the second: a run starting in the second the previous one ended
        # would count that one's datapoints as its own
        time.sleep(max(0.0, math.ceil(self.ended) - time.time()))
        kwargs = {"PipelineParameters": [{"Name": k, "Value": v} for k, v in params.items()]} if params else {}
        return self.sm.start_pipeline_execution(PipelineName=self.specs[which].name, **kwargs)["PipelineExecutionArn"]

    def wait(self, arn, timeout=240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            if described["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
                self.ended = time.time()
                steps = self.sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
                return described["PipelineExecutionStatus"], {s["StepName"]: s for s in steps}
            time.sleep(0.25)
        raise AssertionError(f"{arn} still running after {timeout}s")

    def registry(self):
        return self.sessions.client("sagemaker", self.sessions.in_account(REGISTRY))

    def metrics_of(self, arn) -> dict:
        """{(metric, dimensions besides Environment): [values]} of the run's own time window: what its steps
        published in MLOps/<project> (pipelines/metrics.py), found with ListMetrics and GetMetricData."""
        from datetime import timedelta

        from pipelines import metrics

        described = self.sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        start = described["CreationTime"].replace(microsecond=0)
        end = described["LastModifiedTime"].replace(microsecond=0) + timedelta(seconds=1)
        cloudwatch = self.sessions.client("cloudwatch")
        namespace = metrics.namespace(self.env.project)
        listed = cloudwatch.get_paginator("list_metrics").paginate(
            Namespace=namespace, Dimensions=[{"Name": metrics.ENVIRONMENT, "Value": self.env.name}]
        )
        found = [m for page in listed for m in page["Metrics"]]
        queries = [
            {
                "Id": f"m{i}",
                # 1-second periods over the run's window: one datapoint per metric and run (the sandbox answers
                # sub-minute periods for any metric; AWS only for high-resolution ones, sandbox/patches/cloudwatch.py)
                "MetricStat": {"Metric": m, "Period": 1, "Stat": "Maximum"},
            }
            for i, m in enumerate(found)
        ]
        answer = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
        values = {}
        for metric, result in zip(found, answer["MetricDataResults"], strict=True):
            if result["Values"]:
                dims = tuple(
                    sorted((d["Name"], d["Value"]) for d in metric["Dimensions"] if d["Name"] != "Environment")
                )
                values[(metric["MetricName"], dims)] = result["Values"]
        return values

    def run_output(self, arn: str, suffix: str) -> dict:
        """A JSON file a step of the run wrote under <outputs>/<pipeline>/<execution id>/."""
        s3, bucket = self.sessions.client("s3"), self.env.buckets.artifacts
        execution = arn.rsplit("/", 1)[-1]
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
            if o["Key"].endswith(f"/{execution}/{suffix}")
        ]
        [key] = keys
        return self.output_json(f"s3://{bucket}/{key}")

    def output_json(self, uri: str) -> dict:
        bucket, key = uri[len("s3://") :].split("/", 1)
        return json.loads(self.sessions.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def upsert(sessions, env, spec):
    """What the upsert does before a pipeline exists: code and data uploads, the Lambda, the pipeline."""
    s3, lam, sm = sessions.client("s3"), sessions.client("lambda"), sessions.client("sagemaker")
    for upload in spec.uploads:
        s3.put_object(
            Bucket=upload.bucket,
            Key=upload.key,
            Body=upload.body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=env.kms_key_alias,
        )
    existing = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    for fn in spec.lambda_functions:
        if fn.name in existing:  # every pipeline carries the run-metrics function
            continue
        lam.create_function(
            FunctionName=fn.name,
            Role=fn.role_arn,
            Handler=fn.handler,
            Runtime=fn.runtime,
            Code={"ZipFile": fn.zip_bytes},
            Timeout=fn.timeout,
            Environment={"Variables": dict(fn.environment)},
        )
    sm.create_pipeline(PipelineName=spec.name, PipelineDefinition=spec.definition, RoleArn=spec.role_arn)


@pytest.fixture(scope="module")
def story(sandbox_server):
    from mlops_core.config import load_environment
    from mlops_core.session import Sessions
    from pipelines.definitions import build_pipelines
    from sandbox import client

    client.reset()
    env = load_environment("dev", env_dir=REPO / "environments")
    for account in ("dev", "registry"):
        done = subprocess.run(
            [str(BIN / "bootstrap-account"), "--env", "dev", "--account", account, "--apply"],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
    specs = build_pipelines(env, ("train", "inference"))
    sessions = Sessions(env)
    for spec in specs.values():
        upsert(sessions, env, spec)
    return Story(env, sessions, specs)


def test_inference_without_an_approved_model_fails_at_the_lambda_step_saying_so(story):
    status, steps = story.wait(story.start("inference"))
    assert status == "Failed"
    assert set(steps) == {"LatestApprovedModel"}
    reason = steps["LatestApprovedModel"]["FailureReason"]
    assert "no approved model" in reason.lower() and story.env.model_package_group_arn in reason


def test_train_fails_at_register_without_the_permission_then_retried_registers_cross_account(story):
    """One training run serves two checks: the register step acts as the dev execution role (a role that
    may not sagemaker:CreateModelPackage fails there with AccessDenied, as on AWS); once the permission
    is back, RetryPipelineExecution re-runs only that step and version 1 lands in the registry account."""
    iam = story.sessions.client("iam")
    role_name = story.env.role_arn("execution").rsplit("/", 1)[1]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="test-no-register",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "sagemaker:CreateModelPackage", "Resource": "*"}],
            }
        ),
    )
    arn = story.start("train")
    status, steps = story.wait(arn)
    assert status == "Failed"
    [register] = [s for s in steps.values() if s["StepStatus"] == "Failed"]
    assert register["StepName"].startswith("Register")
    assert "AccessDenied" in register["FailureReason"] and "CreateModelPackage" in register["FailureReason"]
    trained = {n: s["Metadata"] for n, s in steps.items() if s["StepStatus"] == "Succeeded"}

    iam.delete_role_policy(RoleName=role_name, PolicyName="test-no-register")
    story.sm.retry_pipeline_execution(PipelineExecutionArn=arn)
    status, steps = story.wait(arn)
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert {n: s["Metadata"] for n, s in steps.items() if n in trained} == trained  # not run again
    [register] = [s for s in steps.values() if "RegisterModel" in s.get("Metadata", {})]
    package_arn = register["Metadata"]["RegisterModel"]["Arn"]
    assert package_arn.startswith(f"arn:aws:sagemaker:us-east-1:{REGISTRY}:model-package/")
    package = story.registry().describe_model_package(ModelPackageName=package_arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert arn in json.dumps(package.get("CustomerMetadataProperties", {}))
    # Evaluate published the test split's metrics (Pipeline=train), the AUC the version was registered with
    published = story.metrics_of(arn)
    train = (("Pipeline", "train"),)
    assert {name for name, dims in published if dims == train} == {"AUC", "F1", "Precision", "Recall", "Accuracy"}
    assert published[("AUC", train)] == [float(package["CustomerMetadataProperties"]["auc"])]


def test_drifted_batch_fails_with_data_drift_detected_and_the_rule_starts_training(story):
    from pipelines.datasets import builtin_csv

    registry = story.registry()
    [package] = registry.list_model_packages(ModelPackageGroupName=story.env.model_package_group_arn)[
        "ModelPackageSummaryList"
    ]
    registry.update_model_package(ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved")

    dev_sm, events = story.sm, story.sessions.client("events")
    role = story.env.role_arn("events")
    train_arn = f"arn:aws:sagemaker:us-east-1:{DEV}:pipeline/{story.specs['train'].name}"
    inference_arn = f"arn:aws:sagemaker:us-east-1:{DEV}:pipeline/{story.specs['inference'].name}"
    events.put_rule(
        Name="retrain-on-inference-failure",
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                "resources": [inference_arn],
                "detail": {"currentPipelineExecutionStatus": ["Failed"]},
            }
        ),
    )
    events.put_targets(
        Rule="retrain-on-inference-failure", Targets=[{"Id": "train", "Arn": train_arn, "RoleArn": role}]
    )
    before = {
        s["PipelineExecutionArn"]
        for s in dev_sm.list_pipeline_executions(PipelineName=story.specs["train"].name)["PipelineExecutionSummaries"]
    }

    s3 = story.sessions.client("s3")
    key = "datasets/drifted/breast-cancer-batch-drifted.csv"
    s3.put_object(
        Bucket=story.env.buckets.artifacts,
        Key=key,
        Body=builtin_csv("breast-cancer-batch-drifted"),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=story.env.kms_key_alias,
    )
    drifted = story.start("inference", InputDataUri=f"s3://{story.env.buckets.artifacts}/{key}")
    status, steps = story.wait(drifted)
    assert status == "Failed"
    assert steps["LatestApprovedModel"]["StepStatus"] == "Succeeded"
    assert steps["DataDriftDetected"]["FailureReason"].startswith("DataDriftDetected: ")

    # the drift check published what its drift_check.json says, in the documented dimensions
    violations_uri = steps["DataDriftDetected"]["FailureReason"].rsplit("violations: ", 1)[1]
    summary = story.output_json(violations_uri.replace("constraint_violations.json", "drift_check.json"))
    published = story.metrics_of(drifted)
    distances = {dims[0][1]: v for (name, dims), v in published.items() if name == "DriftDistance"}
    bounds = {dims[0][1]: v for (name, dims), v in published.items() if name == "DriftBound"}
    assert distances == {f: [d] for f, d in summary["distances"].items()}
    assert bounds == {f: [b] for f, b in summary["bounds"].items()}
    inference = (("Pipeline", "inference"),)
    assert published[("DriftScore", inference)] == [max(summary["distances"][f] / summary["bounds"][f] for f in bounds)]
    assert published[("DriftScore", inference)][0] >= 1  # drift
    assert published[("Violations", (("Check", "drift"), *inference))] == [summary["violation_count"]]
    assert published[("Violations", (("Check", "contract"), *inference))] == [0]
    assert published[("RowsScored", inference)] == [0]  # nothing went on to the transform
    assert published[("ModelVersion", inference)] == [float(summary["model_version"])] == [1.0]

    deadline, started = time.monotonic() + 10, []
    while not started and time.monotonic() < deadline:  # events are delivered after the status changes
        after = dev_sm.list_pipeline_executions(PipelineName=story.specs["train"].name)["PipelineExecutionSummaries"]
        started = [s for s in after if s["PipelineExecutionArn"] not in before]
        time.sleep(0.2)
    from sandbox import client

    assert len(started) == 1, f"the retrain rule did not start the train pipeline: {client.call('events', {})}"
    dev_sm.stop_pipeline_execution(PipelineExecutionArn=started[0]["PipelineExecutionArn"])  # not needed further


def test_a_malformed_batch_fails_data_validation_naming_column_value_and_row_and_is_not_drift(story):
    """Bad types and missing columns break the data contract: DataValidationFailed, and the drift check
    never runs (a model approved by the previous test scores nothing)."""
    from pipelines.datasets import builtin_csv

    lines = builtin_csv("breast-cancer-batch").decode().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines]
    rows[3][header.index("mean_texture")] = "sixty"
    drop = header.index("worst_symmetry")
    body = "\n".join(",".join(v for i, v in enumerate(r) if i != drop) for r in rows) + "\n"
    key = "datasets/malformed/batch.csv"
    story.sessions.client("s3").put_object(
        Bucket=story.env.buckets.artifacts,
        Key=key,
        Body=body.encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=story.env.kms_key_alias,
    )
    arn = story.start("inference", InputDataUri=f"s3://{story.env.buckets.artifacts}/{key}")
    status, steps = story.wait(arn)
    assert status == "Failed"
    reason = steps["DataValidationFailed"]["FailureReason"]
    validation = story.output_json(
        reason.rsplit("violations: ", 1)[1].replace("contract_violations.json", "validation.json")
    )
    published = story.metrics_of(arn)
    assert published == {
        ("Violations", (("Check", "contract"), ("Pipeline", "inference"))): [validation["violation_count"]]
    }
    assert validation["violation_count"] == 2
    assert reason.startswith(
        "DataValidationFailed: batch.csv breaks the data contract: column 'worst_symmetry' is required by the "
        "contract but missing; column 'mean_texture': 1 value(s) not a number: 'sixty' (row 3); violations: s3://"
    )
    assert reason.endswith("/data-validation/contract_violations.json")
    assert "DataDriftCheck" not in steps and "DataDriftDetected" not in steps and "BatchTransform" not in steps


def _put_labels(story, key, rows):
    body = "id,label\n" + "".join(f"{i},{label}\n" for i, label in rows)
    story.sessions.client("s3").put_object(
        Bucket=story.env.buckets.artifacts,
        Key=key,
        Body=body.encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=story.env.kms_key_alias,
    )
    return f"s3://{story.env.buckets.artifacts}/{key}"


def test_model_quality_against_ground_truth_passes_then_a_drop_fails_and_starts_hpo(story):
    """Version 1 (approved above) scores the clean batch, each prediction with its record id; labels for that
    batch pass; labels the model gets badly wrong fail ModelQualityBelowThreshold and the rule on that step
    starts the train-with-HPO pipeline; labels that cannot be joined write no verdict and start nothing."""
    import io

    import pandas as pd

    from pipelines.datasets import builtin_csv
    from pipelines.definitions import build_pipelines

    scored = story.start("inference")
    status, steps = story.wait(scored)
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    execution = scored.rsplit("/", 1)[-1]
    s3 = story.sessions.client("s3")
    listed = s3.list_objects_v2(Bucket=story.env.buckets.artifacts, Prefix=f"{story.env.name}/predictions/")
    [key] = [o["Key"] for o in listed["Contents"] if f"/{execution}/" in o["Key"]]
    lines = s3.get_object(Bucket=story.env.buckets.artifacts, Key=key)["Body"].read().decode().splitlines()
    assert len(lines) == 114 and [line.split(",")[0] for line in lines[:3]] == ["1", "2", "3"]
    published = story.metrics_of(scored)
    inference = (("Pipeline", "inference"),)
    assert published[("RowsScored", inference)] == [114.0]  # the rows the transform scored
    assert published[("Violations", (("Check", "drift"), *inference))] == [0]
    assert published[("DriftScore", inference)][0] < 1

    quality = build_pipelines(story.env, ("quality", "hpo"))
    for spec in quality.values():
        upsert(story.sessions, story.env, spec)
    story.specs.update(quality)  # the HPO test below runs the same pipeline
    hpo_arn = f"arn:aws:sagemaker:us-east-1:{DEV}:pipeline/{quality['hpo'].name}"
    quality_arn = f"arn:aws:sagemaker:us-east-1:{DEV}:pipeline/{quality['quality'].name}"
    events = story.sessions.client("events")
    # The shape of mlops-infra's rule: the quality pipeline's ModelQualityBelowThreshold step failed.
    events.put_rule(
        Name="hpo-on-quality-drop",
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Building Pipeline Execution Step Status Change"],
                "detail": {
                    "pipelineArn": [quality_arn],
                    "stepName": ["ModelQualityBelowThreshold"],
                    "currentStepStatus": ["Failed"],
                },
            }
        ),
    )
    events.put_targets(
        Rule="hpo-on-quality-drop", Targets=[{"Id": "hpo", "Arn": hpo_arn, "RoleArn": story.env.role_arn("events")}]
    )

    def hpo_runs():
        listed = story.sm.list_pipeline_executions(PipelineName=quality["hpo"].name)["PipelineExecutionSummaries"]
        return {s["PipelineExecutionArn"] for s in listed}

    def run_quality(uri):
        arn = story.sm.start_pipeline_execution(
            PipelineName=quality["quality"].name,
            PipelineParameters=[{"Name": "LabelsUri", "Value": uri}],
        )["PipelineExecutionArn"]
        return story.wait(arn)

    truth = pd.read_csv(io.BytesIO(builtin_csv("breast-cancer-part2")))["diagnosis"].tolist()
    prefix = f"{story.env.name}/ground-truth/{execution}"
    before = hpo_runs()
    labelled = story.sm.start_pipeline_execution(
        PipelineName=quality["quality"].name,
        PipelineParameters=[
            {"Name": "LabelsUri", "Value": _put_labels(story, f"{prefix}/labels.csv", enumerate(truth, start=1))}
        ],
    )["PipelineExecutionArn"]
    status, steps = story.wait(labelled)
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert "ModelQualityBelowThreshold" not in steps
    # AUC/F1/Precision/Recall/Accuracy as quality.json measured them on the labels, with the version
    published = story.metrics_of(labelled)
    quality_json = story.run_output(labelled, "model-quality/quality.json")
    observed = {c["metric_name"]: c["observed"] for c in quality_json["checks"]}
    q = (("Pipeline", "quality"),)
    assert {m: published[(m, q)] for m in ("AUC", "F1", "Precision", "Recall", "Accuracy")} == {
        "AUC": [observed["auc"]],
        "F1": [observed["f1"]],
        "Precision": [observed["precision"]],
        "Recall": [observed["recall"]],
        "Accuracy": [observed["accuracy"]],
    }
    assert published[("Violations", (("Check", "quality"), *q))] == [0]
    assert published[("ModelVersion", q)] == [1.0]

    # The world changed: the model is wrong on half of the next labels.
    wrong = [(i, 1 - t if i % 2 else t) for i, t in enumerate(truth, start=1)]
    status, steps = run_quality(_put_labels(story, f"{prefix}/later.csv", wrong))
    assert status == "Failed"
    reason = steps["ModelQualityBelowThreshold"]["FailureReason"]
    assert reason.startswith("ModelQualityBelowThreshold: ") and f"on batch {execution} (114 labelled" in reason
    assert "model version 1" in reason and reason.endswith("/model-quality/constraint_violations.json")
    deadline, started = time.monotonic() + 10, set()
    while not started and time.monotonic() < deadline:
        started = hpo_runs() - before
        time.sleep(0.2)
    assert len(started) == 1, "the quality rule did not start the train-with-HPO pipeline"
    for arn in started:
        story.sm.stop_pipeline_execution(PipelineExecutionArn=arn)

    # Bad input: one line naming the file and the problem, no verdict, no HPO.
    before = hpo_runs()
    for key, rows, problem in (
        (f"{prefix}/unknown.csv", [(1, 0), (999, 1)], "labels unknown.csv: 1 id(s) are not among the 114 record(s)"),
        (f"{prefix}/twice.csv", [(1, 0), (1, 1)], "labels twice.csv: id '1' is labelled more than once (rows 1, 2)"),
        (f"{prefix}/range.csv", [(1, 0), (2, 7)], "labels range.csv: label '7' of id '2' (row 2) is not 0 or 1"),
        (
            f"{story.env.name}/ground-truth/never-scored/labels.csv",
            [(1, 0)],
            "labels labels.csv: batch never-scored was never scored",
        ),
    ):
        status, steps = run_quality(_put_labels(story, key, rows))
        assert status == "Failed" and "ModelQualityBelowThreshold" not in steps
        # The processing job's failure reason carries the step's one line.
        assert f"error: {problem}" in steps["ModelQuality"]["FailureReason"], steps["ModelQuality"]["FailureReason"]
    time.sleep(1)
    assert hpo_runs() == before


def test_hpo_pipeline_tunes_then_registers_a_version_marked_for_the_review_board(story):
    """The tuning step runs as the execution role too: a pipeline's tuning job name carries neither the
    project nor the pipelines- prefix (32 characters at most), so the role must be allowed to create it
    whatever its name, or hpo fails at Tune with AccessDenied."""
    from pipelines.definitions import build_pipelines

    spec = story.specs.get("hpo")
    if spec is None:
        spec = build_pipelines(story.env, ("hpo",))["hpo"]
        upsert(story.sessions, story.env, spec)
    arn = story.sm.start_pipeline_execution(PipelineName=spec.name)["PipelineExecutionArn"]
    status, steps = story.wait(arn)
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert "TuningJob" in steps["Tune"]["Metadata"]
    [register] = [s for s in steps.values() if "RegisterModel" in s.get("Metadata", {})]
    package = story.registry().describe_model_package(ModelPackageName=register["Metadata"]["RegisterModel"]["Arn"])
    metadata = package["CustomerMetadataProperties"]
    assert metadata["review_board_approval_required"].lower() == "true"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"


# -- datasets of parts: the snapshot each run reads and records ------------------------------------
def _put(story, key, body):
    story.sessions.client("s3").put_object(
        Bucket=story.env.buckets.artifacts,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=story.env.kms_key_alias,
    )


def _newest_package(story):
    registry = story.registry()
    summaries = registry.list_model_packages(
        ModelPackageGroupName=story.env.model_package_group_arn, SortBy="CreationTime", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    return registry.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def test_train_reads_every_delivered_part_at_run_start_and_records_the_snapshot(story):
    import gzip
    import hashlib

    from mlops_core.session import Sessions
    from pipelines.datasets import builtin_csv
    from promote.registry import lineage

    part1, part2 = builtin_csv("breast-cancer"), gzip.compress(builtin_csv("breast-cancer-part2"), mtime=0)
    root = "dev/data/training/"
    _put(story, root + "delivery-1/part-0001.csv", part1)
    _put(story, root + "delivery-1/_SUCCESS", b"")
    _put(story, root + "delivery-2/part-0001.csv.gz", part2)
    _put(story, root + "delivery-2/_SUCCESS", b"")
    _put(story, root + "delivery-3/part-0001.csv", b"half,uploaded\n")  # no marker yet: not read
    uri = f"s3://{story.env.buckets.artifacts}/{root}"
    # the same snapshot twice with the same seed: the same metrics
    runs = [story.start("train", InputDataUri=uri, ChampionTolerance="1") for _ in range(2)]
    packages = []
    for arn in runs:
        status, steps = story.wait(arn)
        assert status == "Succeeded", {k: v.get("FailureReason") for k, v in steps.items()}
        packages.append(_newest_package(story))
    metadata = [p["CustomerMetadataProperties"] for p in packages]
    assert metadata[0]["dataset_rows"] == metadata[1]["dataset_rows"] == "569"  # 455 + 114
    assert metadata[0]["dataset_parts"] == "2"
    assert metadata[0]["dataset_sha256"] == metadata[1]["dataset_sha256"]
    assert metadata[0]["auc"] == metadata[1]["auc"]

    version = int(packages[1]["ModelPackageVersion"])
    info = lineage(story.env, Sessions(story.env, identity="alex"), version)  # the approver logs in
    parts = info["dataset"]["parts"]
    assert [(p["key"], p["rows"], p["sha256"]) for p in parts] == [
        (root + "delivery-1/part-0001.csv", 455, hashlib.sha256(part1).hexdigest()),
        (root + "delivery-2/part-0001.csv.gz", 114, hashlib.sha256(part2).hexdigest()),
    ]
    assert all(p["etag"] and p["version_id"] for p in parts)  # the bucket is versioned: the exact version read
    assert [s["key"] for s in info["dataset"]["skipped"]] == [f"{uri}delivery-3/part-0001.csv"]


@pytest.mark.parametrize(
    "case, objects, message",
    [
        ("empty prefix", {}, "holds no CSV part (the prefix is empty)"),
        (
            "another header",
            {"a.csv": b"x,diagnosis\n1,0\n", "b.csv": b"y,diagnosis\n2,1\n"},
            "part {root}b.csv has column 'y' where {root}a.csv has 'x' (column 1): parts must share a header",
        ),
        ("not a CSV", {"a.csv": b"x,diagnosis\n1,0\n", "b.parquet": b"PAR1"}, "part {root}b.parquet of"),
    ],
)
def test_bad_parts_fail_preprocess_in_one_line_and_nothing_is_written_or_registered(story, case, objects, message):
    root = f"dev/data/bad-{case.replace(' ', '-')}/"
    for name, body in objects.items():
        _put(story, root + name, body)
    before = _newest_package(story)["ModelPackageArn"]
    arn = story.start("train", InputDataUri=f"s3://{story.env.buckets.artifacts}/{root}")
    status, steps = story.wait(arn)
    assert status == "Failed" and steps["Preprocess"]["StepStatus"] == "Failed"
    reason = steps["Preprocess"]["FailureReason"]
    assert message.format(root=root) in reason and "\n" not in reason
    assert "Train" not in steps and _newest_package(story)["ModelPackageArn"] == before
    execution_id = arn.rsplit("/", 1)[1]
    written = story.sessions.client("s3").list_objects_v2(
        Bucket=story.env.buckets.artifacts, Prefix=f"dev/{story.specs['train'].name}/{execution_id}/"
    )
    assert written.get("KeyCount", 0) == 0


def test_a_part_that_changes_or_disappears_after_listing_stops_the_read_naming_it(story):
    from tests.pipelines.conftest import load_step

    snapshot = load_step("snapshot")
    s3 = story.sessions.client("s3")
    root = "dev/data/racing/"
    for name in ("a.csv", "b.csv"):
        _put(story, root + name, b"x,diagnosis\n1,0\n")
    uri = f"s3://{story.env.buckets.artifacts}/{root}"
    listed = snapshot.resolve(uri, s3)
    _put(story, root + "b.csv", b"x,diagnosis\n2,1\n")  # replaced after the listing
    with pytest.raises(snapshot.SnapshotError, match=rf"part {uri}b.csv changed or disappeared after the run listed"):
        snapshot.PartsReader(listed, s3).readall()
    listed = snapshot.resolve(uri, s3)
    s3.delete_object(Bucket=story.env.buckets.artifacts, Key=root + "a.csv")
    with pytest.raises(snapshot.SnapshotError, match=rf"part {uri}a.csv changed or disappeared after the run listed"):
        snapshot.PartsReader(listed, s3).readall()


def test_three_instances_validate_check_drift_and_score_as_one_instance_does(story):
    """inference.instance_count 3 (checks and transform): the batch's objects are sharded over three
    validation and three drift-check instances (ShardedByS3Key), each writes its partial, one merge decides
    on them, and three transform instances score the records: the same verdicts, drift figures and
    predictions, line for line, as the one-instance pipeline on the same objects; labels for both scored
    batches give the same model-quality metrics and verdict on three instances as on one."""
    import dataclasses

    from pipelines.datasets import builtin_csv
    from pipelines.definitions import build_pipelines

    env = story.env
    scaled = dataclasses.replace(
        env,
        pipelines={**env.pipelines, "inference": f"{env.pipelines['inference']}-x3"},
        inference=dataclasses.replace(env.inference, check_instance_count=3, transform_instance_count=3),
    )
    spec = build_pipelines(scaled, "inference")["inference"]
    story.sm.create_pipeline(PipelineName=spec.name, PipelineDefinition=spec.definition, RoleArn=spec.role_arn)
    header, *rows = builtin_csv("breast-cancer-batch").decode().splitlines(keepends=True)
    root = "dev/data/scored-in-parts/"
    for k in range(5):  # five objects over three instances: two get two, one gets one
        _put(story, f"{root}part-{k}.csv", (header + "".join(rows[k::5])).encode())
    batch = f"s3://{env.buckets.artifacts}/{root}"
    one = story.start("inference", InputDataUri=batch)
    three = story.sm.start_pipeline_execution(
        PipelineName=spec.name, PipelineParameters=[{"Name": "InputDataUri", "Value": batch}]
    )["PipelineExecutionArn"]
    (status_one, steps_one), (status_three, steps_three) = story.wait(one), story.wait(three)
    assert status_one == status_three == "Succeeded", (steps_one, steps_three)
    assert {"DataValidationMerge", "DataDriftCheckMerge"} <= set(steps_three) and "DataDriftCheckMerge" not in steps_one

    s3, bucket = story.sessions.client("s3"), env.buckets.artifacts

    def read(key):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def outputs(pipeline, arn):
        execution = arn.rsplit("/", 1)[1]
        checks = {
            name: json.loads(read(f"{env.outputs_prefix}/{pipeline}/{execution}/{where}/{name}"))
            for where, name in (("data-validation", "validation.json"), ("drift-check", "drift_check.json"))
        }
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{env.predictions_prefix}/predictions/")["Contents"]
        scored = {
            o["Key"].rsplit("/", 1)[1]: read(o["Key"]).decode().splitlines()
            for o in listed
            if f"/{execution}/" in o["Key"]
        }
        return checks, scored

    checks_one, scored_one = outputs(story.specs["inference"].name, one)
    checks_three, scored_three = outputs(spec.name, three)
    assert checks_three == checks_one  # the same counts, statistics, bounds and verdicts
    assert checks_one["drift_check.json"]["violation_count"] == 0
    assert scored_three == scored_one and len(scored_one) == 5  # one .out per object, line for line
    assert sum(len(lines) for lines in scored_one.values()) == len(rows)

    # labels for both scored batches: model quality on three instances (each joins its share of the
    # prediction parts, then one merge) decides as on one
    import io

    import pandas as pd

    truth = pd.read_csv(io.BytesIO(builtin_csv("breast-cancer-part2")))["diagnosis"].tolist()
    labels = [(f"part-{k}.csv:{j}", truth[k + 5 * (j - 1)]) for k in range(5) for j in range(1, len(rows[k::5]) + 1)]
    measured = []
    for count, scored in ((1, one), (3, three)):
        quality_env = dataclasses.replace(
            scaled,
            pipelines={**env.pipelines, "quality": f"{env.pipelines['quality']}-x{count}"},
            inference=dataclasses.replace(env.inference, check_instance_count=count),
        )
        quality = build_pipelines(quality_env, "quality")["quality"]
        story.sm.create_pipeline(
            PipelineName=quality.name, PipelineDefinition=quality.definition, RoleArn=quality.role_arn
        )
        uri = _put_labels(story, f"{env.name}/ground-truth/{scored.rsplit('/', 1)[1]}/labels.csv", labels)
        arn = story.sm.start_pipeline_execution(
            PipelineName=quality.name, PipelineParameters=[{"Name": "LabelsUri", "Value": uri}]
        )["PipelineExecutionArn"]
        measured.append((quality.name, arn))
    documents = []
    for (name, arn), scored in zip(measured, (one, three), strict=True):
        status, steps = story.wait(arn)
        assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
        execution = arn.rsplit("/", 1)[1]
        document = json.loads(read(f"{env.outputs_prefix}/{name}/{execution}/model-quality/quality.json"))
        batch = scored.rsplit("/", 1)[1]
        assert (
            document.pop("batch") == batch and batch in document.pop("labels") and batch in document.pop("predictions")
        )
        documents.append(json.loads(json.dumps(document).replace(batch, "<batch>")))
    assert "ModelQualityMerge" in steps
    assert documents[1] == documents[0] and documents[0]["labelled_rows"] == len(rows)  # the same metrics
