"""Evaluate step: score the trained model on the held-out test split and write the evaluation report
(AUC from predicted probabilities, precision/recall/F1/accuracy at 0.5, confusion matrix, ROC points)
plus the decision inputs the pipeline's condition reads: the AUC threshold and, when an approved
champion exists in the registry, the champion's AUC minus the tolerance.

    python pipelines/steps/evaluate.py --model out/model --test out/test --output out/evaluation \
        --auc-threshold 0.9 [--champion-auc 0.95 --champion-tolerance 0.02]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import metric_data
from tabular import DataError, run_or_fail, write_json
from train import MODEL_FILE, load_split

REPORT = "evaluation.json"
MAX_ROC_POINTS = 101


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--model",
        default="/opt/ml/processing/model",
        help="model.tar.gz, or a directory holding it or its extracted files",
    )
    p.add_argument("--test", default="/opt/ml/processing/test")
    p.add_argument("--output", default="/opt/ml/processing/evaluation")
    p.add_argument("--auc-threshold", type=float, default=0.9)
    p.add_argument("--champion-tolerance", type=float, default=0.02)
    p.add_argument(
        "--auc-floor",
        type=float,
        default=0.0,
        help="the environment's auc_threshold: a lower --auc-threshold does not apply",
    )
    p.add_argument(
        "--max-champion-tolerance",
        type=float,
        default=None,
        help="the environment's champion_tolerance: a higher --champion-tolerance does not apply",
    )
    p.add_argument("--champion-auc", type=float, default=None, help="skip the registry lookup: the champion's AUC")
    p.add_argument(
        "--model-package-group-arn",
        default="",
        help="look up the latest Approved package here and read its AUC (the champion)",
    )
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    metric_data.add_arguments(p)
    return p.parse_args(argv)


def load_model(path: str):
    """The booster from model.tar.gz (as SageMaker writes it) or from an already extracted directory."""
    import xgboost as xgb

    archive = path if os.path.isfile(path) else os.path.join(path, "model.tar.gz")
    if os.path.isfile(archive):
        directory = tempfile.mkdtemp(prefix="model-")
        with tarfile.open(archive) as tar:
            tar.extractall(directory, filter="data")
    else:
        directory = path
    model_file = os.path.join(directory, MODEL_FILE)
    if not os.path.exists(model_file):
        raise DataError(f"no {MODEL_FILE} in the model artefact at {path}")
    booster = xgb.Booster()
    booster.load_model(model_file)
    return booster


def binary_classification_metrics(labels, probabilities) -> dict:
    """Model-quality metrics in the schema SageMaker's ModelMetrics/Model Monitor use for binary classifiers."""
    import numpy as np
    from sklearn import metrics

    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        raise DataError("the test split holds a single class: AUC is undefined")
    predicted = (np.asarray(probabilities) >= 0.5).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    fpr, tpr, thresholds = metrics.roc_curve(labels, probabilities)
    if len(fpr) > MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]

    def value(v):
        return {"value": float(v), "standard_deviation": "NaN"}

    return {
        "auc": value(metrics.roc_auc_score(labels, probabilities)),
        "accuracy": value(metrics.accuracy_score(labels, predicted)),
        "precision": value(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": value(metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": value(metrics.f1_score(labels, predicted, zero_division=0)),
        "confusion_matrix": {"0": {"0": int(tn), "1": int(fp)}, "1": {"0": int(fn), "1": int(tp)}},
        "receiver_operating_characteristic_curve": {
            "false_positive_rates": [float(x) for x in fpr],
            "true_positive_rates": [float(x) for x in tpr],
            "thresholds": [float(min(x, 1.0)) for x in thresholds],
        },
    }


def approved_packages(sagemaker, group_arn: str):
    """Approved packages of the group, newest first (DescribeModelPackage of each, page by page)."""
    kwargs = {
        "ModelPackageGroupName": group_arn,
        "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 10,
    }
    while True:
        page = sagemaker.list_model_packages(**kwargs)
        for summary in page.get("ModelPackageSummaryList", []):
            yield sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def champion_auc(group_arn: str) -> tuple[float | None, str | None, list[dict]]:
    """AUC of the newest Approved package whose evaluation report can be compared with (the champion),
    its ARN, and the newer Approved packages skipped because they cannot be: an approved version
    registered without ModelMetrics must not stop every later training run, and a report whose sha256
    is not the one recorded at registration is not believed."""
    import boto3

    sagemaker, s3, skipped = boto3.client("sagemaker"), boto3.client("s3"), []
    try:
        for package in approved_packages(sagemaker, group_arn):
            arn = package["ModelPackageArn"]
            uri = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics", {}).get("S3Uri")
            if not uri:
                skipped.append({"model_package_arn": arn, "reason": "no ModelMetrics.ModelQuality.Statistics"})
                print(f"champion comparison skips {arn}: approved without ModelMetrics.ModelQuality.Statistics")
                continue
            bucket, _, key = uri[len("s3://") :].partition("/")
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            recorded = (package.get("CustomerMetadataProperties") or {}).get("evaluation_sha256")
            actual = hashlib.sha256(body).hexdigest()
            if recorded != actual:
                reason = (
                    f"{uri} has sha256 {actual}, not the {recorded} recorded at registration"
                    if recorded
                    else f"no evaluation_sha256 recorded for {uri}"
                )
                skipped.append({"model_package_arn": arn, "reason": reason})
                print(f"champion comparison skips {arn}: {reason}")
                continue
            return float(json.loads(body)["binary_classification_metrics"]["auc"]["value"]), arn, skipped
        return None, None, skipped
    except Exception as exc:  # botocore errors: one line naming what could not be read
        raise DataError(f"cannot read the champion of {group_arn}: {exc}") from None


def effective_floors(threshold: float, tolerance: float, auc_floor: float, max_tolerance: float | None):
    """A run may raise the environment's quality floors, never weaken them: (threshold, tolerance, notes)."""
    notes = []
    if threshold < auc_floor:
        notes.append(f"AucThreshold {threshold:.4f} is below the environment's {auc_floor:.4f}, which applies")
        threshold = auc_floor
    if max_tolerance is not None and tolerance > max_tolerance:
        notes.append(f"ChampionTolerance {tolerance:.4f} is above the environment's {max_tolerance:.4f}, which applies")
        tolerance = max_tolerance
    return threshold, tolerance, notes


def decide(auc: float, threshold: float, champion: float | None, tolerance: float) -> dict:
    """What the pipeline's condition will check, with a message naming each metric that missed its threshold."""
    champion_minimum = (champion - tolerance) if champion is not None else 0.0
    missed = []
    if auc < threshold:
        missed.append(f"auc {auc:.4f} is below AucThreshold {threshold:.4f}")
    if champion is not None and auc < champion_minimum:
        missed.append(
            f"auc {auc:.4f} is below the champion's auc {champion:.4f} minus ChampionTolerance "
            f"{tolerance:.4f} (= {champion_minimum:.4f})"
        )
    return {
        "passed": not missed,
        "auc_threshold": threshold,
        "champion_auc": champion,
        "champion_tolerance": tolerance,
        "champion_minimum_auc": champion_minimum,
        "message": "; ".join(missed) if missed else f"auc {auc:.4f} meets every threshold",
    }


def run(args) -> dict:
    import xgboost as xgb

    booster = load_model(args.model)
    labels, features, names = load_split(args.test)
    probabilities = booster.predict(xgb.DMatrix(features, feature_names=names))
    metrics = binary_classification_metrics(labels, probabilities)
    champion, champion_arn, skipped = args.champion_auc, None, []
    if champion is None and args.model_package_group_arn:
        champion, champion_arn, skipped = champion_auc(args.model_package_group_arn)
    threshold, tolerance, notes = effective_floors(
        args.auc_threshold, args.champion_tolerance, args.auc_floor, args.max_champion_tolerance
    )
    for note in notes:
        print(note)
    decision = decide(metrics["auc"]["value"], threshold, champion, tolerance)
    decision["floor_notes"] = notes
    decision["message"] = "; ".join([decision["message"], *notes])
    decision["champion_model_package_arn"] = champion_arn
    decision["champions_skipped"] = skipped
    report = {"binary_classification_metrics": metrics, "decision": decision, "test_rows": len(labels)}
    write_json(args.output, REPORT, report)
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    report = run_or_fail(run, args)
    metric_data.emit(args, args.output, metric_data.evaluation_data, report)
    print(
        json.dumps(
            {"auc": report["binary_classification_metrics"]["auc"]["value"], "decision": report["decision"]["message"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
