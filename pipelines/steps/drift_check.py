"""Data-drift check: compare a batch of inference input with the baseline registered with the model
(Model Monitor statistics.json / constraints.json) and write constraint_violations.json (same schema),
the batch's own statistics.json, and drift_check.json (count, one-line message, every test's figures)
for the pipeline's condition. Reads the batch in chunks, so memory stays flat however many rows arrive.

Every check is a statistical test of the batch against the baseline as two samples, so its false-alarm
rate is known whatever the batch size: completeness (more missing values than the baseline's rate
allows), categorical domain and non-negativity (more unseen values or negatives than chance allows),
and distribution (the CDF distance over the baseline's buckets, numeric and categorical, against the
two-sample Kolmogorov-Smirnov bound). The per-test level is Šidák-corrected over all tests of the batch,
so --significance is the false-alarm rate of the whole check per clean batch.

The batch is one CSV object or several (each with its header, all with the same columns). On several
Processing instances (input sharded by S3 key) each instance runs with --shard-output and writes the
statistics of its objects, and one merge run (--merge-partials) decides on all of them: the same statistics,
verdict and files as one instance reading the whole batch, which goes through the same per-object
statistics and merge (see shards.py).
    python pipelines/steps/drift_check.py --input batch.csv --baseline-statistics statistics.json \
        --baseline-constraints constraints.json --output out/drift --significance 0.01
    python pipelines/steps/drift_check.py --input shard/ --baseline-statistics ... --shard-output partials/
    python pipelines/steps/drift_check.py --merge-partials partials/ --baseline-statistics ... --output out/drift
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import metric_data
import shards
from shards import (
    fingerprint,
    input_objects,
    read_partials,
    resource_config,
    write_partial,
)
from significance import (
    cdf_distance,
    distance_bound,
    distance_p_value,
    excess_bound,
    excess_p_value,
    per_test_level,
)
from tabular import (
    CHUNK_ROWS,
    DataError,
    FeatureStatistics,
    load_json,
    run_or_fail,
    split_list,
    write_json,
)

SUMMARY = "drift_check.json"
PARTIAL = "drift_check"
DEFAULT_SIGNIFICANCE = 0.01


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--input",
        default="/opt/ml/processing/input/data",
        help="batch CSV (with header) or the directory of its objects",
    )
    shards.add_arguments(p, "this instance's statistics", "the statistics (instead of reading --input)")
    p.add_argument("--baseline-statistics", default="/opt/ml/processing/baseline/statistics")
    p.add_argument("--baseline-constraints", default="/opt/ml/processing/baseline/constraints")
    p.add_argument("--output", default="/opt/ml/processing/output")
    p.add_argument(
        "--significance",
        type=float,
        default=DEFAULT_SIGNIFICANCE,
        help="false-alarm rate of the whole check on a batch drawn from the baseline's distribution",
    )
    p.add_argument("--missing-values", default="?")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    p.add_argument("--model-version", default="", help="recorded in the summary: whose baseline this was")
    p.add_argument("--fail-on-violations", action="store_true", help="exit 1 when drift is found (local use)")
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    metric_data.add_arguments(p)
    args = p.parse_args(argv)
    if not 0 < args.significance < 1:
        p.error(f"--significance {args.significance} is not between 0 and 1 (exclusive)")
    shards.check_arguments(p, args)
    return args


def feature_kinds(baseline: dict) -> dict:
    return {f["name"]: ("string" if f["inferred_type"] == "String" else "numeric") for f in baseline["features"]}


def new_statistics(baseline: dict, columns: list) -> dict:
    """Empty running statistics for the batch's baseline columns, on the baseline's buckets."""
    kinds = feature_kinds(baseline)
    edges = {}
    for f in baseline["features"]:
        buckets = f.get("numerical_statistics", {}).get("distribution", {}).get("kll", {}).get("buckets")
        if buckets:
            edges[f["name"]] = [b["lower_bound"] for b in buckets] + [buckets[-1]["upper_bound"]]
    return {c: FeatureStatistics(c, kinds[c], edges.get(c)) for c in columns if c in kinds}


def frame_statistics(chunks, baseline: dict):
    """Per-feature statistics of the batch given as DataFrame chunks, its columns, and its row count."""
    stats: dict = {}
    columns: list = []
    rows = 0
    for chunk in chunks:
        if not columns:
            columns = [str(c) for c in chunk.columns]
            stats = new_statistics(baseline, columns)
        rows += len(chunk)
        for name, feature in stats.items():
            feature.add(chunk[name])
    return stats, columns, rows


def batch_statistics(path, baseline: dict, missing_values, chunk_rows: int, name: str = ""):
    """frame_statistics of a CSV file, read in chunks of `chunk_rows`."""
    import pandas as pd

    name = name or path.name
    if path.stat().st_size == 0:
        raise DataError(f"batch file {name} is empty")
    reader = pd.read_csv(
        path,
        na_values=list(missing_values),
        keep_default_na=True,
        skipinitialspace=True,
        chunksize=chunk_rows,
        dtype={name: str for name, kind in feature_kinds(baseline).items() if kind == "string"},
    )
    try:
        return frame_statistics(reader, baseline)
    except pd.errors.EmptyDataError:
        raise DataError(f"batch file {name} is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"batch file {name} is not a readable CSV: {str(exc).strip().splitlines()[0]}") from None


def object_partial(name: str, path, baseline: dict, missing_values, chunk_rows: int) -> dict:
    """One object's mergeable statistics (or why it cannot be read: the merge reports the first, by name)."""
    try:
        stats, columns, rows = batch_statistics(path, baseline, missing_values, chunk_rows, name)
    except DataError as exc:
        return {"name": name, "error": str(exc)}
    return {"name": name, "columns": columns, "rows": rows, "features": {n: s.to_partial() for n, s in stats.items()}}


