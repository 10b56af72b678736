"""Data-validation step: check a batch of inference input against the data contract before the drift check,
and write validation.json (count + one-line message) for the pipeline's condition and
contract_violations.json (Model Monitor's violations schema). Bad types, values outside the contract's
range or allowed values, missing values where not nullable and missing columns are validation failures
(DataValidationFailed: notified, never retrained), not drift. Without a contract file, the contract is the
one the model's baseline implies: its columns are required, its numeric columns hold numbers.
Reads the batch in chunks, so memory stays flat however many rows arrive.

With --records-dir it also writes what the batch transform scores: the checked rows, no header, the record
id first, then the model's columns in training order (the baseline's), one file per input object named
after it. The record id is the --id-column's value, or the row number in the object (1, 2, ... header
excluded): plain when one instance checks a batch of one object, `<object>:<row>` when the batch is several
objects or the instance one of several. Scoring this copy, not the input object, means the rows scored are
exactly the rows checked. It is removed again when the batch fails validation (on one of several
instances: when that instance's objects do; the merged verdict stops the transform either way).

The batch is one CSV object or several. On several Processing instances (input sharded by S3 key) each
instance runs with --shard-output and writes the check of its objects, and one merge run
(--merge-partials) decides on all of them: the same counts, examples, record-id check, verdict and files as
one instance checking the whole batch, which goes through the same per-object check and merge (shards.py).

    python pipelines/steps/validate.py --input batch.csv --contract contract.json --output out/validation
    python pipelines/steps/validate.py --input shard/ --contract ... --records-dir r/ --shard-output partials/
    python pipelines/steps/validate.py --merge-partials partials/ --contract ... --output out/validation
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import metric_data
import shards
from contract import ContractCheck, columns_to_check, implied_contract, read_dtypes
from shards import fingerprint, input_objects, read_partials, resource_config, write_partial
from tabular import CHUNK_ROWS, load_json, run_or_fail, split_list, write_json

SUMMARY = "validation.json"
PARTIAL = "validate"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--input",
        default="/opt/ml/processing/input/data",
        help="batch CSV (with header) or the directory of its objects",
    )
    shards.add_arguments(p, "this instance's check", "the checks (instead of --input)")
    p.add_argument("--contract", default="", help="the data contract (JSON file or its directory); none: implied")
    p.add_argument(
        "--baseline-statistics",
        default="/opt/ml/processing/baseline/statistics",
        help="the model's baseline statistics.json: the contract it implies when --contract names none",
    )
    p.add_argument("--output", default="/opt/ml/processing/output")
    p.add_argument("--records-dir", default="", help="where to write the checked rows with their record ids")
    p.add_argument(
        "--id-column",
        default="",
        help="the batch's record id column: required, filled, unique (default: number the rows)",
    )
    p.add_argument("--missing-values", default="?")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    metric_data.add_arguments(p)
    args = p.parse_args(argv)
    shards.check_arguments(p, args)
    return args


def load_rules(args) -> tuple[dict, str]:
    if args.contract:
        return columns_to_check(load_json(args.contract, "contract.json"), with_target=False), "the data contract"
    statistics = load_json(args.baseline_statistics, "statistics.json")
    return columns_to_check(implied_contract(statistics), with_target=False), "the contract the baseline implies"


def records_name(name: str) -> str:
    """The records file of input object `name` (its path under the input, .gz dropped: written plain)."""
    return name[: -len(".gz")] if name.lower().endswith(".gz") else name


class RecordWriter:
    """Writes one object's checked chunks as `record_id,<model columns>` lines, and keeps the ids the
    batch's record-id check needs (see record_id_violations)."""

    def __init__(self, path: Path | None, columns: list, id_column: str, prefix: str = ""):
        """Without a path (no --records-dir) it only keeps the ids."""
        self.path, self.columns, self.id_column, self.prefix = path, columns, id_column, prefix
        self.handle = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(path, "w")  # noqa: SIM115 (closed by close(), chunks arrive one at a time)
        self.ids: list = []  # the id column's values (None where missing), to check them across the batch
        self.rows = 0

    def add(self, chunk) -> None:
        first = self.rows + 1
        self.rows += len(chunk)
        if not self.id_column:
            ids = [f"{self.prefix}{r}" for r in range(first, first + len(chunk))]
        elif self.id_column not in chunk.columns:
            return  # a missing id column is the contract's to report (it is required)
        else:
            column = chunk[self.id_column]
            ids = column.astype(str).str.strip().tolist()
            # A missing id is the contract's to report (the id column is required and not nullable).
            self.ids += [None if missing else value for value, missing in zip(ids, column.isna().tolist())]
        present = [c for c in self.columns if c in chunk.columns]
        if self.handle is None or len(present) < len(self.columns):
            return  # a missing model column is a contract violation; nothing is scored
        block = chunk[self.columns].copy()
        block.insert(0, "__record_id__", ids)
        block.to_csv(self.handle, header=False, index=False, na_rep="")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def record_id_violations(id_column: str, objects: list) -> list:
    """The batch's repeated record ids (the first three, in object and row order) as one violation."""
    if not id_column:
        return []
    seen: set = set()
    problems: list = []
    several = len(objects) > 1
    for record in objects:
        for row, value in enumerate(record.get("ids") or [], start=1):
            if value is None:
                continue
            if value in seen:
                where = f"{row} of {record['name']}" if several else row
                if len(problems) < 3:
                    problems.append(f"record id {value!r} in column '{id_column}' repeats in row {where}")
                elif len(problems) == 3:
                    problems.append("...")
            seen.add(value)
    if not problems:
        return []
    return [{"feature_name": id_column, "constraint_check_type": "record_id_check", "description": "; ".join(problems)}]


