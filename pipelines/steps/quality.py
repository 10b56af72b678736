"""Model-quality step: join ground-truth labels for an earlier batch with that batch's predictions, compute
AUC, F1, precision, recall and accuracy, and compare them with the model-quality baseline registered with
the version that scored the batch (its evaluation report on the held-out test split).

A metric fails when it is below `baseline - tolerance` beyond what sampling explains: the bound subtracts a
one-sided z-quantile (Šidák-corrected over the metrics, so --significance is the false-alarm rate of the
whole check) times the combined standard error of the batch's and the baseline's metric.

Labels: a CSV with header `id,label` (label 0 or 1) at <ground-truth prefix><inference execution id>/<file>;
the execution id names the scored batch, whose predictions (`record_id,probability,label,model_version`)
are under <predictions prefix>model-version=N/<execution id>/. Bad input (unknown or repeated ids, labels
outside {0,1}, a batch never scored) fails with one line naming the file and the problem, and writes no
verdict. Writes Model Monitor's model-quality statistics.json and constraint_violations.json and
quality.json (count + one-line message) for the pipeline's condition.

On several Processing instances (the same arguments on each: the inputs are read from S3, not sharded by
SageMaker) each instance runs with --shard-output and takes its share of the batch's prediction parts (the
i-th of N hosts in resourceconfig.json takes parts i, i+N, ...), joins them with the labels and writes the
mergeable result: per probability, how many labelled records of each class, and which labels it matched.
One merge run (--merge-partials) computes the metrics and decides: the metrics depend only on those counts,
so they are the single-instance ones exactly, and one instance goes through the same partial and merge.

    python pipelines/steps/quality.py --labels-uri s3://bucket/prod/ground-truth/EXEC/labels.csv \
        --predictions-prefix s3://bucket/prod/predictions/ --ground-truth-prefix prod/ground-truth/ \
        --model-package-group-arn ARN --output out/quality
    python pipelines/steps/quality.py ... --shard-output partials/      # on each of N instances
    python pipelines/steps/quality.py ... --merge-partials partials/    # then once
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import metric_data
import shards
from evaluate import binary_classification_metrics
from shards import fingerprint, read_partials, resource_config, write_partial
from significance import metric_standard_errors, per_test_level, shortfall_bound
from tabular import DataError, run_or_fail, write_json

SUMMARY = "quality.json"
PARTIAL = "quality"
METRICS = ("auc", "f1", "precision", "recall", "accuracy")
FAILURE = "ModelQualityBelowThreshold"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--labels-uri", required=True, help="s3:// URI (or local path) of the labels CSV (id,label)")
    p.add_argument("--ground-truth-prefix", default="", help="key prefix the labels land under (<env>/ground-truth/)")
    p.add_argument("--predictions-prefix", required=True, help="s3:// prefix (or local folder) of the predictions")
    p.add_argument("--batch", default="", help="the scored batch's execution id (default: from the labels' key)")
    p.add_argument("--model-package-group-arn", default="", help="where the version's quality baseline is")
    p.add_argument("--baseline", default="", help="a local evaluation.json to compare with instead (local use)")
    p.add_argument("--tolerances", default="", help="metric=tolerance,... (the environment's quality_tolerance)")
    p.add_argument("--significance", type=float, default=0.01, help="false-alarm rate of the whole check")
    p.add_argument("--output", default="/opt/ml/processing/output")
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    shards.add_arguments(
        p, "the join of this instance's share of the prediction parts", "the joins (instead of every part)"
    )
    metric_data.add_arguments(p)
    args = p.parse_args(argv)
    shards.check_arguments(p, args)
    return args


# ---- reading: S3 or local, so the step runs the same in a container and in a test ----------------


def _s3():
    import boto3  # deferred: local runs need no AWS SDK

    return boto3.client("s3")


def read_bytes(uri: str) -> bytes:
    if not uri.startswith("s3://"):
        with open(uri, "rb") as handle:
            return handle.read()
    bucket, _, key = uri[5:].partition("/")
    from botocore.exceptions import ClientError

    try:
        return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise DataError(f"cannot read {uri}: {code or exc}") from None


def list_files(prefix: str) -> list[str]:
    """Every object (or file) under `prefix`, as URIs/paths."""
    if not prefix.startswith("s3://"):
        found = []
        for root, _, files in os.walk(prefix):
            found += [os.path.join(root, f) for f in files]
        return sorted(found)
    bucket, _, key = prefix[5:].partition("/")
    found = []
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        found += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
    return sorted(found)


# ---- the labels and the predictions they refer to ------------------------------------------------


def batch_of(labels_uri: str, ground_truth_prefix: str) -> str:
    """The inference execution id in <prefix><execution id>/<file>."""
    key = labels_uri[5:].partition("/")[2] if labels_uri.startswith("s3://") else labels_uri
    name = os.path.basename(key)
    if ground_truth_prefix and ground_truth_prefix in key:
        rest = key.split(ground_truth_prefix, 1)[1]
        batch = rest.split("/")[0] if "/" in rest else ""
        if batch:
            return batch
    raise DataError(
        f"labels {name}: not under {ground_truth_prefix or '<ground-truth prefix>'}<inference execution id>/, "
        "so which batch they label is unknown"
    )


def read_labels(uri: str, body: bytes | None = None):
    """The labels as {id: 0|1}, checked: header id,label; ids once each; labels 0 or 1."""
    import pandas as pd

    name = os.path.basename(uri)
    body = read_bytes(uri) if body is None else body
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"labels {name}: not a readable CSV ({str(exc).strip().splitlines()[0]})") from None
    columns = [str(c).strip() for c in frame.columns]
    if columns[:2] != ["id", "label"] or len(columns) != 2:
        raise DataError(f"labels {name}: the header must be 'id,label', not {','.join(columns)!r}")
    if not len(frame):
        raise DataError(f"labels {name}: no labelled rows")
    frame.columns = ["id", "label"]
    ids, labels = frame["id"].str.strip(), frame["label"].str.strip()
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        rows = [str(i + 1) for i in repeated.index[repeated == first][:3]]
        raise DataError(
            f"labels {name}: id {first!r} is labelled more than once (rows {', '.join(rows)}); "
            f"{repeated.nunique()} id(s) repeat"
        )
    bad = ~labels.isin(["0", "1"])
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"labels {name}: label {labels.iloc[i]!r} of id {ids.iloc[i]!r} (row {i + 1}) is not 0 or 1; "
            f"{int(bad.sum())} label(s) are outside {{0,1}}"
        )
    return dict(zip(ids.tolist(), labels.astype(int).tolist()))


def prediction_parts(prefix: str, batch: str) -> tuple[list, str]:
    """The URIs of the batch's prediction parts (every object under <prefix>*/<batch>/), by name, and the
    prefix as shown."""
    base = prefix.rstrip("/") + "/"
    return [u for u in list_files(base) if f"/{batch}/" in u[len(base) - 1 :]], base


def join_part(uri: str, batch: str, labels_name: str, labels: dict, positions: dict) -> dict:
    """One prediction part joined with the labels, as mergeable counts: its rows and model versions, for
    each probability the labelled records of class 0 and 1, and (packed bits, by the labels' rows as
    `positions` gives them) which labels it matched."""
    import numpy as np
    import pandas as pd

    record: dict = {"name": uri, "rows": 0, "versions": [], "scores": [], "matched": ""}
    body = read_bytes(uri)
    if not body.strip():
        return record
    frame = pd.read_csv(io.BytesIO(body), header=None, dtype={0: str, 3: str})
    if frame.shape[1] != 4:
        record["error"] = (
            f"labels {labels_name}: the predictions of batch {batch} ({os.path.basename(uri)}) carry no record "
            "ids (scored before predictions had them), so labels cannot be joined"
        )
        return record
    ids = frame[0].astype(str).str.strip()
    at = ids.map(positions)  # each record's place among the labels (NaN: not labelled)
    labelled = at.notna().to_numpy()
    where = at[labelled].to_numpy(dtype=np.int64)
    truth = np.fromiter(labels.values(), dtype=np.int64, count=len(labels))[where]
    probabilities = frame[1].astype(float).to_numpy()[labelled]
    values, inverse = np.unique(probabilities, return_inverse=True)
    per_class = np.zeros((len(values), 2), dtype=np.int64)
    np.add.at(per_class, (inverse, truth), 1)
    matched = np.zeros(len(labels), dtype=bool)
    matched[where] = True
    record["rows"] = len(ids)
    record["versions"] = sorted(set(frame[3].astype(str)))
    record["scores"] = [[float(p), int(n0), int(n1)] for p, (n0, n1) in zip(values, per_class)]
    record["matched"] = base64.b64encode(np.packbits(matched).tobytes()).decode()
    return record


def joined_labels(records: list, labels: dict, labels_name: str, batch: str, base: str):
    """Every part's join merged: (truth, probabilities, version, scored rows), checked as one batch: scored,
    by one version, every label joined. The metrics depend only on how many records of each class have
    each probability, so they are the same however the parts were shared out."""
    import numpy as np

    for record in records:
        if record.get("error"):
            raise DataError(record["error"])
    if not records:
        raise DataError(f"labels {labels_name}: batch {batch} was never scored (no predictions under {base}*/{batch}/)")
    if not any(r["rows"] for r in records):
        raise DataError(f"labels {labels_name}: the predictions of batch {batch} are empty")
    versions = sorted({v for r in records for v in r["versions"]})
    if len(versions) != 1:
        raise DataError(f"labels {labels_name}: batch {batch} was scored by several versions ({', '.join(versions)})")
    matched = np.zeros(len(labels), dtype=bool)
    counts: dict = {}
    for record in records:
        if record["matched"]:
            bits = np.frombuffer(base64.b64decode(record["matched"]), dtype=np.uint8)
            matched |= np.unpackbits(bits, count=len(labels)).astype(bool)
        for probability, n0, n1 in record["scores"]:
            pair = counts.setdefault(float(probability), [0, 0])
            pair[0] += int(n0)
            pair[1] += int(n1)
    scored = sum(int(r["rows"]) for r in records)
    if not matched.all():
        unknown = [i for i, hit in zip(labels, matched) if not hit]
        shown = ", ".join(repr(i) for i in unknown[:3])
        raise DataError(
            f"labels {labels_name}: {len(unknown)} id(s) are not among the {scored} record(s) batch {batch} "
            f"scored: {shown}{', ...' if len(unknown) > 3 else ''}"
        )
    truth: list = []
    probabilities: list = []
    for probability in sorted(counts):
        n0, n1 = counts[probability]
        truth += [0] * n0 + [1] * n1
        probabilities += [probability] * (n0 + n1)
    return truth, probabilities, versions[0], scored


# ---- the baseline registered with the version ----------------------------------------------------


def registered_baseline(group_arn: str, version: str) -> tuple[dict, str]:
    """The version's model-quality statistics (its evaluation report) and the package ARN."""
    import boto3

    sagemaker = boto3.client("sagemaker")
    try:
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group_arn):
            for summary in page["ModelPackageSummaryList"]:
                if str(summary.get("ModelPackageVersion")) == str(version):
                    arn = summary["ModelPackageArn"]
                    package = sagemaker.describe_model_package(ModelPackageName=arn)
                    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
                    if not uri:
                        raise DataError(f"model version {version} ({arn}) has no registered model-quality baseline")
                    return json.loads(read_bytes(uri)), arn
    except DataError:
        raise
    except Exception as exc:  # botocore errors: one line naming what could not be read
        raise DataError(f"cannot read model version {version} in {group_arn}: {exc}") from None
    raise DataError(f"model version {version} is not in {group_arn}")


