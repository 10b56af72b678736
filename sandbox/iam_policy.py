"""The IAM policy language as data: evaluate identity, resource, key and trust policies for one request.

Pure (no moto, no I/O) so it is tested on its own and reused by every sandbox patch. It follows
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html for one
policy at a time; combining identity and resource policies across accounts is the caller's job
(sandbox.patches.enforcement), because that depends on which account owns the resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

ALLOW, DENY = "Allow", "Deny"


@dataclass(frozen=True)
class Principal:
    """Who is asking, in the forms a resource policy's Principal element can name them."""

    account_id: str
    arn: str  # the caller as AWS prints it (user ARN, assumed-role session ARN)
    principal_arn: str = ""  # aws:PrincipalArn: the user or the role behind a session
    service: str = ""  # a service principal ("events.amazonaws.com"), when a service acts
    anonymous: bool = False

    @property
    def root_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:root"


@dataclass
class Result:
    """What one policy says about one request."""

    denied: bool = False
    allowed: bool = False
    # True when an Allow named this caller itself (role/user/session ARN, service, or "*"), not only its
    # account: in the resource's own account only such a grant stands without an identity policy.
    allowed_specifically: bool = False
    matched: list[str] = field(default_factory=list)  # Sids of the statements that decided

    @property
    def decision(self) -> str | None:
        return DENY if self.denied else ALLOW if self.allowed else None


def parse(document: str | Mapping | None) -> dict | None:
    """A policy document as a dict (accepts JSON text, a dict, or None)."""
    if document is None or document == "":
        return None
    if isinstance(document, Mapping):
        return dict(document)
    return _parse_text(document if isinstance(document, str) else document.decode())


@lru_cache(maxsize=1024)
def _parse_text(text: str) -> dict:
    # policies are re-read on every request; parsing the same text once keeps the sandbox cheap
    text = text.strip()
    if text.startswith("%7B") or text.startswith("%7b"):
        text = unquote(text)
    return json.loads(text)


def statements(document: Mapping | None) -> list[dict]:
    if not document:
        return []
    stmts = document.get("Statement", [])
    return [dict(stmts)] if isinstance(stmts, Mapping) else list(stmts)


def evaluate(
    documents: Iterable,
    action: str,
    resources: str | Iterable[str],
    context: Mapping[str, Any] | None = None,
    principal: Principal | None = None,
) -> Result:
    """Evaluate policies for `action` on any of `resources` (alternative spellings of one resource).

    With `principal`, statements' Principal/NotPrincipal elements are matched (resource, key and trust
    policies); without it they are identity policies and any Principal element makes a statement inert.
    An explicit Deny anywhere wins; otherwise any Allow allows.
    """
    resources = [resources] if isinstance(resources, str) else list(resources)
    ctx = _normalise_context(context or {})
    result = Result()
    for document in documents:
        for stmt in statements(parse(document)):
            effect = stmt.get("Effect")
            if not _action_matches(stmt, action) or not _resource_matches(stmt, resources):
                continue
            specific = False
            if principal is not None:
                matched = _principal_matches(stmt, principal)
                if matched is None:
                    continue
                specific = matched
            elif "Principal" in stmt or "NotPrincipal" in stmt:
                continue
            if not conditions_hold(stmt.get("Condition") or {}, ctx):
                continue
            if effect == DENY:
                result.denied = True
                result.matched.append(stmt.get("Sid", ""))
                return result
            if effect == ALLOW:
                result.allowed = True
                result.allowed_specifically = result.allowed_specifically or specific
                result.matched.append(stmt.get("Sid", ""))
    return result


# -- Action / Resource ------------------------------------------------------------------------------
def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _action_matches(stmt: Mapping, action: str) -> bool:
    if "NotAction" in stmt:
        return not any(wildcard_match(p, action, ignore_case=True) for p in _as_list(stmt["NotAction"]))
    return any(wildcard_match(p, action, ignore_case=True) for p in _as_list(stmt.get("Action")))


def _resource_matches(stmt: Mapping, resources: list[str]) -> bool:
    if "NotResource" in stmt:
        patterns = _as_list(stmt["NotResource"])
        return any(not any(wildcard_match(p, r) for p in patterns) for r in resources)
    if "Resource" not in stmt:
        return True  # trust policies have no Resource element: the role itself is the resource
    patterns = _as_list(stmt["Resource"])
    return any(wildcard_match(p, r) for p in patterns for r in resources)


@lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern:
    parts = []
    for chunk in re.split(r"(\*|\?)", pattern):
        parts.append(".*" if chunk == "*" else "." if chunk == "?" else re.escape(chunk))
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcards: `*` any run of characters (including `:` and `/`), `?` one character."""
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _wildcard_regex(pattern, ignore_case).match(value) is not None


# -- Principal --------------------------------------------------------------------------------------
def _principal_matches(stmt: Mapping, principal: Principal) -> bool | None:
    """None: the statement does not apply to this caller; else whether it names the caller specifically."""
    if "NotPrincipal" in stmt:
        named = _names_principal(stmt["NotPrincipal"], principal)
        return None if named is not None else False
    if "Principal" not in stmt:
        return None  # a resource policy statement without Principal is invalid in AWS: never applies
    return _names_principal(stmt["Principal"], principal)


def _names_principal(element, principal: Principal) -> bool | None:
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return None
    found: bool | None = None
    for kind, values in element.items():
        for value in _as_list(values):
            if kind == "AWS":
                if value == "*":
                    return True
                if principal.anonymous:
                    continue
                if value in (principal.account_id, principal.root_arn):
                    found = bool(found)  # the account: a delegation, not a specific grant
                elif value in (principal.arn, principal.principal_arn):
                    return True
            elif kind == "Service" and principal.service and value == principal.service:
                return True
    return found


# -- Conditions -------------------------------------------------------------------------------------
def _normalise_context(context: Mapping[str, Any]) -> dict[str, list[str]]:
    out = {}
    for key, value in context.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple, set)) else [value]
        out[key.lower()] = [_stringify(v) for v in values]
    return out


def _stringify(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
    "DateNotEquals",
}


def conditions_hold(condition: Mapping, context: Mapping[str, list[str]]) -> bool:
    """Every operator block must hold (AND); within a key, any listed value may match (OR)."""
    for operator, block in condition.items():
        for key, expected in block.items():
            if not _condition_holds(operator, _as_list(expected), context.get(key.lower())):
                return False
    return True


def _condition_holds(operator: str, expected: list, actual: list[str] | None) -> bool:
    expected = [_stringify(v) for v in expected]
    if operator == "Null":
        want_absent = expected[0].lower() == "true"
        return (actual is None) == want_absent
    set_mode = None
    if operator.startswith("ForAnyValue:"):
        set_mode, operator = "any", operator[len("ForAnyValue:") :]
    elif operator.startswith("ForAllValues:"):
        set_mode, operator = "all", operator[len("ForAllValues:") :]
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    if operator not in _OPERATORS:
        raise ValueError(f"unsupported condition operator {operator!r}")
    negated = operator in _NEGATED
    if actual is None:
        if set_mode == "all":
            return True
        if set_mode == "any":
            return False
        return if_exists or negated
    test = _OPERATORS[operator]
    if set_mode == "all":
        return all(test(value, expected) for value in actual)
    if negated:
        return all(test(value, expected) for value in actual)
    return any(test(value, expected) for value in actual)


def _numeric(compare):
    def test(value, expected):
        try:
            return any(compare(float(value), float(e)) for e in expected)
        except ValueError:
            return False

    return test


_OPERATORS = {
    "StringEquals": lambda v, exp: v in exp,
    "StringNotEquals": lambda v, exp: v not in exp,
    "StringEqualsIgnoreCase": lambda v, exp: v.lower() in {e.lower() for e in exp},
    "StringNotEqualsIgnoreCase": lambda v, exp: v.lower() not in {e.lower() for e in exp},
    "StringLike": lambda v, exp: any(wildcard_match(e, v) for e in exp),
    "StringNotLike": lambda v, exp: not any(wildcard_match(e, v) for e in exp),
    # ARN comparisons: each of the six colon-separated parts matched, wildcards allowed
    "ArnEquals": lambda v, exp: any(wildcard_match(e, v) for e in exp),
    "ArnLike": lambda v, exp: any(wildcard_match(e, v) for e in exp),
    "ArnNotEquals": lambda v, exp: not any(wildcard_match(e, v) for e in exp),
    "ArnNotLike": lambda v, exp: not any(wildcard_match(e, v) for e in exp),
    "Bool": lambda v, exp: v.lower() in {e.lower() for e in exp},
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericNotEquals": lambda v, exp: not _numeric(lambda a, b: a == b)(v, exp),
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
}
