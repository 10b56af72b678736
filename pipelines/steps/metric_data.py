"""The CloudWatch metric contract of the toolkit's runs: namespace, metric and dimension names, units, and
the one way a run publishes them (MetricData built here, written to metrics.json beside the step's other
outputs, and put with PutMetricData when the step may reach the network).

This file ships with the step scripts (they import it as a sibling inside their container, where only
pipelines/steps/ exists); the rest of the toolkit imports it as `pipelines.metrics`. Standard library
only, boto3 when publishing (every SageMaker image and the Lambda runtime have it).

    Namespace  MLOps/<project>
    Dimensions Environment (every metric), Pipeline (train|hpo|inference|quality), Feature, Check, Status
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

NAMESPACE_PREFIX = "MLOps/"
METRICS_FILE = "metrics.json"

# -- dimensions ---------------------------------------------------------------------------------------
ENVIRONMENT = "Environment"
PIPELINE = "Pipeline"
FEATURE = "Feature"
CHECK = "Check"
STATUS = "Status"

# values of the Pipeline dimension: the pipeline's kind, never its name (names differ per environment)
TRAIN, HPO, INFERENCE, QUALITY = "train", "hpo", "inference", "quality"
PIPELINE_KINDS = (TRAIN, HPO, INFERENCE, QUALITY)
# values of the Check dimension of Violations
CONTRACT_CHECK, DRIFT_CHECK, QUALITY_CHECK = "contract", "drift", "quality"
CHECKS = (CONTRACT_CHECK, DRIFT_CHECK, QUALITY_CHECK)
# values of the Status dimension of PipelineRuns: an execution's terminal statuses
STATUSES = ("Succeeded", "Failed", "Stopped")

# -- metrics --------------------------------------------------------------------------------------------
ROWS_SCORED = "RowsScored"
MODEL_VERSION = "ModelVersion"
DRIFT_DISTANCE = "DriftDistance"
DRIFT_BOUND = "DriftBound"
DRIFT_SCORE = "DriftScore"
VIOLATIONS = "Violations"
AUC, F1, PRECISION, RECALL, ACCURACY = "AUC", "F1", "Precision", "Recall", "Accuracy"
QUALITY_METRICS = (AUC, F1, PRECISION, RECALL, ACCURACY)
PIPELINE_RUNS = "PipelineRuns"
PIPELINE_DURATION = "PipelineDuration"

# metric -> (its dimensions besides Environment, its unit). Dimensions are a metric's identity in
# CloudWatch: a query must name exactly these to find it.
CONTRACT: dict[str, tuple[tuple[str, ...], str]] = {
    ROWS_SCORED: ((PIPELINE,), "Count"),
    MODEL_VERSION: ((PIPELINE,), "None"),
    DRIFT_DISTANCE: ((FEATURE,), "None"),
    DRIFT_BOUND: ((FEATURE,), "None"),
    DRIFT_SCORE: ((PIPELINE,), "None"),
    VIOLATIONS: ((PIPELINE, CHECK), "Count"),
    **{name: ((PIPELINE,), "None") for name in QUALITY_METRICS},
    PIPELINE_RUNS: ((PIPELINE, STATUS), "Count"),
    PIPELINE_DURATION: ((PIPELINE,), "Seconds"),
}
# the binary_classification_metrics keys (evaluation.json, quality.json) behind each quality metric
QUALITY_KEYS = {AUC: "auc", F1: "f1", PRECISION: "precision", RECALL: "recall", ACCURACY: "accuracy"}

PUT_LIMIT = 1000  # MetricData entries per PutMetricData request (AWS's limit)


class MetricContractError(ValueError):
    """A datum that does not follow the contract (unknown metric, wrong dimensions, not a finite number)."""


def namespace(project: str) -> str:
    """The namespace of a project's metrics: MLOps/<project>."""
    return f"{NAMESPACE_PREFIX}{project}"


def datum(metric: str, value: float, environment: str, **dimensions: str) -> dict:
    """One MetricData entry, dimensions in the contract's order (Environment first)."""
    if metric not in CONTRACT:
        raise MetricContractError(f"{metric} is not a metric of the contract ({', '.join(CONTRACT)})")
    names, unit = CONTRACT[metric]
    if set(dimensions) != set(names):
        raise MetricContractError(f"{metric} takes the dimensions {', '.join(names) or 'none'} besides Environment")
    if dimensions.get(PIPELINE, PIPELINE_KINDS[0]) not in PIPELINE_KINDS:
        raise MetricContractError(f"Pipeline={dimensions[PIPELINE]} is not one of {', '.join(PIPELINE_KINDS)}")
    number = float(value)
    if not math.isfinite(number):
        raise MetricContractError(f"{metric}: {value!r} is not a finite number (CloudWatch rejects it)")
    return {
        "MetricName": metric,
        "Dimensions": [{"Name": ENVIRONMENT, "Value": environment}]
        + [{"Name": name, "Value": str(dimensions[name])} for name in names],
        "Value": number,
        "Unit": unit,
    }


# -- what each run publishes, from its own summary file -----------------------------------------------------
def validation_data(summary: Mapping, environment: str, pipeline: str = INFERENCE) -> list[dict]:
    """validation.json -> Violations{Check=contract}."""
    return [datum(VIOLATIONS, summary["violation_count"], environment, Pipeline=pipeline, Check=CONTRACT_CHECK)]


