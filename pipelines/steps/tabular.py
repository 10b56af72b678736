"""Shared by the step scripts: reading tabular CSV, the feature transform, and data-quality statistics
in the JSON schemas SageMaker Model Monitor uses (statistics.json, constraints.json,
constraint_violations.json).

This file ships next to the scripts (the processing code input and the training/inference source
directory), so it imports only what the SageMaker XGBoost container has: numpy, pandas, scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

HISTOGRAM_BUCKETS = 10
CHUNK_ROWS = 50_000
# What pandas.read_csv reads as missing by default (keep_default_na=True), for readers that are not pandas.
DEFAULT_MISSING_MARKERS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
# Model Monitor's suggested-constraints defaults. The drift check tests each constraint at a significance
# (a pipeline parameter) instead of the fixed thresholds, which ignore how many rows a batch has.
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Simple",
    },
}


class DataError(Exception):
    """Input data a step cannot use; `str()` is the one line shown as the step's failure reason."""


def run_or_fail(run, args):
    """`run(args)`; a DataError ends the script with its one-line reason (see fail)."""
    try:
        return run(args)
    except DataError as exc:
        fail(str(exc), args.failure_file)


def fail(message: str, failure_file: str | None) -> None:
    """Exit with a one-line reason on stderr and in SageMaker's failure-reason file when its directory exists."""
    print(f"error: {message}", file=sys.stderr)
    if failure_file and Path(failure_file).parent.is_dir():
        try:
            Path(failure_file).write_text(message)
        except OSError:
            pass
    sys.exit(1)


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def find_csv(path: str) -> Path:
    """A CSV file: `path` itself, or the single .csv (or only file) in a SageMaker channel directory."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise DataError(f"input {path} does not exist")
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    csvs = [f for f in files if f.suffix.lower() == ".csv"] or files
    if not csvs:
        raise DataError(f"input directory {path} holds no file")
    if len(csvs) > 1:
        raise DataError(
            f"input directory {path} holds {len(csvs)} files ({', '.join(f.name for f in csvs[:3])}"
            f"{', ...' if len(csvs) > 3 else ''}): expected one CSV"
        )
    return csvs[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_csv(path: Path, missing_values, **kwargs):
    """pandas.read_csv with the dataset's missing-value markers; an unparsable file is a DataError."""
    import pandas as pd

    if path.stat().st_size == 0:
        raise DataError(f"input file {path.name} is empty")
    try:
        return pd.read_csv(path, na_values=list(missing_values), keep_default_na=True, skipinitialspace=True, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"input file {path.name} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"input file {path.name} is not a readable CSV: {first}") from None


def numeric_column(series, name: str, header_lines: int = 1):
    """`series` as float64; a value that is present but not a number is a DataError naming it and its line."""
    import pandas as pd

    if series.dtype.kind in "biuf":
        return series.astype("float64")
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"column '{name}' is not numeric: value {str(series.iloc[position])!r} on line "
            f"{position + 1 + header_lines} (list it under training.categorical if it is a category)"
        )
    return values.astype("float64")


# ---- the feature transform: learnt on the training split, applied again at inference --------------


class FeatureTransform:
    """Median imputation for numeric columns, most-frequent imputation plus one-hot for categorical ones."""

    def __init__(self, numeric: list, categorical: list, medians: dict, categories: dict, modes: dict):
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.medians, self.categories, self.modes = dict(medians), dict(categories), dict(modes)

    @classmethod
    def fit(cls, frame, numeric, categorical) -> FeatureTransform:
        medians = {c: _finite(float(frame[c].median())) if frame[c].notna().any() else 0.0 for c in numeric}
        categories, modes = {}, {}
        for c in categorical:
            values = frame[c].dropna().astype(str)
            categories[c] = sorted(values.unique().tolist())
            modes[c] = values.mode().iloc[0] if len(values) else ""
        return cls(numeric, categorical, medians, categories, modes)

    @property
    def raw_columns(self) -> list:
        return self.numeric + self.categorical

    @property
    def encoded_columns(self) -> list:
        return self.numeric + [f"{c}={v}" for c in self.categorical for v in self.categories[c]]

    def matrix(self, frame) -> np.ndarray:
        """The model's input matrix (float32, encoded_columns order) for a frame with the raw columns."""
        n = len(frame)
        out = np.empty((n, len(self.encoded_columns)), dtype=np.float32)
        if self.numeric:
            if all(frame[c].dtype.kind in "biuf" for c in self.numeric):
                # Float columns already hold NaN for missing values; na_value= would cost a 5x slower copy.
                block = frame[self.numeric].to_numpy(dtype=np.float32)
                if not block.flags.writeable:
                    block = block.copy()
            else:
                block = np.column_stack([numeric_column(frame[c], c).to_numpy() for c in self.numeric])
            missing = np.isnan(block)
            if missing.any():
                medians = np.array([self.medians[c] for c in self.numeric], dtype=np.float32)
                block[missing] = medians[np.nonzero(missing)[1]]
            if not self.categorical:
                return np.ascontiguousarray(block)
            out[:, : len(self.numeric)] = block
        j = len(self.numeric)
        for c in self.categorical:
            values = frame[c].astype("string").fillna(self.modes[c]).to_numpy(dtype=object)
            for v in self.categories[c]:
                out[:, j] = values == v
                j += 1
        return out

    def to_json(self) -> dict:
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "medians": self.medians,
            "categories": self.categories,
            "modes": self.modes,
            "encoded_columns": self.encoded_columns,
        }

    @classmethod
    def from_json(cls, data: dict) -> FeatureTransform:
        return cls(data["numeric"], data["categorical"], data["medians"], data["categories"], data["modes"])


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


