"""Data-drift check: compare a batch of inference input with the baseline registered with the model
(Model Monitor statistics.json / constraints.json) and write constraint_violations.json (same schema),
the batch's own statistics.json, and drift_check.json (count + one-line message) for the pipeline's
condition. Reads the batch in chunks, so memory stays flat however many rows arrive.

Checks: missing and extra columns, data type, completeness, non-negativity, categorical domain, and per
numeric feature the L-infinity distance between baseline and batch distributions over the baseline's
buckets, against --drift-threshold.
    python pipelines/steps/drift_check.py --input batch.csv --baseline-statistics statistics.json \
        --baseline-constraints constraints.json --output out/drift --drift-threshold 0.25
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tabular import (
    CHUNK_ROWS,
    DataError,
    FeatureStatistics,
    cdf_distance,
    find_csv,
    load_json,
    run_or_fail,
    split_list,
    write_json,
)

SUMMARY = "drift_check.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--input", default="/opt/ml/processing/input/data", help="batch CSV (with header) or its directory")
    p.add_argument("--baseline-statistics", default="/opt/ml/processing/baseline/statistics")
    p.add_argument("--baseline-constraints", default="/opt/ml/processing/baseline/constraints")
    p.add_argument("--output", default="/opt/ml/processing/output")
    p.add_argument(
        "--drift-threshold",
        type=float,
        default=None,
        help="distance above which a feature has drifted (default: the constraints' comparison_threshold)",
    )
    p.add_argument("--missing-values", default="?")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    p.add_argument("--model-version", default="", help="recorded in the summary: whose baseline this was")
    p.add_argument("--fail-on-violations", action="store_true", help="exit 1 when drift is found (local use)")
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    return p.parse_args(argv)


def batch_statistics(path, baseline: dict, missing_values, chunk_rows: int):
    """Per-feature statistics of the batch on the baseline's buckets, and the batch's columns, in one pass."""
    import pandas as pd

    kinds = {f["name"]: ("string" if f["inferred_type"] == "String" else "numeric") for f in baseline["features"]}
    edges = {}
    for f in baseline["features"]:
        buckets = f.get("numerical_statistics", {}).get("distribution", {}).get("kll", {}).get("buckets")
        if buckets:
            edges[f["name"]] = [b["lower_bound"] for b in buckets] + [buckets[-1]["upper_bound"]]
    if path.stat().st_size == 0:
        raise DataError(f"batch file {path.name} is empty")
    stats: dict = {}
    columns: list = []
    rows = 0
    reader = pd.read_csv(
        path,
        na_values=list(missing_values),
        keep_default_na=True,
        skipinitialspace=True,
        chunksize=chunk_rows,
        dtype={name: str for name, kind in kinds.items() if kind == "string"},
    )
    try:
        for chunk in reader:
            if not columns:
                columns = [str(c) for c in chunk.columns]
                stats = {c: FeatureStatistics(c, kinds[c], edges.get(c)) for c in columns if c in kinds}
            rows += len(chunk)
            for name, feature in stats.items():
                feature.add(chunk[name])
    except pd.errors.EmptyDataError:
        raise DataError(f"batch file {path.name} is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"batch file {path.name} is not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    return stats, columns, rows


def violations_for(
    baseline: dict, constraints: dict, stats: dict, columns: list, rows: int, threshold: float
) -> tuple[list, dict]:
    """Model Monitor-style violations, and the distance measured per numeric feature."""
    config = constraints.get("monitoring_config", {})
    datatype_threshold = float(config.get("datatype_check_threshold", 1.0))
    domain_threshold = float(config.get("domain_content_threshold", 1.0))
    by_name = {c["name"]: c for c in constraints.get("features", [])}
    violations, distances = [], {}

    def add(feature, check, description):
        violations.append({"feature_name": feature, "constraint_check_type": check, "description": description})

    baseline_names = [f["name"] for f in baseline["features"]]
    for name in baseline_names:
        if name not in columns:
            add(name, "missing_column_check", f"column '{name}' of the baseline is missing from the batch")
    for name in columns:
        if name not in by_name and name not in baseline_names:
            add(name, "extra_column_check", f"column '{name}' is not in the baseline")
    if rows == 0:
        add("*", "completeness_check", "the batch has no rows")
        return violations, distances

    for f in baseline["features"]:
        name = f["name"]
        current = stats.get(name)
        if current is None:
            continue
        constraint = by_name.get(name, {})
        if current.kind == "numeric" and current.present + current.non_numeric:
            numeric_share = current.present / (current.present + current.non_numeric)
            if numeric_share < datatype_threshold:
                add(
                    name,
                    "data_type_check",
                    f"{current.non_numeric} value(s) are not numbers ({numeric_share:.2%} numeric, baseline type "
                    f"{f['inferred_type']}, threshold {datatype_threshold:.2%})",
                )
        required = float(constraint.get("completeness", 0.0))
        if current.completeness < required - 1e-12:
            add(
                name,
                "completeness_check",
                f"completeness {current.completeness:.4f} is below the baseline's {required:.4f}",
            )
        if constraint.get("num_constraints", {}).get("is_non_negative") and current.negatives:
            add(name, "non_negative_check", f"{current.negatives} negative value(s); the baseline has none")
        domain = constraint.get("string_constraints", {}).get("domains")
        if current.kind == "string" and domain is not None and current.present:
            in_domain = sum(c for v, c in current.category_counts.items() if v in set(domain))
            share = in_domain / current.present
            if share < domain_threshold:
                unseen = sorted(v for v in current.category_counts if v not in set(domain))[:5]
                add(
                    name,
                    "categorical_values_check",
                    f"{share:.2%} of values are in the baseline's domain (threshold {domain_threshold:.2%}); "
                    f"unseen: {', '.join(unseen)}",
                )
        if current.histogram is not None and current.present:
            baseline_counts = [b["count"] for b in f["numerical_statistics"]["distribution"]["kll"]["buckets"]]
            distance = cdf_distance(baseline_counts, current.histogram)
            distances[name] = round(distance, 6)
            if distance > threshold:
                add(
                    name,
                    "baseline_drift_check",
                    f"distance {distance:.4f} exceeds the threshold {threshold:.4f} (baseline mean "
                    f"{f['numerical_statistics']['mean']:.4g}, batch mean {current.total / current.present:.4g})",
                )
    return violations, distances


def run(args) -> dict:
    path = find_csv(args.input)
    baseline = load_json(args.baseline_statistics, "statistics.json")
    constraints = load_json(args.baseline_constraints, "constraints.json")
    if not isinstance(baseline.get("features"), list):
        raise DataError("baseline statistics have no 'features' list: not a Model Monitor statistics.json")
    threshold = args.drift_threshold
    if threshold is None:
        threshold = float(
            constraints.get("monitoring_config", {})
            .get("distribution_constraints", {})
            .get("comparison_threshold", 0.1)
        )
    stats, columns, rows = batch_statistics(path, baseline, split_list(args.missing_values), args.chunk_rows)
    violations, distances = violations_for(baseline, constraints, stats, columns, rows, threshold)
    write_json(args.output, "constraint_violations.json", {"violations": violations})
    write_json(
        args.output,
        "statistics.json",
        {"version": 0.0, "dataset": {"item_count": rows}, "features": [s.to_json() for s in stats.values()]},
    )
    features = sorted({v["feature_name"] for v in violations})
    if violations:
        detail = "; ".join(f"{v['feature_name']}: {v['constraint_check_type']}" for v in violations[:6])
        message = (
            f"{len(violations)} violation(s) in {len(features)} feature(s) against the baseline"
            f"{' of model version ' + args.model_version if args.model_version else ''}: {detail}"
            f"{'; ...' if len(violations) > 6 else ''}"
        )
    else:
        message = f"no drift: {rows} rows within threshold {threshold:.4f} on {len(distances)} numeric feature(s)"
    summary = {
        "violation_count": len(violations),
        "drifted_features": features,
        "rows": rows,
        "threshold": threshold,
        "distances": distances,
        "model_version": args.model_version,
        "message": message,
    }
    write_json(args.output, SUMMARY, summary)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run_or_fail(run, args)
    print(json.dumps({"violation_count": summary["violation_count"], "message": summary["message"]}))
    if summary["violation_count"] and args.fail_on_violations:
        print(f"DataDriftDetected: {summary['message']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
