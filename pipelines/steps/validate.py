"""Data-validation step: check a batch of inference input against the data contract before the drift check,
and write validation.json (count + one-line message) for the pipeline's condition and
contract_violations.json (Model Monitor's violations schema). Bad types, values outside the contract's
range or allowed values, missing values where not nullable and missing columns are validation failures
(DataValidationFailed: notified, never retrained), not drift. Without a contract file, the contract is the
one the model's baseline implies: its columns are required, its numeric columns hold numbers.
Reads the batch in chunks, so memory stays flat however many rows arrive.

    python pipelines/steps/validate.py --input batch.csv --contract contract.json --output out/validation
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from contract import ContractCheck, columns_to_check, implied_contract, read_dtypes
from tabular import CHUNK_ROWS, find_csv, load_json, run_or_fail, split_list, write_json

SUMMARY = "validation.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--input", default="/opt/ml/processing/input/data", help="batch CSV (with header) or its directory")
    p.add_argument("--contract", default="", help="the data contract (JSON file or its directory); none: implied")
    p.add_argument(
        "--baseline-statistics",
        default="/opt/ml/processing/baseline/statistics",
        help="the model's baseline statistics.json: the contract it implies when --contract names none",
    )
    p.add_argument("--output", default="/opt/ml/processing/output")
    p.add_argument("--missing-values", default="?")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    return p.parse_args(argv)


def load_rules(args) -> tuple[dict, str]:
    if args.contract:
        return columns_to_check(load_json(args.contract, "contract.json"), with_target=False), "the data contract"
    statistics = load_json(args.baseline_statistics, "statistics.json")
    return columns_to_check(implied_contract(statistics), with_target=False), "the contract the baseline implies"


def check_batch(path: Path, rules: dict, missing_values, chunk_rows: int) -> ContractCheck:
    """The contract check of a CSV batch, read in chunks; an unreadable file is one violation, not an error."""
    import pandas as pd

    check = ContractCheck(rules)
    if path.stat().st_size == 0:
        check.unreadable = f"{path.name} is empty"
        return check
    try:
        reader = pd.read_csv(
            path,
            na_values=list(missing_values),
            keep_default_na=True,
            skipinitialspace=True,
            chunksize=chunk_rows,
            dtype=read_dtypes(rules),
        )
        for i, chunk in enumerate(reader):
            if i == 0:
                check.header(chunk.columns)
            check.add(chunk)
    except pd.errors.EmptyDataError:
        check.unreadable = f"{path.name} is empty"
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        check.unreadable = f"{path.name} is not a readable CSV: {first}"
    return check


def run(args) -> dict:
    path = find_csv(args.input)
    rules, which = load_rules(args)
    check = check_batch(path, rules, split_list(args.missing_values), args.chunk_rows)
    violations = check.violations()
    if check.unreadable:
        unreadable = {"feature_name": "*", "constraint_check_type": "data_type_check", "description": check.unreadable}
        violations.insert(0, unreadable)
        message = check.unreadable
    elif violations:
        message = check.message(path.name)
    else:
        message = f"{path.name}: {check.rows} row(s) meet {which}"
    write_json(args.output, "contract_violations.json", {"violations": violations})
    summary = {
        "violation_count": len(violations),
        "rows": check.rows,
        "contract": which,
        "columns_checked": len(rules),
        "message": message,
    }
    write_json(args.output, SUMMARY, summary)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run_or_fail(run, args)
    print(json.dumps({"violation_count": summary["violation_count"], "message": summary["message"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