# ---- data-quality statistics (Model Monitor schema), accumulated chunk by chunk ------------------


class FeatureStatistics:
    """Running statistics of one column. Memory is fixed: counts, moments and a fixed-edge histogram."""

    def __init__(self, name: str, kind: str, edges=None):
        self.name, self.kind = name, kind  # kind: numeric | string
        self.present = self.missing = self.non_numeric = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.minimum, self.maximum = math.inf, -math.inf
        self.negatives = 0
        self.integral = True
        self.edges = None if edges is None else np.asarray(edges, dtype=np.float64)
        self.histogram = None if edges is None else np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.category_counts: dict = {}

    def add(self, column) -> None:
        import pandas as pd

        present = column.notna()
        n_present = int(present.sum())
        self.missing += int(len(column) - n_present)
        if self.kind == "string":
            self.present += n_present
            for value, count in column[present].astype(str).value_counts().items():
                self.category_counts[value] = self.category_counts.get(value, 0) + int(count)
            return
        values = column if column.dtype.kind in "biuf" else pd.to_numeric(column, errors="coerce")
        if values.dtype.kind in "biuf":
            # Float columns already hold NaN for missing values; na_value= would cost a 5x slower copy.
            numbers = values.to_numpy(dtype=np.float64)
        else:
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        numbers = numbers[~np.isnan(numbers)]
        self.non_numeric += n_present - len(numbers)
        self.present += len(numbers)
        if not len(numbers):
            return
        self.total += float(numbers.sum())
        # Not np.dot: BLAS threads cost more than the product itself on a busy machine.
        self.total_sq += float(np.einsum("i,i->", numbers, numbers))
        self.minimum = min(self.minimum, float(numbers.min()))
        self.maximum = max(self.maximum, float(numbers.max()))
        self.negatives += int((numbers < 0).sum())
        if self.integral and not np.all(np.mod(numbers, 1) == 0):
            self.integral = False
        if self.edges is not None:
            # Values outside the baseline's range land in the end buckets: a shift then shows as mass there.
            # Counted as values below each inner edge: one comparison pass per edge, several times faster
            # than searchsorted + bincount for ten buckets, and the same counts.
            below = [np.count_nonzero(numbers < edge) for edge in self.edges[1:-1]]
            self.histogram += np.diff(np.array([0, *below, len(numbers)], dtype=np.int64))

    def to_partial(self) -> dict:
        """Everything `merge` needs, exactly: integer counts, the float sums as they are, min and max."""
        partial = {
            "present": self.present,
            "missing": self.missing,
            "non_numeric": self.non_numeric,
            "negatives": self.negatives,
            "integral": self.integral,
            "total": self.total,
            "total_sq": self.total_sq,
            "min": self.minimum if self.present and self.kind != "string" else None,
            "max": self.maximum if self.present and self.kind != "string" else None,
        }
        if self.histogram is not None:
            partial["histogram"] = [int(c) for c in self.histogram]
        if self.kind == "string":
            partial["categories"] = dict(sorted(self.category_counts.items()))
        return partial

    def merge(self, partial: dict) -> None:
        """Add another part's `to_partial()` (same column, same baseline buckets). Counts add exactly; the
        float sums add in the order parts are merged, so merging in a fixed order gives fixed figures."""
        self.present += int(partial["present"])
        self.missing += int(partial["missing"])
        self.non_numeric += int(partial["non_numeric"])
        self.negatives += int(partial["negatives"])
        self.integral = self.integral and bool(partial["integral"])
        self.total += float(partial["total"])
        self.total_sq += float(partial["total_sq"])
        if partial["min"] is not None:
            self.minimum = min(self.minimum, float(partial["min"]))
            self.maximum = max(self.maximum, float(partial["max"]))
        if self.histogram is not None:
            counts = partial.get("histogram")
            if counts is None or len(counts) != len(self.histogram):
                raise DataError(f"column '{self.name}': a part was counted on other buckets than the baseline's")
            self.histogram += np.asarray(counts, dtype=np.int64)
        for value, count in partial.get("categories", {}).items():
            self.category_counts[value] = self.category_counts.get(value, 0) + int(count)

    @property
    def count(self) -> int:
        return self.present + self.missing + self.non_numeric

    @property
    def completeness(self) -> float:
        return (self.present + self.non_numeric) / self.count if self.count else 0.0

    @property
    def inferred_type(self) -> str:
        if self.kind == "string":
            return "String"
        if self.present == 0:
            return "Unknown"
        return "Integral" if self.integral else "Fractional"

    def to_json(self) -> dict:
        common = {
            "num_present": self.present + (self.non_numeric if self.kind == "string" else 0),
            "num_missing": self.missing,
        }
        if self.kind == "string":
            buckets = [{"value": v, "count": c} for v, c in sorted(self.category_counts.items())]
            return {
                "name": self.name,
                "inferred_type": "String",
                "string_statistics": {
                    "common": common,
                    "distinct_count": float(len(buckets)),
                    "distribution": {"categorical": {"buckets": buckets}},
                },
            }
        mean = self.total / self.present if self.present else 0.0
        variance = max(self.total_sq / self.present - mean * mean, 0.0) if self.present else 0.0
        stats = {
            "common": common,
            "mean": mean,
            "sum": self.total,
            "std_dev": math.sqrt(variance),
            "min": self.minimum if self.present else 0.0,
            "max": self.maximum if self.present else 0.0,
        }
        if self.histogram is not None:
            stats["distribution"] = {
                "kll": {
                    "buckets": [
                        {"lower_bound": float(lo), "upper_bound": float(hi), "count": float(c)}
                        for lo, hi, c in zip(self.edges[:-1], self.edges[1:], self.histogram)
                    ]
                }
            }
        return {"name": self.name, "inferred_type": self.inferred_type, "numerical_statistics": stats}


