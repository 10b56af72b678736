"""The environment's data contract (training.contract, a YAML file a team reviews and commits): loading and
validating it, the content-addressed upload the pipelines read, and proposing one from the training data
(`run-pipeline contract`). The checks themselves live with the step scripts (pipelines/steps/contract.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_core.config import Environment
from mlops_core.errors import ConfigError, ToolkitError
from pipelines.datasets import locate
from pipelines.specs import CodeUpload
from pipelines.steps.contract import RULE_KEYS, TYPES, propose
from pipelines.steps.snapshot import SnapshotError, read_rows

CONTRACT_FILE = "contract.json"
# Strings YAML reads back as the same string without quotes (not numbers, booleans or null).
_PLAIN = re.compile(r"^[A-Za-z_][\w.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def contract_path(env: Environment) -> Path | None:
    """The contract file the environment names, relative to the environment file; None when it names none."""
    return Path(env.training.contract) if env.training.contract else None


def load_contract(env: Environment) -> dict | None:
    """The environment's contract as the steps read it (JSON-ready), validated; None when it names none."""
    path = contract_path(env)
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the contract {path}: {exc.strerror}", source=_shown(env), field="training.contract"
        ) from None
    contract = parse_contract(text, str(path))
    if contract.get("target") not in (None, env.training.target):
        raise ConfigError(
            f"{contract['target']!r} is not the environment's training.target {env.training.target!r}",
            source=str(path),
            field="target",
        )
    return contract


def parse_contract(text: str, shown: str) -> dict:
    """Validate a contract document; a mistake is one ConfigError naming the file, the field and the value."""
    import yaml  # only commands that read a contract pay for it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "document"
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})", source=shown) from None

    def fail(field, message):
        raise ConfigError(message, source=shown, field=field)

    if not isinstance(data, dict):
        fail(None, "expected a mapping with 'columns' (and optionally 'target')")
    for key in data:
        if key not in ("target", "columns"):
            fail(str(key), "unknown field (expected one of: columns, target)")
    columns = data.get("columns")
    if not isinstance(columns, dict) or not columns:
        fail("columns", "expected a mapping of column name to its rules, with at least one column")
    checked = {}
    for name, rule in columns.items():
        checked[str(name)] = _rule(rule, f"columns.{name}", fail)
    target = data.get("target")
    if target is not None:
        if not isinstance(target, str):
            fail("target", f"{target!r} is not a column name")
        if target not in checked:
            fail("target", f"'{target}' is not one of the contract's columns")
    return {**({"target": target} if target else {}), "columns": checked}