def merge_statistics(objects: list, baseline: dict):
    """frame_statistics of the whole batch from its objects' partials, merged in the order given (by name)."""
    for record in objects:
        if record.get("error"):
            raise DataError(record["error"])
    if not objects:
        raise DataError("the batch holds no object: every instance's input was empty")
    columns = objects[0]["columns"]
    for record in objects[1:]:
        if record["columns"] != columns:
            extra = [c for c in record["columns"] if c not in columns]
            lacking = [c for c in columns if c not in record["columns"]]
            what = (
                f"lacks {', '.join(lacking[:3])}"
                if lacking
                else f"adds {', '.join(extra[:3])}"
                if extra
                else "reorders them"
            )
            raise DataError(
                f"batch object {record['name']} has other columns than {objects[0]['name']}: it {what}; "
                "every object of a batch needs the same header"
            )
    stats = new_statistics(baseline, columns)
    rows = 0
    for record in objects:
        rows += int(record["rows"])
        for name, feature in stats.items():
            feature.merge(record["features"][name])
    return stats, columns, rows


class _Test:
    """One statistical test of a feature. Its bound and description depend on the per-test level, known
    once every test is planned; `describe(level)` gives both, and is only asked for violations."""

    def __init__(self, feature: str, check: str, p_value: float, observed: float, baseline: float, describe):
        self.feature, self.check, self.p_value = feature, check, p_value
        self.observed, self.baseline, self.describe = observed, baseline, describe


def violations_for(
    baseline: dict, constraints: dict, stats: dict, columns: list, rows: int, significance: float
) -> tuple[list, dict]:
    """Model Monitor-style violations, and the figures of every test (observed, baseline, bound, p-value)."""
    config = constraints.get("monitoring_config", {})
    datatype_threshold = float(config.get("datatype_check_threshold", 1.0))
    by_name = {c["name"]: c for c in constraints.get("features", [])}
    violations: list = []
    report = {"significance": significance, "tests": 0, "level": significance, "checks": [], "distances": {}}
    report["bounds"] = {}  # per feature, the distribution bound its distance was compared with

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
        return violations, report

    tests: list[_Test] = []
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
        tests += _feature_tests(f, constraint, current)

    level = per_test_level(significance, len(tests))
    report.update(tests=len(tests), level=level)
    for test in tests:
        figures = {
            "feature": test.feature,
            "check": test.check,
            "observed": test.observed,
            "baseline": test.baseline,
            "p_value": test.p_value,
        }
        if test.check == "baseline_drift_check":
            report["distances"][test.feature] = round(test.observed, 6)
            report["bounds"][test.feature] = round(test.describe(level)[0], 6)  # what it was compared with
        if test.p_value < level:
            bound, text = test.describe(level)
            figures["bound"] = bound
            add(test.feature, test.check, f"{text} (p = {test.p_value:.3g} < level {level:.3g})")
        report["checks"].append(figures)
    return violations, report