# ---- the comparison --------------------------------------------------------------------------------


def tolerances(text: str) -> dict:
    given = dict.fromkeys(METRICS, 0.05)
    for item in [t for t in text.split(",") if t.strip()]:
        metric, _, value = item.partition("=")
        given[metric.strip()] = float(value)
    return given


def counts(metrics: dict) -> tuple[int, int, int, int]:
    matrix = metrics["confusion_matrix"]
    return int(matrix["1"]["1"]), int(matrix["0"]["1"]), int(matrix["1"]["0"]), int(matrix["0"]["0"])


def compare(current: dict, baseline: dict, tolerance: dict, significance: float) -> list[dict]:
    """Per metric: observed, baseline, tolerance, bound, and whether it fell below the bound."""
    level = per_test_level(significance, len(METRICS))
    se_now = metric_standard_errors(*counts(current), current["auc"]["value"])
    se_base = metric_standard_errors(*counts(baseline), baseline["auc"]["value"])
    checks = []
    for metric in METRICS:
        observed, expected = current[metric]["value"], baseline[metric]["value"]
        bound = shortfall_bound(expected, tolerance[metric], level, se_now[metric], se_base[metric])
        checks.append(
            {
                "metric_name": metric,
                "observed": observed,
                "baseline": expected,
                "tolerance": tolerance[metric],
                "bound": bound,
                "standard_error": se_now[metric],
                "baseline_standard_error": se_base[metric],
                "violated": observed < bound,
            }
        )
    return checks