def _rule(rule, field, fail) -> dict:
    if not isinstance(rule, dict):
        fail(field, f"expected a mapping of rules ({', '.join(sorted(RULE_KEYS))})")
    for key in rule:
        if key not in RULE_KEYS:
            fail(f"{field}.{key}", f"unknown rule (expected one of: {', '.join(sorted(RULE_KEYS))})")
    kind = rule.get("type")
    if kind not in TYPES:
        fail(f"{field}.type", f"{kind!r} is not one of {', '.join(TYPES)}")
    out = {"type": kind}
    for key, default in (("required", True), ("nullable", True)):
        value = rule.get(key, default)
        if not isinstance(value, bool):
            fail(f"{field}.{key}", f"{value!r} is not true or false")
        out[key] = value
    for key in ("min", "max"):
        if key in rule:
            value = rule[key]
            if kind == "category":
                fail(f"{field}.{key}", "a category column has no range: list its allowed values instead")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                fail(f"{field}.{key}", f"{value!r} is not a number")
            out[key] = value
    if "min" in out and "max" in out and out["min"] > out["max"]:
        fail(field, f"min {out['min']} is above max {out['max']}")
    if "allowed" in rule:
        allowed = rule["allowed"]
        if not isinstance(allowed, list) or not allowed:
            fail(f"{field}.allowed", f"expected a non-empty list, got {allowed!r}")
        for i, value in enumerate(allowed):
            ok = {
                "category": isinstance(value, (str, int)) and not isinstance(value, bool),
                "integer": isinstance(value, int) and not isinstance(value, bool),
                "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            }[kind]
            if not ok:
                fail(f"{field}.allowed[{i}]", f"{value!r} is not a{'n' if kind == 'integer' else ''} {kind} value")
        out["allowed"] = [str(v) for v in allowed] if kind == "category" else list(allowed)
    return out


def contract_upload(env: Environment) -> CodeUpload | None:
    """The contract as JSON, content-addressed in the artifacts bucket: a changed contract is a new URI
    (hence a changed definition), an unchanged one costs nothing on re-runs."""
    contract = load_contract(env)
    if contract is None:
        return None
    body = (json.dumps(contract, sort_keys=True, indent=1) + "\n").encode()
    digest = hashlib.sha256(body).hexdigest()[:16]
    return CodeUpload(f"s3://{env.buckets.artifacts}/contracts/{digest}/{CONTRACT_FILE}", body)


# ---- proposing a contract from the training data ---------------------------------------------


def training_frame(env: Environment, s3: Any | None = None) -> Any:  # a pandas DataFrame
    """The training data as the preprocess step parses it (every part, the missing-value markers as NaN)."""
    import pandas as pd

    spec = env.training.dataset
    try:
        if spec.startswith("s3://"):
            _, body = read_rows(spec, s3)
        else:
            uploads = locate(env, spec, "training.dataset").uploads
            body = b"".join(u.body if i == 0 else u.body.split(b"\n", 1)[1] for i, u in enumerate(uploads))
    except SnapshotError as exc:
        raise ToolkitError(f"cannot read the training data {spec}: {exc}") from None
    categorical = list(env.training.categorical)
    try:
        return pd.read_csv(
            io.BytesIO(body),
            na_values=list(env.training.missing_values),
            keep_default_na=True,
            skipinitialspace=True,
            dtype={c: str for c in [env.training.target, *categorical]},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ToolkitError(f"the training data {spec} is not a readable CSV: {exc}") from None


def propose_contract(env: Environment, s3: Any | None = None) -> str:
    """A proposed contract (YAML, with comments saying what to review) from the environment's training data."""
    frame = training_frame(env, s3)
    t = env.training
    if t.target not in frame.columns:
        raise ToolkitError(f"the training data {t.dataset} has no target column '{t.target}'")
    features = None if t.features == "all" else list(t.features)
    proposal = propose(frame, t.target, list(t.categorical), features)
    return render(proposal, env, len(frame))


def render(proposal: dict, env: Environment, rows: int) -> str:
    contract, review = proposal["contract"], proposal["review"]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"# Data contract proposed by `run-pipeline contract --env {env.name}` on {when} from {env.training.dataset}",
        f"# ({rows} rows). Review it, change what the data got wrong, and commit it: preprocess checks the",
        "# training data against it and inference checks every batch before the drift check; a violation fails",
        "# the run with DataValidationFailed (notified, never retrained).",
        "# Per column: type (number | integer | category), required (the column must be there), nullable",
        "# (missing values allowed; proposed true only where the training data has some), min / max",
        "# (proposed: min 0 for columns never negative; add a max where one is known), allowed (proposed for",
        "# integer codes with few values and the target; a new category in a category column is left to the",
        "# drift check unless you list the allowed values here).",
        f"target: {contract['target']}",
        "columns:",
    ]
    for name, rule in contract["columns"].items():
        shown = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in rule.items())
        note = ""
        if name in review:
            rare = ", ".join(str(v) for v in review[name])
            note = f"  # review: {rare} seen in under 0.5% of rows; remove from allowed if not a valid value"
        lines.append(f"  {_yaml_key(name)}: {{{shown}}}{note}")
    return "\n".join(lines) + "\n"


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, str):
        plain = _PLAIN.match(value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value)
    return repr(value)


def _yaml_key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def _shown(env) -> str | None:
    return str(env.source) if env.source is not None else None
