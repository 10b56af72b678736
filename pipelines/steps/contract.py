"""The data contract: what a valid table is, column by column (type, range or allowed values, required,
nullable), separate from drift. Preprocess checks the training data against it and inference checks each
batch before the drift check; a violation names the column, the values and their rows (the first few
and a count) in one line, and is a `DataValidationFailed`, never drift.

Contract JSON (the environment's YAML contract, as the pipelines upload it):
    {"target": "diagnosis", "columns": {"grade": {"type": "integer", "required": true, "nullable": false,
     "allowed": [1, 2, 3, 4, 5]}, "mean_radius": {"type": "number", "min": 0}, ...}}
Types: number, integer, category. Rows are counted from 1, the header not included.

Imports only numpy and pandas (present in the SageMaker containers), late: the toolkit imports this
module too, and its commands start without them.
"""

from __future__ import annotations

import math

TYPES = ("number", "integer", "category")
RULE_KEYS = {"type", "required", "nullable", "min", "max", "allowed"}
EXAMPLES = 3
FAILURE = "DataValidationFailed"


def columns_to_check(contract: dict, with_target: bool) -> dict:
    """The contract's column rules, without the target's when the data is a batch to score."""
    target = contract.get("target")
    return {name: rule for name, rule in contract["columns"].items() if with_target or name != target}


def implied_contract(statistics: dict) -> dict:
    """The contract a baseline implies when the environment names none: its columns, required, typed."""
    columns = {}
    for feature in statistics.get("features", []):
        kind = "category" if feature.get("inferred_type") == "String" else "number"
        columns[feature["name"]] = {"type": kind, "required": True, "nullable": True}
    return {"columns": columns}


def read_dtypes(rules: dict) -> dict:
    """pandas dtypes that keep what the contract must see: categories and declared-integer codes as text
    would lose nothing, but numbers parse natively (fast) and text in them stays visible as objects."""
    return {name: str for name, rule in rules.items() if rule.get("type") == "category"}


class _Finding:
    def __init__(self, column: str, check: str, what: str):
        self.column, self.check, self.what = column, check, what
        self.count = 0
        self.examples: list = []

    def add(self, rows, values=None) -> None:
        self.count += len(rows)
        room = EXAMPLES - len(self.examples)
        if room > 0:
            shown = [None] * min(room, len(rows)) if values is None else [_shown(v) for v in values[:room]]
            self.examples += list(zip([int(r) for r in rows[:room]], shown))

    def text(self) -> str:
        # A row is its number, or "N of <object>" when the batch is several objects.
        shown = ", ".join(f"row {row}" if value is None else f"{value} (row {row})" for row, value in self.examples)
        more = f", ... ({self.count} in all)" if self.count > len(self.examples) else ""
        return f"column '{self.column}': {self.count} value(s) {self.what}: {shown}{more}"

    def violation(self) -> dict:
        return {"feature_name": self.column, "constraint_check_type": self.check, "description": self.text()}


def _shown(value) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return repr(str(value))
    return repr(int(number)) if number.is_integer() else repr(number)