def run(args) -> dict:
    """One instance (every prediction part), a shard (--shard-output: its share's join) or the merge."""
    labels_name = os.path.basename(args.labels_uri)
    batch = args.batch or batch_of(args.labels_uri, args.ground_truth_prefix)
    body = read_bytes(args.labels_uri)
    labels = read_labels(args.labels_uri, body)
    base = args.predictions_prefix.rstrip("/") + "/"
    digest = fingerprint(hashlib.sha256(body).hexdigest(), batch, base)
    if args.merge_partials:
        records = read_partials(args.merge_partials, PARTIAL, digest)
    else:
        parts, base = prediction_parts(args.predictions_prefix, batch)
        host = resource_config(args.resource_config) if args.shard_output else ("algo-1", ["algo-1"])
        current, hosts = host
        mine = parts[hosts.index(current) :: len(hosts)]  # every instance lists the same parts in the same order
        positions = {label_id: i for i, label_id in enumerate(labels)}
        records = [join_part(uri, batch, labels_name, labels, positions) for uri in mine]
        if args.shard_output:
            partial = write_partial(args.shard_output, host, PARTIAL, digest, records)
            return {"partial": str(partial), "parts": len(records), "rows": sum(r["rows"] for r in records)}
    return decide(args, labels, labels_name, batch, base, records)


