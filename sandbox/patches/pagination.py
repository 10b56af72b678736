"""SageMaker list calls page as AWS pages them, so a caller that reads only the first page misses data
here as it would on AWS.

AWS documents MaxResults of ListModelPackages, ListModelPackageGroups, ListPipelines,
ListPipelineExecutions, ListPipelineExecutionSteps and Search as 1..100
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListModelPackages.html and each
action's page); a value outside that range is a ValidationException. Without MaxResults SageMaker
answers 10 items a page (the references give no default; 10 is what the service returns). NextToken
is opaque and belongs to the request that returned it: any other token is a ValidationException.

moto 5.2 differs: ListModelPackages and ListModelPackageGroups answer 100 a page and accept any
MaxResults; ListPipelineExecutions and Search answer everything in one page and ignore MaxResults,
SortBy and SortOrder; ListPipelines filters by prefix after paging; the sandbox's
ListPipelineExecutionSteps answered 50 a page. Each is wrapped here and this patch cuts AWS's page out
of what the wrapped handler answers (asked only for the items up to the page's end where it sorts and
filters before paging, for everything where it does not). Search over ModelPackage builds records for
the page only, as an index would: moto's builds every matching record on every call. Search sorts by
SortBy (default LastModifiedTime, then CreationTime when a resource has none) in SortOrder (default
Descending), as https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Search.html says.

Other list calls the toolkit makes, checked against moto 5.2: S3 ListObjectsV2 (1,000 keys a page),
IAM ListAttachedRolePolicies (MaxItems 100), CloudWatch Logs DescribeLogStreams (50) and CloudTrail
LookupEvents (50, sandbox/patches/cloudtrail.py) page as AWS does. IAM ListRolePolicies and KMS ListKeys
answered everything in one page in moto; they page here as
https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListRolePolicies.html (MaxItems 1..1000, 100 by
default) and https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeys.html (Limit 1..1000, 100
by default) say. Not matched: S3 MaxKeys above 1,000 (moto honours it, AWS caps it at 1,000); the
toolkit never sets it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.patching import Patch

DEFAULT_PAGE = 10
MAX_PAGE = 100


@dataclass(frozen=True)
class Paged:
    """One SageMaker list action: the response key holding its items and how the wrapped handler is asked."""

    key: str
    # True: the wrapped handler pages with moto's own MaxResults after filtering and sorting, so it is
    # asked for just the items up to the end of this page plus one (to know whether more follow);
    # False: it is asked for everything (it pages wrongly or not at all)
    window: bool = True
    sort: str | None = None  # "search" / "executions": this patch sorts, the wrapped handler does not


PAGED = {
    "list_model_packages": Paged("ModelPackageSummaryList"),
    "list_model_package_groups": Paged("ModelPackageGroupSummaryList"),
    "list_pipelines": Paged("PipelineSummaries", window=False),
    "list_pipeline_executions": Paged("PipelineExecutionSummaries", window=False, sort="executions"),
    "list_pipeline_execution_steps": Paged("PipelineExecutionSteps"),
    "search": Paged("Results", window=False, sort="search"),
}


def _validation(message: str) -> Exception:
    from moto.sagemaker.exceptions import ValidationError

    return ValidationError(message)


def page_size(
    value: Any,
    default: int = DEFAULT_PAGE,
    maximum: int = MAX_PAGE,
    error: Callable[[str], Exception] | None = None,
    name: str = "maxResults",
) -> int:
    """MaxResults as AWS validates it: absent -> the default; 1..maximum; anything else the service's
    validation error."""
    error = error or _validation
    if value is None:
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise error(f"1 validation error detected: Value '{value}' at '{name}' must be an integer") from None
    if size < 1:
        raise error(
            f"1 validation error detected: Value '{size}' at '{name}' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1"
        )
    if size > maximum:
        raise error(
            f"1 validation error detected: Value '{size}' at '{name}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {maximum}"
        )
    return size


def _fingerprint(action: str, params: dict) -> str:
    """What a token is bound to: the action and every parameter but the page's own (MaxResults may
    change between pages, as on AWS)."""
    request = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}
    text = json.dumps([action, request], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(action: str, params: dict, offset: int) -> str:
    raw = json.dumps({"o": offset, "r": _fingerprint(action, params)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(action: str, params: dict, token: str | None, error: Callable[[str], Exception] | None = None) -> int:
    """The offset a NextToken stands for; ValidationException for a token this request did not get."""
    error = error or _validation
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, bound = int(decoded["o"]), decoded["r"]
    except (ValueError, KeyError, TypeError):
        raise error(f"Invalid pagination token: {token[:64]}") from None
    if bound != _fingerprint(action, params) or offset < 0:
        raise error("Invalid pagination token: it was returned for another request")
    return offset


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # the JSON protocol's timestamps: epoch seconds
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _moment(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _search_key(sort_by: str):
    def key(record: dict) -> tuple:
        resource = next(iter(record.values())) if record else {}
        value = resource.get(sort_by)
        if value is None and sort_by == "LastModifiedTime":
            value = resource.get("CreationTime")
        if isinstance(value, (datetime, int, float)) or sort_by.endswith("Time"):
            return (0, _moment(value), "")
        return (1, 0.0, str(value))

    return key


def _sorted(paged: Paged, items: list, params: dict) -> list:
    descending = (params.get("SortOrder") or "Descending") == "Descending"
    if paged.sort == "search":
        return sorted(items, key=_search_key(params.get("SortBy") or "LastModifiedTime"), reverse=descending)
    if paged.sort == "executions":
        if params.get("SortBy") == "PipelineExecutionArn":
            return sorted(items, key=lambda s: s.get("PipelineExecutionArn", ""), reverse=descending)
        return sorted(items, key=lambda s: _moment(s.get("StartTime")), reverse=descending)
    return items


def _search_model_packages(response: Any, params: dict, offset: int, size: int) -> dict | None:
    """Search over ModelPackage as AWS answers it (an index, not a scan of every record): filter on the
    packages' attributes, sort, and build records for this page only. None when the expression uses
    more than Equals / NotEquals / Contains filters on plain attributes (moto's own search then)."""
    from moto.core.utils import camelcase_to_underscores

    expression = params.get("SearchExpression") or {}
    if set(expression) - {"Filters"}:
        return None
    checks = []
    for f in expression.get("Filters") or []:
        name, operator = f.get("Name", ""), f.get("Operator") or "Equals"
        if "." in name or operator not in ("Equals", "NotEquals", "Contains"):
            return None
        checks.append((camelcase_to_underscores(name), operator, str(f.get("Value"))))

    # every call filters and sorts all the account's packages, 1,000 and more: one pass per filter
    found = list(response.sagemaker_backend.model_packages.values())
    for attr, operator, value in checks:
        if any(not hasattr(p, attr) for p in found):
            raise _validation(f"Unknown property name: {attr}")
        if operator == "Equals":
            found = [p for p in found if str(getattr(p, attr)) == value]
        elif operator == "NotEquals":
            found = [p for p in found if str(getattr(p, attr)) != value]
        else:
            found = [p for p in found if value in str(getattr(p, attr) or "")]

    sort_by = params.get("SortBy") or "LastModifiedTime"
    attr = camelcase_to_underscores(sort_by)

    def key(package) -> tuple:
        value = getattr(package, attr, None)
        if value is None and sort_by == "LastModifiedTime":
            value = getattr(package, "creation_time", None)
        if sort_by.endswith("Time"):
            return (0, value.timestamp() if isinstance(value, datetime) else _moment(value), "")
        return (1, 0.0, str(value))

    found.sort(key=key, reverse=(params.get("SortOrder") or "Descending") == "Descending")
    body: dict[str, Any] = {
        "Results": [{"ModelPackage": p.gen_response_object()} for p in found[offset : offset + size]]
    }
    if offset + size < len(found):
        body["NextToken"] = encode_token("search", params, offset + size)
    return body


def _wrap(action: str, paged: Paged, original):
    from moto.core.responses import ActionResult

    def handler(self):
        params = self.params
        size = page_size(params.get("MaxResults"))
        offset = decode_token(action, params, params.get("NextToken"))
        if action == "search" and params.get("Resource") == "ModelPackage":
            fast = _search_model_packages(self, params, offset, size)
            if fast is not None:
                # JSON written directly: moto's generic serializer walks SageMaker's model for every
                # field of every record and costs ~7 ms a record, 0.7 s a page (AWS answers in ms)
                return json.dumps(fast, default=_json_value)
        saved = dict(params)
        params.pop("NextToken", None)
        if paged.window:
            params["MaxResults"] = offset + size + 1
        else:
            params.pop("MaxResults", None)
        try:
            answer = original(self)
        finally:
            params.clear()
            params.update(saved)
        body = dict(answer.result) if isinstance(answer, ActionResult) else json.loads(answer)
        items = _sorted(paged, list(body.get(paged.key) or []), saved)
        body[paged.key] = items[offset : offset + size]
        body.pop("NextToken", None)
        if offset + size < len(items):
            body["NextToken"] = encode_token(action, saved, offset + size)
        return ActionResult(body)

    handler.__name__ = action
    handler.__wrapped__ = original  # type: ignore[attr-defined]
    return handler


def _iam_list_role_policies(original):
    """https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListRolePolicies.html: MaxItems 1..1000,
    100 by default; IsTruncated and Marker."""
    from moto.core.responses import ActionResult
    from moto.iam.exceptions import ValidationError

    def list_role_policies(self):
        request = {"RoleName": self._get_param("RoleName")}
        size = page_size(self._get_param("MaxItems"), 100, 1000, ValidationError, "maxItems")
        offset = decode_token("iam:list_role_policies", request, self._get_param("Marker"), ValidationError)
        names = list(original(self).result["PolicyNames"])
        body: dict[str, Any] = {"PolicyNames": names[offset : offset + size], "IsTruncated": offset + size < len(names)}
        if body["IsTruncated"]:
            body["Marker"] = encode_token("iam:list_role_policies", request, offset + size)
        return ActionResult(body)

    return list_role_policies


def _kms_list_keys(original):
    """https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeys.html: Limit 1..1000, 100 by
    default; Truncated and NextMarker; a marker from elsewhere is InvalidMarkerException."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import ValidationException

    def invalid_marker(message: str) -> Exception:
        return JsonRESTError("InvalidMarkerException", message)

    def list_keys(self):
        size = page_size(self._get_param("Limit"), 100, 1000, ValidationException, "limit")
        offset = decode_token("kms:list_keys", {}, self._get_param("Marker"), invalid_marker)
        keys = json.loads(original(self))["Keys"]
        body: dict[str, Any] = {"Keys": keys[offset : offset + size], "Truncated": offset + size < len(keys)}
        if body["Truncated"]:
            body["NextMarker"] = encode_token("kms:list_keys", {}, offset + size)
        return json.dumps(body)

    return list_keys


def patch_pagination() -> None:
    from moto.iam.responses import IamResponse
    from moto.kms.responses import KmsResponse
    from moto.sagemaker.responses import SageMakerResponse

    for action, paged in PAGED.items():
        setattr(SageMakerResponse, action, _wrap(action, paged, getattr(SageMakerResponse, action)))
    IamResponse.list_role_policies = _iam_list_role_policies(IamResponse.list_role_policies)
    KmsResponse.list_keys = _kms_list_keys(KmsResponse.list_keys)


PATCH = Patch(
    name="aws-page-sizes",
    adds=(
        "SageMaker ListModelPackages/ListModelPackageGroups/ListPipelines/ListPipelineExecutions/"
        "ListPipelineExecutionSteps/Search answer 10 a page by default, at most 100, with request-bound "
        "NextTokens (ValidationException otherwise); Search sorts by SortBy/SortOrder; IAM ListRolePolicies "
        "and KMS ListKeys answer 100 a page by default, at most 1,000"
    ),
    overrides=(
        *(f"moto.sagemaker.responses.SageMakerResponse.{action}" for action in PAGED),
        "moto.iam.responses.IamResponse.list_role_policies",
        "moto.kms.responses.KmsResponse.list_keys",
    ),
    apply=patch_pagination,
)