def _feature_tests(feature: dict, constraint: dict, current: FeatureStatistics) -> list[_Test]:
    """The tests one feature gets: completeness, then domain/sign, then distribution."""
    name = feature["name"]
    kind = "string_statistics" if current.kind == "string" else "numerical_statistics"
    common = feature[kind]["common"]
    base_missing, base_present = int(common.get("num_missing", 0)), int(common.get("num_present", 0))
    base_rows = base_missing + base_present
    tests = []

    batch_missing, batch_rows = current.missing, current.count
    if base_rows:
        base_completeness = base_present / base_rows

        observed = 1 - batch_missing / batch_rows

        def completeness(level):
            bound = 1 - excess_bound(level, batch_rows, base_missing, base_rows) / batch_rows
            return bound, (
                f"completeness {observed:.4f} ({batch_rows - batch_missing} of {batch_rows} rows present) is below "
                f"the bound {bound:.4f} for the baseline's {base_completeness:.4f} ({base_present} of {base_rows})"
            )

        p = excess_p_value(batch_missing, batch_rows, base_missing, base_rows)
        tests.append(_Test(name, "completeness_check", p, observed, base_completeness, completeness))

    if current.kind == "string":
        tests += _categorical_tests(feature, constraint, current, base_present)
    else:
        tests += _numeric_tests(feature, constraint, current)
    return tests


def _categorical_tests(feature, constraint, current, base_present) -> list[_Test]:
    name = feature["name"]
    buckets = feature["string_statistics"].get("distribution", {}).get("categorical", {}).get("buckets", [])
    base_counts = {b["value"]: float(b["count"]) for b in buckets}
    domain = constraint.get("string_constraints", {}).get("domains")
    domain = set(base_counts if domain is None else domain)
    tests = []
    present = current.present
    if not present or not base_present:
        return tests
    unseen = {v: c for v, c in current.category_counts.items() if v not in domain}
    outside = sum(unseen.values())

    def categorical_values(level):
        bound = excess_bound(level, present, 0, base_present) / present
        shown = ", ".join(sorted(unseen, key=lambda v: (-unseen[v], v))[:5])
        return bound, (
            f"{outside / present:.2%} of values ({outside} of {present}) are outside the baseline's domain of "
            f"{len(domain)} value(s) (none outside in {base_present}); bound {bound:.2%}; unseen: {shown}"
        )

    p = excess_p_value(outside, present, 0, base_present)
    tests.append(_Test(name, "categorical_values_check", p, outside / present, 0.0, categorical_values))

    # Categories in the baseline's order of frequency: a fixed order, so the KS bound holds.
    order = sorted(base_counts, key=lambda v: (-base_counts[v], v))
    base = [base_counts[v] for v in order]
    cur = [float(current.category_counts.get(v, 0)) for v in order]
    in_domain, base_total = sum(cur), sum(base)
    if len(order) > 1 and in_domain and base_total:
        distance = cdf_distance(base, cur)
        tests.append(
            _Test(
                name,
                "baseline_drift_check",
                distance_p_value(distance, int(in_domain), int(base_total)),
                distance,
                0.0,
                _distance_description(distance, int(in_domain), int(base_total), "category frequencies"),
            )
        )
    return tests


def _numeric_tests(feature, constraint, current) -> list[_Test]:
    name = feature["name"]
    numbers = feature["numerical_statistics"]
    tests = []
    base_present = int(numbers["common"].get("num_present", 0))
    if constraint.get("num_constraints", {}).get("is_non_negative") and current.present and base_present:
        negatives, present = current.negatives, current.present

        def non_negative(level):
            bound = excess_bound(level, present, 0, base_present) / present
            return bound, (
                f"{negatives} negative value(s) of {present} ({negatives / present:.2%}); the baseline has none in "
                f"{base_present}; bound {bound:.2%}"
            )

        p = excess_p_value(negatives, present, 0, base_present)
        tests.append(_Test(name, "non_negative_check", p, negatives / present, 0.0, non_negative))
    buckets = numbers.get("distribution", {}).get("kll", {}).get("buckets")
    if current.histogram is not None and current.present and buckets:
        base = [b["count"] for b in buckets]
        base_total = round(sum(base))
        distance = cdf_distance(base, current.histogram)
        means = f"baseline mean {numbers['mean']:.4g}, batch mean {current.total / current.present:.4g}"
        tests.append(
            _Test(
                name,
                "baseline_drift_check",
                distance_p_value(distance, current.present, base_total),
                distance,
                0.0,
                _distance_description(distance, current.present, base_total, "distribution", means),
            )
        )
    return tests