def check_batch(
    path: Path, rules: dict, missing_values, chunk_rows: int, records=None, name: str = ""
) -> ContractCheck:
    """The contract check of a CSV batch, read in chunks; an unreadable file is one violation, not an error."""
    import pandas as pd

    name = name or path.name
    check = ContractCheck(rules)
    if path.stat().st_size == 0:
        check.unreadable = f"{name} is empty"
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
        check.unreadable = f"{name} is empty"
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        check.unreadable = f"{name} is not a readable CSV: {first}"
    return check


def check_object(args, name: str, path: Path, rules: dict, features, qualified: bool) -> tuple[dict, Path | None]:
    """One object's check as a partial record, and the records file written for it (if any)."""
    records = None
    if features is not None or args.id_column:
        prefix = f"{name}:" if qualified else ""
        target = Path(args.records_dir) / records_name(name) if features is not None else None
        records = RecordWriter(target, features or [], args.id_column, prefix)
    try:
        check = check_batch(path, rules, split_list(args.missing_values), args.chunk_rows, records, name)
    finally:
        if records is not None:
            records.close()
    record = {"name": name, **check.to_partial()}
    if records is not None and args.id_column:
        record["ids"] = records.ids
    return record, (records.path if records is not None else None)


def run(args) -> dict:
    """One instance (the whole batch), a shard (--shard-output: its partial and records) or the merge."""
    rules, which = load_rules(args)
    if args.id_column:
        rules = {**rules, args.id_column: {"type": "category", "required": True, "nullable": False}}
    features = None
    if args.records_dir and not args.merge_partials:
        features = [f["name"] for f in load_json(args.baseline_statistics, "statistics.json")["features"]]
    digest = fingerprint(rules, which, split_list(args.missing_values), args.id_column)
    host = resource_config(args.resource_config) if args.shard_output else None
    written: list = []
    if args.merge_partials:
        objects = read_partials(args.merge_partials, PARTIAL, digest)
    else:
        found = input_objects(args.input, shard=bool(args.shard_output))
        qualified = len(found) > 1 or (host is not None and len(host[1]) > 1)
        objects = []
        for name, path in found:
            record, records_file = check_object(args, name, path, rules, features, qualified)
            objects.append(record)
            written += [records_file] if records_file is not None else []
        if args.shard_output:
            if objects and verdict(rules, which, objects, args.id_column)["violations"]:
                remove(written)  # this instance's objects already fail: none of the batch is scored
            partial = write_partial(args.shard_output, host, PARTIAL, digest, objects)
            return {"partial": str(partial), "objects": len(objects), "rows": sum(r["rows"] for r in objects)}
    return decide(args, rules, which, objects, written)


def remove(files: list) -> None:
    for path in files:
        path.unlink(missing_ok=True)


def verdict(rules: dict, which: str, objects: list, id_column: str) -> dict:
    """The violations and the one-line message for a batch of these objects' checks (in name order)."""
    check = ContractCheck.merge(rules, [(r["name"], r) for r in objects])
    source = objects[0]["name"] if len(objects) == 1 else f"the batch ({len(objects)} objects)"
    violations = check.violations() + record_id_violations(id_column, objects)
    unreadable = [
        {"feature_name": "*", "constraint_check_type": "data_type_check", "description": r["unreadable"]}
        for r in objects
        if r["unreadable"]
    ]
    if unreadable:
        message = unreadable[0]["description"]
        if len(unreadable) > 1:
            message += f" (and {len(unreadable) - 1} more unreadable object(s))"
    elif violations and not check.violations():
        message = f"{source}: {violations[0]['description']}"
    elif violations:
        message = check.message(source)
    elif not objects:
        message = "the batch holds no object: every instance's input was empty"
        violations = [{"feature_name": "*", "constraint_check_type": "completeness_check", "description": message}]
    else:
        message = f"{source}: {check.rows} row(s) meet {which}"
    return {"violations": unreadable + violations, "message": message, "rows": check.rows}


def decide(args, rules: dict, which: str, objects: list, written: list) -> dict:
    """The one place the verdict is made, from every object's check (one instance's or all shards'): writes
    contract_violations.json and validation.json, removes the records of a failed batch, returns the summary."""
    result = verdict(rules, which, objects, args.id_column)
    violations = result["violations"]
    if violations:
        remove(written)
    write_json(args.output, "contract_violations.json", {"violations": violations})
    summary = {
        "violation_count": len(violations),
        "rows": result["rows"],
        "contract": which,
        "columns_checked": len(rules),
        "message": result["message"],
    }
    write_json(args.output, SUMMARY, summary)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run_or_fail(run, args)
    if args.shard_output:
        print(json.dumps(summary))  # the check of this instance's objects only: the merge decides
        return 0
    metric_data.emit(args, args.output, metric_data.validation_data, summary)
    print(json.dumps({"violation_count": summary["violation_count"], "message": summary["message"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
