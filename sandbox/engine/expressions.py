"""The SageMaker Pipelines definition language: parameters, `Get` property paths, `Std:Join`,
`Std:JsonGet`, execution variables and conditions, evaluated against a running execution's state.

Pure: no AWS call except through the `read_s3` callback JsonGet-on-S3Uri needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class EvaluationError(Exception):
    """An expression cannot be evaluated; the message is what the failing step reports."""


@dataclass
class Context:
    parameters: dict = field(default_factory=dict)  # name -> typed value
    execution: dict = field(default_factory=dict)  # PipelineExecutionArn, PipelineName, ...
    steps: dict = field(default_factory=dict)  # step name -> properties dict
    read_s3: Callable[[str], bytes] | None = None  # for Std:JsonGet with an S3Uri


_TOKEN = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_:\-]*)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(-?\d+)\s*\]""")


def parse_path(path: str) -> list:
    """`Outputs['train'].S3Output.S3Uri` -> ['Outputs', 'train', 'S3Output', 'S3Uri']; ints index lists."""
    tokens, pos = [], 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m or m.end() == pos:
            raise EvaluationError(f"cannot parse property path '{path}' at '{path[pos:]}'")
        name, single, double, index = m.groups()
        tokens.append(int(index) if index is not None else next(t for t in (name, single, double) if t is not None))
        pos = m.end()
    return tokens


def walk(value: Any, tokens: list, describe: str) -> Any:
    """Follow tokens through dicts and lists; a string key on a list picks the item it names
    (OutputName, ChannelName, MetricName...), as SageMaker's property references do."""
    for token in tokens:
        if isinstance(token, int):
            if not isinstance(value, list) or not -len(value) <= token < len(value):
                raise EvaluationError(f"{describe}: index [{token}] out of range")
            value = value[token]
        elif isinstance(value, dict):
            if token not in value:
                raise EvaluationError(f"{describe}: '{token}' not found")
            value = value[token]
        elif isinstance(value, list):
            named = [
                item
                for item in value
                if isinstance(item, dict) and any(k.endswith("Name") and v == token for k, v in item.items())
            ]
            if not named:
                raise EvaluationError(f"{describe}: no item named '{token}'")
            value = named[0]
        else:
            raise EvaluationError(f"{describe}: '{token}' not found")
    return value


def get(path: str, ctx: Context) -> Any:
    head, _, rest = path.partition(".")
    if head == "Parameters":
        if rest not in ctx.parameters:
            raise EvaluationError(f"Parameters.{rest} is not a parameter of this pipeline")
        return ctx.parameters[rest]
    if head == "Execution":
        if rest not in ctx.execution:
            raise EvaluationError(f"Execution.{rest} is not an execution variable")
        return ctx.execution[rest]
    if head == "Steps":
        tokens = parse_path(rest)
        if not tokens or tokens[0] not in ctx.steps:
            raise EvaluationError(
                f"{path}: step '{tokens[0] if tokens else ''}' has no properties (not run, or not a dependency)"
            )
        return walk(ctx.steps[tokens[0]], tokens[1:], path)
    raise EvaluationError(f"unknown reference '{path}'")


def json_get(spec: dict, ctx: Context) -> Any:
    path = spec.get("Path")
    if not isinstance(path, str):
        raise EvaluationError("Std:JsonGet needs a Path")
    if "S3Uri" in spec:
        uri = evaluate(spec["S3Uri"], ctx)
        if ctx.read_s3 is None:
            raise EvaluationError("Std:JsonGet on an S3Uri is not available here")
        try:
            document = json.loads(ctx.read_s3(uri))
        except ValueError:
            raise EvaluationError(f"Std:JsonGet: {uri} is not JSON") from None
        source = uri
    else:
        ref = spec.get("PropertyFile")
        if isinstance(ref, dict) and "Get" in ref:
            document, source = get(ref["Get"], ctx), ref["Get"]
        elif isinstance(ref, str):  # the short form names a property file of any step
            matches = [p["PropertyFiles"][ref] for p in ctx.steps.values() if ref in p.get("PropertyFiles", {})]
            if not matches:
                raise EvaluationError(f"Std:JsonGet: property file '{ref}' not produced by any step")
            document, source = matches[0], ref
        else:
            raise EvaluationError("Std:JsonGet needs a PropertyFile or an S3Uri")
    return walk(document, parse_path(path), f"Std:JsonGet '{path}' in {source}")