def _distance_description(distance, batch_n, baseline_n, what, extra=""):
    def describe(level):
        bound = distance_bound(level, batch_n, baseline_n)
        return bound, (
            f"{what} distance {distance:.4f} from the baseline exceeds the bound {bound:.4f} for {batch_n} batch "
            f"and {baseline_n} baseline values{' (' + extra + ')' if extra else ''}"
        )

    return describe


def run(args) -> dict:
    """One instance (the whole batch), a shard (--shard-output: its partial only) or the merge of shards."""
    baseline = load_json(args.baseline_statistics, "statistics.json")
    if not isinstance(baseline.get("features"), list):
        raise DataError("baseline statistics have no 'features' list: not a Model Monitor statistics.json")
    missing_values = split_list(args.missing_values)
    digest = fingerprint(baseline, missing_values)
    # Read before the batch: a wrong path fails at once; a shard needs only the statistics' buckets.
    constraints = {} if args.shard_output else load_json(args.baseline_constraints, "constraints.json")
    host = resource_config(args.resource_config) if args.shard_output else None
    if args.merge_partials:
        objects = read_partials(args.merge_partials, PARTIAL, digest)
    else:
        found = input_objects(args.input, shard=bool(args.shard_output))
        objects = [object_partial(name, path, baseline, missing_values, args.chunk_rows) for name, path in found]
        if args.shard_output:
            written = write_partial(args.shard_output, host, PARTIAL, digest, objects)
            rows = sum(r.get("rows", 0) for r in objects)
            return {"partial": str(written), "objects": len(objects), "rows": rows}
    return decide(args, baseline, constraints, objects)


def decide(args, baseline: dict, constraints: dict, objects: list) -> dict:
    """The one place the verdict is made, from every object's statistics (one instance's or all shards'):
    writes constraint_violations.json, statistics.json and drift_check.json, and returns the summary."""
    stats, columns, rows = merge_statistics(objects, baseline)
    violations, report = violations_for(baseline, constraints, stats, columns, rows, args.significance)
    write_json(args.output, "constraint_violations.json", {"violations": violations})
    write_json(
        args.output,
        "statistics.json",
        {"version": 0.0, "dataset": {"item_count": rows}, "features": [s.to_json() for s in stats.values()]},
    )
    return write_summary(args, violations, report, rows)


def write_summary(args, violations: list, report: dict, rows: int) -> dict:
    features = sorted({v["feature_name"] for v in violations})
    if violations:
        detail = "; ".join(f"{v['feature_name']}: {v['constraint_check_type']}" for v in violations[:6])
        message = (
            f"{len(violations)} violation(s) in {len(features)} feature(s) against the baseline"
            f"{' of model version ' + args.model_version if args.model_version else ''}: {detail}"
            f"{'; ...' if len(violations) > 6 else ''}"
        )
    else:
        message = (
            f"no drift: {rows} rows pass {report['tests']} test(s) at a false-alarm rate of "
            f"{report['significance']:g} per batch"
        )
    summary = {
        "violation_count": len(violations),
        "drifted_features": features,
        "rows": rows,
        "significance": report["significance"],
        "tests": report["tests"],
        "level_per_test": report["level"],
        "distances": report["distances"],
        "bounds": report["bounds"],
        "model_version": args.model_version,
        "message": message,
        "checks": report["checks"],
    }
    write_json(args.output, SUMMARY, summary)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run_or_fail(run, args)
    if args.shard_output:
        print(json.dumps(summary))  # statistics only: the merge decides
        return 0
    metric_data.emit(args, args.output, metric_data.drift_data, summary)
    print(json.dumps({"violation_count": summary["violation_count"], "message": summary["message"]}))
    if summary["violation_count"] and args.fail_on_violations:
        print(f"DataDriftDetected: {summary['message']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