def drift_data(summary: Mapping, environment: str, pipeline: str = INFERENCE) -> list[dict]:
    """drift_check.json -> per feature DriftDistance and DriftBound, DriftScore (max distance/bound),
    Violations{Check=drift}, and for the batch RowsScored (0 when drift stops it) and ModelVersion."""
    distances, bounds = summary.get("distances") or {}, summary.get("bounds") or {}
    data = []
    ratios = []
    for feature in sorted(distances):
        data.append(datum(DRIFT_DISTANCE, distances[feature], environment, Feature=feature))
        if feature in bounds:
            data.append(datum(DRIFT_BOUND, bounds[feature], environment, Feature=feature))
            if bounds[feature] > 0:
                ratios.append(distances[feature] / bounds[feature])
    violations = int(summary["violation_count"])
    data.append(datum(DRIFT_SCORE, max(ratios, default=0.0), environment, Pipeline=pipeline))
    data.append(datum(VIOLATIONS, violations, environment, Pipeline=pipeline, Check=DRIFT_CHECK))
    # the batch goes on to the transform only without drift
    data.append(datum(ROWS_SCORED, 0 if violations else summary.get("rows", 0), environment, Pipeline=pipeline))
    data += _model_version(summary.get("model_version"), environment, pipeline)
    return data


def quality_data(summary: Mapping, environment: str, pipeline: str = QUALITY) -> list[dict]:
    """quality.json -> AUC/F1/Precision/Recall/Accuracy observed on the labels, Violations{Check=quality},
    ModelVersion of the predictions."""
    observed = {check["metric_name"]: check["observed"] for check in summary.get("checks") or []}
    data = [
        datum(metric, observed[key], environment, Pipeline=pipeline)
        for metric, key in QUALITY_KEYS.items()
        if key in observed
    ]
    data.append(datum(VIOLATIONS, summary["violation_count"], environment, Pipeline=pipeline, Check=QUALITY_CHECK))
    return data + _model_version(summary.get("model_version"), environment, pipeline)


def evaluation_data(report: Mapping, environment: str, pipeline: str) -> list[dict]:
    """evaluation.json (the test split) -> AUC/F1/Precision/Recall/Accuracy{Pipeline=train|hpo}."""
    metrics = report["binary_classification_metrics"]
    return [
        datum(metric, metrics[key]["value"], environment, Pipeline=pipeline)
        for metric, key in QUALITY_KEYS.items()
        if key in metrics
    ]


def run_data(status: str, seconds: float, environment: str, pipeline: str) -> list[dict]:
    """An execution that ended: PipelineRuns{Status} = 1 and its PipelineDuration."""
    if status not in STATUSES:
        raise MetricContractError(f"{status} is not a terminal status ({', '.join(STATUSES)})")
    return [
        datum(PIPELINE_RUNS, 1, environment, Pipeline=pipeline, Status=status),
        datum(PIPELINE_DURATION, max(seconds, 0.0), environment, Pipeline=pipeline),
    ]


def _model_version(version: Any, environment: str, pipeline: str) -> list[dict]:
    try:
        number = float(version)
    except (TypeError, ValueError):
        return []  # a local run against a file has no registry version
    return [datum(MODEL_VERSION, number, environment, Pipeline=pipeline)]


# -- publishing -------------------------------------------------------------------------------------------
def publish(namespace_name: str, data: Sequence[Mapping], cloudwatch: Any = None) -> int:
    """PutMetricData, in requests of at most PUT_LIMIT entries; returns how many were put. Datapoints
    without a Timestamp are stamped by CloudWatch when it receives them."""
    if cloudwatch is None:
        import boto3  # deferred: only a publishing run needs it

        cloudwatch = boto3.client("cloudwatch")
    entries = [dict(d) for d in data]
    for start in range(0, len(entries), PUT_LIMIT):
        cloudwatch.put_metric_data(Namespace=namespace_name, MetricData=entries[start : start + PUT_LIMIT])
    return len(entries)


def write(directory: str | os.PathLike, namespace_name: str, data: Iterable[Mapping]) -> Path:
    """metrics.json: {"Namespace": ..., "MetricData": [...]}, what publish() puts (or a later step does)."""
    path = Path(directory) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Namespace": namespace_name, "MetricData": list(data)}, indent=2))
    return path


def read(path: str | os.PathLike) -> tuple[str, list[dict]]:
    """(namespace, MetricData) of a metrics.json, or of the one inside a directory."""
    p = Path(path)
    document = json.loads((p / METRICS_FILE if p.is_dir() else p).read_text())
    return document["Namespace"], list(document["MetricData"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments a publishing step script takes (the pipeline definition passes them)."""
    group = parser.add_argument_group("metrics (CloudWatch)")
    group.add_argument("--metrics-namespace", default="", help="MLOps/<project>; none: no metrics.json")
    group.add_argument("--metrics-environment", default="", help="the Environment dimension")
    group.add_argument("--metrics-pipeline", default="", choices=("", *PIPELINE_KINDS), help="the Pipeline dimension")
    group.add_argument(
        "--publish-metrics",
        action="store_true",
        help="also PutMetricData (a network-isolated step only writes metrics.json; a later step publishes it)",
    )


def emit(
    args: argparse.Namespace, directory: str | os.PathLike, build: Callable[..., list[dict]], result: Mapping
) -> Path | None:
    """What a step does with its metrics: `build(result, environment, pipeline)` written to metrics.json in
    `directory`, and put with PutMetricData when asked to. Nothing without --metrics-namespace (local use)."""
    if not args.metrics_namespace:
        return None
    data = build(result, args.metrics_environment, args.metrics_pipeline)
    path = write(directory, args.metrics_namespace, data)
    if args.publish_metrics:
        publish(args.metrics_namespace, data)
    return path
