"""Data-validation step: check a batch of inference input against the data contract before the drift check,
and write validation.json (count + one-line message) for the pipeline's condition and
contract_violations.json (Model Monitor's violations schema). Bad types, values outside the contract's
range or allowed values, missing values where not nullable and missing columns are validation failures
(DataValidationFailed: notified, never retrained), not drift. Without a contract file, the contract is the
one the model's baseline implies: its columns are required, its numeric columns hold numbers.
Reads the batch in chunks, so memory stays flat however many rows arrive.

With --records-dir it also writes what the batch transform scores: the checked rows, no header, the record
id first (the --id-column's value, or the row number in the batch: 1, 2, ... header excluded), then the
model's columns in training order (the baseline's). Scoring this copy, not the input object, means the rows
scored are exactly the rows checked. It is removed again when the batch fails validation.

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
    p.add_argument("--records-dir", default="", help="where to write the checked rows with their record ids")
    p.add_argument("--id-column", default="", help="the batch's record id column (default: number the rows)")
    p.add_argument("--missing-values", default="?")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    return p.parse_args(argv)


def load_rules(args) -> tuple[dict, str]:
    if args.contract:
        return columns_to_check(load_json(args.contract, "contract.json"), with_target=False), "the data contract"
    statistics = load_json(args.baseline_statistics, "statistics.json")
    return columns_to_check(implied_contract(statistics), with_target=False), "the contract the baseline implies"


class RecordWriter:
    """Writes each checked chunk as `record_id,<model columns>` lines and checks the record ids are usable."""

    def __init__(self, path: Path, columns: list, id_column: str):
        self.path, self.columns, self.id_column = path, columns, id_column
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "w")  # noqa: SIM115 (closed by close(), chunks arrive one at a time)
        self.seen: set = set()
        self.problems: list = []
        self.rows = 0

    def add(self, chunk) -> None:
        first = self.rows + 1
        self.rows += len(chunk)
        if not self.id_column:
            ids = [str(r) for r in range(first, first + len(chunk))]
        elif self.id_column not in chunk.columns:
            return  # reported once by problems()
        else:
            column = chunk[self.id_column]
            ids = column.astype(str).str.strip().tolist()
            # A missing id is the contract's to report (the id column is required and not nullable).
            for offset, (value, missing) in enumerate(zip(ids, column.isna().tolist())):
                if not missing and value in self.seen:
                    self._problem(f"record id {value!r} in column '{self.id_column}' repeats in row {first + offset}")
                self.seen.add(value)
        present = [c for c in self.columns if c in chunk.columns]
        if len(present) < len(self.columns):
            return  # a missing model column is a contract violation; nothing is scored
        block = chunk[self.columns].copy()
        block.insert(0, "__record_id__", ids)
        block.to_csv(self.handle, header=False, index=False, na_rep="")

    def _problem(self, text: str) -> None:
        if len(self.problems) < 3:
            self.problems.append(text)
        elif len(self.problems) == 3:
            self.problems.append("...")

    def violations(self) -> list:
        found = self.problems
        return (
            [
                {
                    "feature_name": self.id_column or "*",
                    "constraint_check_type": "record_id_check",
                    "description": "; ".join(found),
                }
            ]
            if found
            else []
        )

    def close(self, keep: bool) -> None:
        self.handle.close()
        if not keep:
            self.path.unlink()


def check_batch(path: Path, rules: dict, missing_values, chunk_rows: int, records=None) -> ContractCheck:
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
            if records is not None:
                records.add(chunk)
    except pd.errors.EmptyDataError:
        check.unreadable = f"{path.name} is empty"
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        check.unreadable = f"{path.name} is not a readable CSV: {first}"
    return check


def run(args) -> dict:
    path = find_csv(args.input)
    rules, which = load_rules(args)
    records = None
    if args.records_dir:
        features = [f["name"] for f in load_json(args.baseline_statistics, "statistics.json")["features"]]
        if args.id_column:
            rules = {**rules, args.id_column: {"type": "category", "required": True, "nullable": False}}
        records = RecordWriter(Path(args.records_dir) / "records.csv", features, args.id_column)
    check = check_batch(path, rules, split_list(args.missing_values), args.chunk_rows, records)
    violations = check.violations()
    if records is not None:
        violations += records.violations()
        records.close(keep=not violations and not check.unreadable)
    if check.unreadable:
        unreadable = {"feature_name": "*", "constraint_check_type": "data_type_check", "description": check.unreadable}
        violations.insert(0, unreadable)
        message = check.unreadable
    elif violations and not check.violations():
        message = f"{path.name}: {violations[0]['description']}"
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
