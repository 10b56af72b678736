"""CloudTrail management events and `LookupEvents`, which moto lacks.

Each audited call that succeeds is recorded in the caller's account and region as AWS's CloudTrail
record (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html),
its `userIdentity` as https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html
describes it (an assumed role's `sessionContext.sourceIdentity` included). `LookupEvents` answers as
https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html: one lookup attribute,
a time range, newest first, at most 50 a page.

Differences from AWS, kept small on purpose: only the calls in AUDITED are recorded (the ones the toolkit
reads back), failed calls are not recorded, and an event lands only in the caller's account (AWS also
delivers some cross-account events to the resource owner's account).
"""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox import clock
from sandbox.patches.enforcement import Caller, current
from sandbox.patching import Patch

# (moto response class path, handler name, event source, read only)
AUDITED = (
    ("moto.sagemaker.responses:SageMakerResponse", "start_pipeline_execution", "sagemaker.amazonaws.com", False),
    ("moto.sagemaker.responses:SageMakerResponse", "create_model_package", "sagemaker.amazonaws.com", False),
    ("moto.sagemaker.responses:SageMakerResponse", "update_model_package", "sagemaker.amazonaws.com", False),
    ("moto.sagemaker.responses:SageMakerResponse", "create_model_package_group", "sagemaker.amazonaws.com", False),
    ("moto.sts.responses:TokenResponse", "assume_role", "sts.amazonaws.com", False),
)
LOOKUP_KEYS = {
    "EventId": "EventId",
    "EventName": "EventName",
    "ReadOnly": "ReadOnly",
    "Username": "Username",
    "EventSource": "EventSource",
    "AccessKeyId": "AccessKeyId",
    "ResourceType": None,
    "ResourceName": None,
}
PAGE_MAX = 50


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_identity(caller: Caller) -> dict:
    """The `userIdentity` element for a request made by `caller`."""
    p = caller.principal
    if caller.kind == "role":
        role_arn = p.principal_arn
        identity: dict[str, Any] = {
            "type": "AssumedRole",
            "principalId": caller.principal_id,
            "arn": p.arn,
            "accountId": p.account_id,
            "accessKeyId": caller.access_key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": caller.principal_id.split(":")[0],
                    "arn": role_arn,
                    "accountId": p.account_id,
                    "userName": role_arn.split("/")[-1],
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": _iso(caller.session_issued), "mfaAuthenticated": "false"},
            },
        }
        if caller.source_identity:
            identity["sessionContext"]["sourceIdentity"] = caller.source_identity
        return identity
    return {
        "type": "IAMUser",
        "principalId": caller.principal_id,
        "arn": p.arn,
        "accountId": p.account_id,
        "accessKeyId": caller.access_key_id,
        "userName": p.arn.split("/")[-1],
    }


def _lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


def _request_parameters(response) -> dict:
    body = response.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body and body.lstrip().startswith("{"):
        params = json.loads(body)
    else:
        query = getattr(response, "querystring", {}) or {}
        params = {k: v[0] for k, v in query.items() if k not in ("Action", "Version")}
    return {_lower_first(k): v for k, v in params.items()}


def _response_elements(result) -> dict | None:
    from moto.core.responses import ActionResult

    value = result.result if isinstance(result, ActionResult) else result
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    out = {}
    for key, item in value.items():
        if key == "Credentials":  # the secret never reaches a log
            item = {
                "accessKeyId": item.access_key_id,
                "sessionToken": item.session_token,
                "expiration": _iso(item.expiration),
            }
        elif isinstance(item, dict):
            item = {_lower_first(k): v for k, v in item.items()}
        out[_lower_first(key)] = item
    return out


def _backend(account_id: str, region: str):
    from moto.cloudtrail.models import cloudtrail_backends

    backend = cloudtrail_backends[account_id][region]
    if not isinstance(backend.sandbox_events, list):
        backend.sandbox_events = []
    return backend


