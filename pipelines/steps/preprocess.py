"""Preprocess step: validate a tabular CSV, split it into train/validation/test, impute and encode, and
write the data-quality baseline (Model Monitor statistics.json / constraints.json) of the raw features.

Runs the same in a SageMaker processing container (the defaults are its paths) and locally:
    python pipelines/steps/preprocess.py --input data.csv --target diagnosis --train-dir out/train ...
Malformed data fails with one line naming the column, value or line; nothing downstream runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from contract import FAILURE, ContractCheck, columns_to_check
from snapshot import SnapshotError, open_dataset
from tabular import (
    DataError,
    FeatureTransform,
    baseline_statistics,
    load_json,
    numeric_column,
    run_or_fail,
    split_list,
    write_json,
)

MIN_ROWS_PER_CLASS = 5


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--input",
        default="/opt/ml/processing/input/data",
        help="the dataset: an S3 prefix or object, a folder, a CSV file or a glob; every CSV part under it, "
        "resolved now and read as one table",
    )
    p.add_argument("--dataset-uri", default="", help="where the input came from (recorded in the report)")
    p.add_argument("--target", default="diagnosis", help="binary target column")
    p.add_argument("--features", default="all", help="comma-separated feature columns, or 'all' (every other one)")
    p.add_argument("--categorical", default="", help="comma-separated categorical feature columns")
    p.add_argument("--missing-values", default="?", help="comma-separated extra missing-value markers")
    p.add_argument(
        "--positive-class",
        default="",
        help="target value meaning 1 (default: 1 for 0/1 targets, else the larger value when sorted)",
    )
    p.add_argument("--validation-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--train-dir", default="/opt/ml/processing/train")
    p.add_argument("--validation-dir", default="/opt/ml/processing/validation")
    p.add_argument("--test-dir", default="/opt/ml/processing/test")
    p.add_argument("--baseline-dir", default="/opt/ml/processing/baseline")
    p.add_argument("--report-dir", default="/opt/ml/processing/report")
    p.add_argument("--snapshot-dir", default="", help="where to write snapshot.json (the parts read), if anywhere")
    p.add_argument(
        "--contract",
        default="",
        help="the data contract (JSON file or its directory): the data must meet it (DataValidationFailed)",
    )
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    return p.parse_args(argv)


def read_dataset(source: str, missing_values, **kwargs):
    """(snapshot, frame, name to show): every part of `source` read as one table, its exact snapshot recorded."""

    import pandas as pd

    try:
        snapshot, reader = open_dataset(source)
        shown = os.path.basename(snapshot.parts[0].name) if len(snapshot.parts) == 1 else source
        with io.BufferedReader(reader, 1 << 20) as stream:
            frame = pd.read_csv(
                stream, na_values=list(missing_values), keep_default_na=True, skipinitialspace=True, **kwargs
            )
    except SnapshotError as exc:
        raise DataError(str(exc)) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"input {shown} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"input {shown} is not a readable CSV: {first}") from None
    return snapshot, frame, shown, reader.columns


def load_and_validate(args):
    """The snapshot, validated frame, label vector, numeric and categorical feature lists and the positive class."""
    categorical = split_list(args.categorical)
    # Numbers parse natively (fast on millions of rows); the target and categories stay text.
    snapshot, frame, shown, header = read_dataset(
        args.input, split_list(args.missing_values), dtype={c: str for c in [args.target, *categorical]}
    )
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise DataError(f"duplicate column name '{duplicated[0]}' in {shown}")
    if args.contract:
        check = ContractCheck(columns_to_check(load_json(args.contract, "contract.json"), with_target=True))
        check.header(frame.columns)
        check.add(frame)
        if check.violations():
            raise DataError(f"{FAILURE}: {check.message(shown)}")
    columns = [str(c) for c in frame.columns]
    if not len(frame):
        raise DataError(f"input {shown} has a header but no data rows")
    if args.target not in frame.columns:
        listed = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise DataError(f"target column '{args.target}' not found in {shown} (columns: {listed})")

    if args.features == "all":
        features = [c for c in columns if c != args.target]
    else:
        features = split_list(args.features)
        for c in features:
            if c not in frame.columns:
                raise DataError(f"feature column '{c}' not found in {shown}")
    if args.target in features:
        raise DataError(f"target column '{args.target}' is also listed as a feature")
    for c in categorical:
        if c not in features:
            raise DataError(f"categorical column '{c}' is not one of the feature columns")
    if not features:
        raise DataError(f"{shown} has no feature column besides the target '{args.target}'")
    numeric = [c for c in features if c not in categorical]

    target = frame[args.target]
    missing = target.isna()
    if missing.any():
        lines = [str(i + 2) for i in missing.to_numpy().nonzero()[0][:3]]
        raise DataError(
            f"target column '{args.target}' has {int(missing.sum())} missing value(s) "
            f"(line {', '.join(lines)}{', ...' if missing.sum() > 3 else ''})"
        )
    classes = sorted(target.str.strip().unique().tolist(), key=_class_order)
    if len(classes) == 1:
        raise DataError(
            f"target column '{args.target}' has a single class ({classes[0]}): binary classification needs two"
        )
    if len(classes) > 2:
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise DataError(
            f"target column '{args.target}' has {len(classes)} classes ({shown}): "
            "binary classification needs exactly two"
        )
    positive = args.positive_class or classes[1]
    if positive not in classes:
        raise DataError(
            f"positive class '{positive}' is not a value of target column '{args.target}' ({', '.join(classes)})"
        )
    labels = (target.str.strip() == positive).astype("int64")
    smallest = int(min(labels.sum(), len(labels) - labels.sum()))
    if smallest < MIN_ROWS_PER_CLASS:
        raise DataError(
            f"target column '{args.target}' has only {smallest} row(s) of one class: need at least "
            f"{MIN_ROWS_PER_CLASS} per class to split train/validation/test"
        )

    for c in numeric:
        frame[c] = numeric_column(frame[c], c)
        if frame[c].isna().all():
            raise DataError(f"column '{c}' has no values (every row is missing)")
    for c in categorical:
        frame[c] = frame[c].str.strip()
    return snapshot, frame, labels, numeric, categorical, positive


def _class_order(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def split(frame, labels, args):
    from sklearn.model_selection import train_test_split

    holdout = args.validation_fraction + args.test_fraction
    train_idx, rest_idx = train_test_split(frame.index, test_size=holdout, stratify=labels, random_state=args.seed)
    rest_labels = labels.loc[rest_idx]
    validation_idx, test_idx = train_test_split(
        rest_idx, test_size=args.test_fraction / holdout, stratify=rest_labels, random_state=args.seed
    )
    return {"train": train_idx, "validation": validation_idx, "test": test_idx}


def write_split(directory: str, name: str, labels, matrix, columns) -> None:
    """label first, then the encoded features, with a header: what train.py and evaluate.py read."""
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{name}.csv"), "w") as handle:
        handle.write(",".join(["label", *columns]) + "\n")
        np.savetxt(handle, np.column_stack([labels, matrix]), delimiter=",", fmt="%.8g")


def run(args) -> dict:
    snapshot, frame, labels, numeric, categorical, positive = load_and_validate(args)
    parts = split(frame, labels, args)
    train = frame.loc[parts["train"]]
    transform = FeatureTransform.fit(train, numeric, categorical)
    for name, index in parts.items():
        write_split(
            getattr(args, f"{name}_dir"),
            name,
            labels.loc[index].to_numpy(),
            transform.matrix(frame.loc[index]),
            transform.encoded_columns,
        )
    # The model directory carries the transform so inference encodes raw rows exactly as training did.
    write_json(args.train_dir, "preprocessing.json", transform.to_json())

    statistics, constraints = baseline_statistics(train, numeric, categorical)
    write_json(args.baseline_dir, "statistics.json", statistics)
    write_json(args.baseline_dir, "constraints.json", constraints)

    recorded = snapshot.record()
    report = {
        "dataset": {
            "uri": args.dataset_uri or args.input,
            # one part: its file's sha256; several: a digest of every part's name and sha256
            "sha256": snapshot.parts[0].sha256 if len(snapshot.parts) == 1 else recorded["sha256"],
            "rows": len(frame),
            "part_count": len(recorded["parts"]),
            "parts": recorded["parts"],
            "skipped": recorded["skipped"],
            "target": args.target,
            "positive_class": positive,
            "positive_rows": int(labels.sum()),
        },
        "features": {"numeric": numeric, "categorical": categorical, "encoded": transform.encoded_columns},
        "splits": {name: len(index) for name, index in parts.items()},
    }
    write_json(args.report_dir, "preprocess.json", report)
    if args.snapshot_dir:
        write_json(args.snapshot_dir, "snapshot.json", dict(recorded, sha256=report["dataset"]["sha256"]))
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    report = run_or_fail(run, args)
    print(
        json.dumps(
            {"rows": report["dataset"]["rows"], "splits": report["splits"], "sha256": report["dataset"]["sha256"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