def histogram_edges(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """Equal-mass bucket edges (quantiles) of the baseline; one bucket when the column is constant."""
    values = values[~np.isnan(values)]
    if not len(values):
        return np.array([0.0, 1.0])
    edges = np.unique(np.quantile(values, np.linspace(0, 1, buckets + 1)))
    return edges if len(edges) > 1 else np.array([edges[0], edges[0] + 1.0])


def baseline_statistics(frame, numeric: list, categorical: list) -> tuple[dict, dict]:
    """statistics.json and constraints.json (Model Monitor schema) for the raw feature columns of `frame`."""
    accumulated = []
    for name in numeric + categorical:
        if name in numeric:
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            stats = FeatureStatistics(name, "numeric", histogram_edges(values))
        else:
            stats = FeatureStatistics(name, "string")
        stats.add(frame[name])
        accumulated.append(stats)
    return baseline_documents(accumulated, len(frame))


def baseline_documents(accumulated: list, item_count: int) -> tuple[dict, dict]:
    """statistics.json and constraints.json from the running statistics of each feature (in order)."""
    features, constraints = [], []
    for stats in accumulated:
        features.append(stats.to_json())
        constraint = {"name": stats.name, "inferred_type": stats.inferred_type, "completeness": stats.completeness}
        if stats.kind == "numeric":
            constraint["num_constraints"] = {"is_non_negative": stats.present > 0 and stats.negatives == 0}
        else:
            constraint["string_constraints"] = {"domains": sorted(stats.category_counts)}
        constraints.append(constraint)
    statistics = {"version": 0.0, "dataset": {"item_count": item_count}, "features": features}
    return statistics, {"version": 0.0, "features": constraints, "monitoring_config": MONITORING_CONFIG}


def load_json(path: str, default_name: str) -> dict:
    """A JSON document: `path` itself or `<path>/<default_name>` (or the only .json) when it is a directory."""
    p = Path(path)
    if p.is_dir():
        candidate = p / default_name
        if not candidate.exists():
            found = sorted(p.glob("*.json"))
            if len(found) != 1:
                raise DataError(f"no {default_name} in {path}")
            candidate = found[0]
        p = candidate
    if not p.exists():
        raise DataError(f"{path} does not exist")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{p.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


def write_json(directory: str, name: str, data) -> Path:
    os.makedirs(directory, exist_ok=True)
    path = Path(directory) / name
    path.write_text(json.dumps(data, indent=2, sort_keys=False))
    return path