def record(response: Any, api_name: str, source: str, read_only: bool, result: Any) -> dict | None:
    state = current()
    if state is None or state.caller.kind == "anonymous":
        return None
    caller, region = state.caller, response.region
    # the sandbox clock, as executions and metrics: a run started after `sandbox tick` has its record at its own time
    now = clock.instant()
    event = {
        "eventVersion": "1.08",
        "userIdentity": user_identity(caller),
        "eventTime": _iso(now),
        "eventSource": source,
        "eventName": api_name,
        "awsRegion": region,
        "sourceIPAddress": "127.0.0.1",
        "userAgent": response.headers.get("User-Agent", ""),
        "requestParameters": _request_parameters(response),
        "responseElements": _response_elements(result),
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": caller.account_id,
        "eventCategory": "Management",
    }
    _backend(caller.account_id, region).sandbox_events.append((now, event))
    return event


def _username(event: dict) -> str:
    identity = event["userIdentity"]
    if identity["type"] == "AssumedRole":
        return identity["arn"].rsplit("/", 1)[-1]
    return identity.get("userName", "")


def _summary(event: dict) -> dict:
    return {
        "EventId": event["eventID"],
        "EventName": event["eventName"],
        "ReadOnly": "true" if event["readOnly"] else "false",
        "AccessKeyId": event["userIdentity"].get("accessKeyId", ""),
        "EventTime": datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp(),
        "EventSource": event["eventSource"],
        "Username": _username(event),
        "Resources": [],
        "CloudTrailEvent": json.dumps(event),
    }


def lookup_events(self) -> str:
    from moto.cloudtrail.exceptions import InvalidParameterCombinationException
    from moto.core.exceptions import JsonRESTError

    attributes = self._get_param("LookupAttributes") or []
    if len(attributes) > 1:
        raise InvalidParameterCombinationException("LookupAttributes can only contain one attribute")
    start, end = self._get_param("StartTime"), self._get_param("EndTime")
    max_results = int(self._get_param("MaxResults") or PAGE_MAX)
    if not 1 <= max_results <= PAGE_MAX:
        raise JsonRESTError("InvalidMaxResultsException", "MaxResults must be between 1 and 50")
    events = sorted(_backend(self.current_account, self.region).sandbox_events, key=lambda e: e[0], reverse=True)
    out = []
    for _moment, event in events:
        summary = _summary(event)
        if start is not None and summary["EventTime"] < float(start):
            continue
        if end is not None and summary["EventTime"] > float(end):
            continue
        if attributes:
            key, value = attributes[0]["AttributeKey"], attributes[0]["AttributeValue"]
            if key not in LOOKUP_KEYS:
                raise JsonRESTError("InvalidLookupAttributesException", f"{key} is not a valid AttributeKey")
            if LOOKUP_KEYS[key] is None or summary[LOOKUP_KEYS[key]] != value:
                continue
        out.append(summary)
    offset = int(self._get_param("NextToken") or 0)
    page = out[offset : offset + max_results]
    body: dict[str, Any] = {"Events": page}
    if offset + max_results < len(out):
        body["NextToken"] = str(offset + max_results)
    return json.dumps(body)


def patch_cloudtrail() -> None:
    from moto.cloudtrail.models import CloudTrailBackend
    from moto.cloudtrail.responses import CloudTrailResponse

    for where, handler, source, read_only in AUDITED:
        module_name, cls_name = where.split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        original = getattr(cls, handler)
        api_name = "".join(part.title() for part in handler.split("_"))

        def audited(self, _original=original, _api=api_name, _source=source, _read_only=read_only):
            result = _original(self)
            record(self, _api, _source, _read_only, result)
            return result

        setattr(cls, handler, audited)
    CloudTrailResponse.lookup_events = lookup_events
    CloudTrailBackend.sandbox_events = ()  # class default; each backend gets its own list on first record


PATCH = Patch(
    name="cloudtrail-lookup",
    adds=(
        "management events recorded for StartPipelineExecution, Create/UpdateModelPackage(Group) and AssumeRole "
        "(userIdentity with the source identity); LookupEvents answers from them"
    ),
    overrides=(
        "moto.sagemaker.responses.SageMakerResponse.start_pipeline_execution",
        "moto.sagemaker.responses.SageMakerResponse.create_model_package",
        "moto.sagemaker.responses.SageMakerResponse.update_model_package",
        "moto.sagemaker.responses.SageMakerResponse.create_model_package_group",
        "moto.sts.responses.TokenResponse.assume_role",
        "moto.cloudtrail.responses.CloudTrailResponse.lookup_events",
        "moto.cloudtrail.models.CloudTrailBackend.sandbox_events",
    ),
    apply=patch_cloudtrail,
)