def evaluate(expr: Any, ctx: Context) -> Any:
    """Evaluate an expression (or a whole Arguments structure) to plain JSON values."""
    if isinstance(expr, list):
        return [evaluate(item, ctx) for item in expr]
    if not isinstance(expr, dict):
        return expr
    if len(expr) == 1:
        ((key, value),) = expr.items()
        if key == "Get":
            return get(value, ctx)
        if key in ("Std:Join", "Join"):
            values = evaluate(value.get("Values", []), ctx)
            return str(value.get("On", "")).join(text(v) for v in values)
        if key in ("Std:JsonGet", "JsonGet"):
            return json_get(value, ctx)
    return {k: evaluate(v, ctx) for k, v in expr.items()}


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# -- conditions -----------------------------------------------------------------------------------
_COMPARE = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def condition(cond: dict, ctx: Context) -> bool:
    kind = cond.get("Type")
    if kind in _COMPARE:
        left, right = _comparable(evaluate(cond.get("LeftValue"), ctx), evaluate(cond.get("RightValue"), ctx))
        try:
            return _COMPARE[kind](left, right)
        except TypeError:
            raise EvaluationError(f"{kind}: cannot compare {left!r} with {right!r}") from None
    if kind == "In":
        query = evaluate(cond.get("QueryValue"), ctx)
        return any(
            _comparable(query, evaluate(v, ctx))[0] == _comparable(query, evaluate(v, ctx))[1]
            for v in cond.get("Values", [])
        )
    if kind == "Not":
        return not condition(cond["Expression"], ctx)
    if kind == "Or":
        return any(condition(c, ctx) for c in cond.get("Conditions", []))
    if kind == "And":
        return all(condition(c, ctx) for c in cond.get("Conditions", []))
    raise EvaluationError(f"unsupported condition type '{kind}'")


def _comparable(left, right):
    """Numbers read from JSON reports are often strings; compare them as numbers when both are."""

    def number(v):
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return v

    ln, rn = number(left), number(right)
    if (
        isinstance(ln, (int, float))
        and isinstance(rn, (int, float))
        and not isinstance(ln, bool)
        and not isinstance(rn, bool)
    ):
        return ln, rn
    return left, right


# -- parameters -----------------------------------------------------------------------------------
def typed(value: Any, kind: str, name: str) -> Any:
    """A parameter value (overrides arrive as strings) converted to the definition's declared type."""
    try:
        if kind == "Integer":
            return int(value)
        if kind == "Float":
            return float(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError(value)
    except (TypeError, ValueError):
        raise EvaluationError(f"parameter {name}: '{value}' is not a valid {kind}") from None
    return value if value is None else str(value)


def resolve_parameters(declared: list, overrides: list | None) -> dict:
    """Defaults from the definition, overridden by StartPipelineExecution's PipelineParameters."""
    types = {p["Name"]: p.get("Type", "String") for p in declared}
    values = {p["Name"]: p.get("DefaultValue") for p in declared}
    for item in overrides or []:
        name = item.get("Name")
        if name not in types:
            raise EvaluationError(
                f"parameter {name} is not defined by the pipeline (defined: {', '.join(sorted(types)) or 'none'})"
            )
        values[name] = item.get("Value")
    missing = [n for n, v in values.items() if v is None]
    if missing:
        raise EvaluationError(f"parameters without a value or default: {', '.join(missing)}")
    return {name: typed(value, types[name], name) for name, value in values.items()}


def references(expr: Any) -> set[str]:
    """Names of the steps an expression reads properties of (its data dependencies)."""
    found: set[str] = set()
    if isinstance(expr, list):
        for item in expr:
            found |= references(item)
    elif isinstance(expr, dict):
        for key, value in expr.items():
            if key == "Get" and isinstance(value, str) and value.startswith("Steps."):
                tokens = parse_path(value[len("Steps.") :])
                if tokens:
                    found.add(tokens[0])
            else:
                found |= references(value)
    return found