class ContractCheck:
    """Checks a table chunk by chunk against a contract; memory is fixed (counts and a few examples)."""

    def __init__(self, rules: dict):
        self.rules = rules
        self.missing_columns: list = []
        self.findings: dict = {}
        self.rows = 0
        self.unreadable: str | None = None  # why the table could not be read at all, if it could not
        self.missing_from: dict = {}  # column -> the objects of a batch of several that lack it

    def header(self, columns) -> None:
        present = {str(c) for c in columns}
        self.missing_columns = [n for n, r in self.rules.items() if r.get("required", True) and n not in present]

    def _finding(self, column, check, what) -> _Finding:
        key = (column, check, what)
        if key not in self.findings:
            self.findings[key] = _Finding(column, check, what)
        return self.findings[key]

    def add(self, chunk) -> None:
        """Check one chunk of rows (a DataFrame read with the dataset's missing-value markers as NaN)."""
        import numpy as np
        import pandas as pd

        first_row = self.rows + 1
        self.rows += len(chunk)
        for name, rule in self.rules.items():
            if name not in chunk.columns:
                continue
            column = chunk[name]
            rows = np.arange(first_row, first_row + len(column))
            missing = column.isna().to_numpy()
            if not rule.get("nullable", True) and missing.any():
                self._finding(name, "completeness_check", "missing where the contract says not nullable").add(
                    rows[missing]
                )
            kind = rule.get("type", "number")
            if kind == "category":
                self._allowed(name, rule, rows[~missing], column[~missing].astype(str).str.strip().to_numpy())
                continue
            if column.dtype.kind in "biuf":
                numbers = column.to_numpy(dtype=np.float64)
            else:
                numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                bad = np.isnan(numbers) & ~missing
                if bad.any():
                    what = "not a number" if kind == "number" else "not a whole number"
                    self._finding(name, "data_type_check", what).add(rows[bad], column.to_numpy()[bad])
            present = ~np.isnan(numbers)
            values, at = numbers[present], rows[present]
            if kind == "integer":
                fractional = values != np.floor(values)
                if fractional.any():
                    self._finding(name, "data_type_check", "not a whole number").add(at[fractional], values[fractional])
                    values, at = values[~fractional], at[~fractional]
            low, high = rule.get("min"), rule.get("max")
            if low is not None and (values < low).any():
                below = values < low
                self._finding(name, "range_check", f"below the minimum {_number(low)}").add(at[below], values[below])
            if high is not None and (values > high).any():
                above = values > high
                self._finding(name, "range_check", f"above the maximum {_number(high)}").add(at[above], values[above])
            self._allowed(name, rule, at, values)

    def _allowed(self, name, rule, rows, values) -> None:
        import numpy as np

        allowed = rule.get("allowed")
        if allowed is None or not len(values):
            return
        if rule.get("type") == "category":
            outside = ~np.isin(values, np.asarray([str(a) for a in allowed], dtype=object))
        else:
            outside = ~np.isin(values, np.asarray(allowed, dtype=np.float64))
        if outside.any():
            listed = ", ".join(_number(a) if not isinstance(a, str) else a for a in allowed[:8])
            what = f"not among the allowed {listed}{', ...' if len(allowed) > 8 else ''}"
            self._finding(name, "allowed_values_check", what).add(rows[outside], values[outside])

    def violations(self) -> list:
        """Model Monitor's violations schema: missing columns first, then each column's findings."""
        found = [
            {
                "feature_name": name,
                "constraint_check_type": "missing_column_check",
                "description": f"column '{name}' is required by the contract but missing"
                + _objects(self.missing_from.get(name)),
            }
            for name in self.missing_columns
        ]
        return found + [f.violation() for f in self.findings.values()]

    def to_partial(self) -> dict:
        """This table's check as data a merge adds to others' (see merge): counts and first examples."""
        return {
            "rows": self.rows,
            "unreadable": self.unreadable,
            "missing_columns": self.missing_columns,
            "findings": [[f.column, f.check, f.what, f.count, f.examples] for f in self.findings.values()],
        }

    @classmethod
    def merge(cls, rules: dict, parts: list) -> ContractCheck:
        """The check of a batch of objects from their `(name, to_partial())`, in the order given: counts add,
        the first examples are the batch's first, and a row is shown as "N of <object>" when there are
        several objects. Unreadable objects are left to the caller."""
        merged = cls(rules)
        several = len(parts) > 1
        for name, part in parts:
            merged.rows += int(part["rows"])
            for column in part["missing_columns"]:
                merged.missing_from.setdefault(column, []).append(name)
            for column, check, what, count, examples in part["findings"]:
                finding = merged._finding(column, check, what)
                finding.count += int(count)
                room = EXAMPLES - len(finding.examples)
                finding.examples += [(f"{row} of {name}" if several else row, value) for row, value in examples[:room]]
        merged.missing_columns = [c for c in rules if c in merged.missing_from]
        if not several:
            merged.missing_from = {}
        return merged

    def message(self, source: str) -> str:
        """One line: what is wrong in `source`, column by column (the first few); without the failure's name."""
        violations = self.violations()
        if not violations:
            return f"{source}: {self.rows} row(s) meet the data contract"
        parts = [v["description"] for v in violations[:4]]
        more = f"; and {len(violations) - 4} more" if len(violations) > 4 else ""
        return f"{source} breaks the data contract: {'; '.join(parts)}{more}"


def _number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _objects(names) -> str:
    if not names:
        return ""
    return f" in {len(names)} object(s): {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"


def propose(frame, target: str | None, categorical, features=None, max_codes: int = 20) -> dict:
    """A contract proposed from (training) data, for a person to review and commit.

    Types as the data has them; nullable where the data has missing values; `min: 0` for numbers never
    negative; allowed values for integer columns with at most `max_codes` distinct values (codes and
    ordinal scales) and for the target. Category columns get no allowed list: a new category is drift,
    judged by the drift check against its rate, unless the team closes the list. Upper bounds are left
    for the team: the largest value seen is no limit of what is valid. Also returns, per column, the
    rare values a reviewer should look at (`review`).
    """
    import numpy as np
    import pandas as pd

    columns, review = {}, {}
    names = [c for c in frame.columns if features is None or c in features or c == target]
    for name in names:
        column = frame[name]
        rule: dict = {}
        present = column.dropna()
        if name in categorical or name == target or column.dtype.kind not in "biuf":
            numbers = pd.to_numeric(present, errors="coerce") if len(present) else present
            if name == target and len(present) and not numbers.isna().any() and (numbers % 1 == 0).all():
                rule["type"] = "integer"
                values = sorted({int(v) for v in numbers})
            else:
                rule["type"] = "category"
                values = sorted({str(v).strip() for v in present})
            if name == target:
                rule["allowed"] = values
        else:
            values = present.to_numpy(dtype=np.float64)
            integral = len(values) > 0 and bool(np.all(values == np.floor(values)))
            rule["type"] = "integer" if integral else "number"
            if len(values) and values.min() >= 0:
                rule["min"] = 0
            distinct = np.unique(values)
            if integral and 0 < len(distinct) <= max_codes:
                rule["allowed"] = [int(v) for v in distinct]
                counts = present.value_counts()
                rare = [int(v) for v, c in counts.items() if c <= max(1, math.floor(0.005 * len(present)))]
                if rare:
                    review[name] = sorted(rare)
        rule["required"] = True
        rule["nullable"] = bool(len(present) < len(column)) and name != target
        columns[str(name)] = rule
    contract = {"columns": columns}
    if target is not None:
        contract = {"target": target, **contract}
    return {"contract": contract, "review": review}