def decide(args, labels: dict, labels_name: str, batch: str, base: str, records: list) -> dict:
    """The one place the verdict is made, from every prediction part's join (one instance's or all
    shards'): writes statistics.json, constraint_violations.json and quality.json, returns the summary."""
    truth, probabilities, version, scored = joined_labels(records, labels, labels_name, batch, base)
    labelled = len(truth)
    if len(set(truth)) < 2:
        raise DataError(f"labels {labels_name}: every label is {truth[0]}: AUC needs both classes")
    current = binary_classification_metrics(truth, probabilities)
    if args.baseline:
        baseline, package = json.loads(read_bytes(args.baseline)), args.baseline
    else:
        baseline, package = registered_baseline(args.model_package_group_arn, version)
    checks = compare(current, baseline["binary_classification_metrics"], tolerances(args.tolerances), args.significance)

    failed = [c for c in checks if c["violated"]]
    violations = [
        {
            "metric_name": c["metric_name"],
            "constraint_check_type": "LessThanThreshold",
            "description": f"{c['metric_name']} {c['observed']:.4f} is below the bound {c['bound']:.4f} (baseline "
            f"{c['baseline']:.4f} of model version {version} minus tolerance {c['tolerance']:.2f} and sampling "
            f"noise for {labelled} labelled and {baseline.get('test_rows', '?')} baseline rows)",
        }
        for c in failed
    ]
    where = f"batch {batch} ({labelled} labelled of {scored} scored, model version {version})"
    if failed:
        message = f"{len(failed)} metric(s) below their bound on {where}: " + "; ".join(
            f"{c['metric_name']} {c['observed']:.4f} < {c['bound']:.4f} (baseline {c['baseline']:.4f})" for c in failed
        )
    else:
        message = f"model quality holds on {where}: " + ", ".join(
            f"{c['metric_name']} {c['observed']:.4f} >= {c['bound']:.4f}" for c in checks
        )
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": labelled, "evaluation_time": datetime.now(UTC).isoformat()},
        "binary_classification_metrics": current,
    }
    summary = {
        "violation_count": len(violations),
        "message": message,
        "batch": batch,
        "labels": args.labels_uri,
        "predictions": f"{base}*/{batch}/",
        "model_version": version,
        "model_package": package,
        "labelled_rows": labelled,
        "significance": args.significance,
        "checks": checks,
    }
    # Written only now, every input checked: bad input leaves no verdict behind.
    write_json(args.output, "statistics.json", statistics)
    write_json(args.output, "constraint_violations.json", {"violations": violations})
    write_json(args.output, SUMMARY, summary)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run_or_fail(run, args)
    if args.shard_output:
        print(json.dumps(summary))  # this instance's share only: the merge decides
        return 0
    metric_data.emit(args, args.output, metric_data.quality_data, summary)
    print(json.dumps({"violation_count": summary["violation_count"], "message": summary["message"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
