"""The pure planner: desired state + observed state -> ordered instructions (create / update /
unchanged), each carrying the API calls that make it so and, for documents, a JSON diff.

No AWS call happens here; tests drive it with hand-written observed dicts.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iam.desired import (
    AccountState,
    Bucket,
    EventBusPermission,
    EventRule,
    KmsKey,
    LockTable,
    ModelPackageGroup,
    Role,
    RolePolicies,
)
from iam.observe import BOOTSTRAP_ALIAS_TAG, BootstrapConflict

PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_VARIABLE = re.compile(r"\$\{[a-z-]+:[^}]+\}")


@dataclass(frozen=True)
class Json:
    """A document parameter sent as a JSON string once its variables are resolved."""

    document: dict


@dataclass(frozen=True)
class APICall:
    service: str
    method: str
    params: dict
    store_as: str | None = None  # variable receiving a value of the response
    store_path: tuple = ()

    def describe(self) -> str:
        return f"{self.service}:{self.method}"


@dataclass
class Change:
    kind: str
    name: str
    action: str  # create | update | unchanged
    reasons: list = field(default_factory=list)
    diffs: dict = field(default_factory=dict)  # label -> unified diff of canonical JSON
    calls: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "reasons": self.reasons,
            "diffs": self.diffs,
            "calls": [c.describe() for c in self.calls],
        }


@dataclass
class Plan:
    account_kind: str
    account_id: str
    region: str
    changes: list
    variables: dict  # values already known (existing keys' ARNs)

    def counts(self) -> dict:
        out = {"create": 0, "update": 0, "unchanged": 0}
        for c in self.changes:
            out[c.action] += 1
        return out

    @property
    def calls(self) -> list:
        return [call for c in self.changes for call in c.calls]

    @property
    def is_noop(self) -> bool:
        return not self.calls


# -- documents ------------------------------------------------------------------------------------


def _as_list(value) -> list:
    return sorted(set(value)) if isinstance(value, list) else [value]


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalize(document: dict | None) -> dict | None:
    """The form two equivalent policies share: AWS may return a one-item list as a string, reorder
    statements or turn booleans into strings, none of which is a change."""
    if document is None:
        return None
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    out = []
    for s in statements:
        n: dict[str, Any] = {}
        for key, value in s.items():
            if key in ("Action", "NotAction", "Resource", "NotResource"):
                n[key] = _as_list(value)
            elif key in ("Principal", "NotPrincipal"):
                n[key] = value if isinstance(value, str) else {k: _as_list(v) for k, v in sorted(value.items())}
            elif key == "Condition":
                n[key] = {
                    op: {
                        k: sorted(_scalar(x) for x in (v if isinstance(v, list) else [v]))
                        for k, v in sorted(cond.items())
                    }
                    for op, cond in sorted(value.items())
                }
            else:
                n[key] = value
        out.append(n)
    out.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return {"Version": document.get("Version", "2008-10-17"), "Statement": out}


def resolve(value: Any, variables: dict) -> Any:
    """Substitute known `${...}` variables in strings, dicts, lists and Json documents."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: variables.get(m.group(0), m.group(0)), value)
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if isinstance(value, Json):
        return Json(resolve(value.document, variables))
    return value


def json_diff(current: Any, desired: Any, label: str) -> str:
    def lines(doc):
        return [] if doc is None else json.dumps(normalize(doc), indent=2, sort_keys=True).splitlines()

    return "\n".join(
        difflib.unified_diff(
            lines(current), lines(desired), f"{label} (current)", f"{label} (desired)", lineterm="", n=2
        )
    )


def _same(current, desired) -> bool:
    return normalize(current) == normalize(desired)


# -- per resource ---------------------------------------------------------------------------------


def plan(state: AccountState, observed: dict) -> Plan:
    variables = {}
    for r in state.resources:
        if isinstance(r, KmsKey) and observed.get((r.kind, r.name), {}).get("exists"):
            variables[r.arn_variable] = observed[(r.kind, r.name)]["arn"]
    changes = []
    for r in state.resources:
        desired = resolve(r.__dict__, variables)
        change = _PLANNERS[type(r)](r, desired, observed.get((r.kind, r.name), {"exists": False}))
        changes.append(change)
    return Plan(state.account_kind, state.account_id, state.region, changes, variables)


def _key(r: KmsKey, d: dict, o: dict) -> Change:
    var = r.arn_variable
    if not o.get("exists"):
        tags = [{"TagKey": k, "TagValue": v} for k, v in sorted({**r.tags, BOOTSTRAP_ALIAS_TAG: r.alias}.items())]
        return Change(
            r.kind,
            r.name,
            "create",
            ["key does not exist"],
            {"policy": json_diff(None, d["policy"], "policy")},
            [
                APICall(
                    "kms",
                    "create_key",
                    {
                        "Description": r.description,
                        "KeyUsage": "ENCRYPT_DECRYPT",
                        "KeySpec": "SYMMETRIC_DEFAULT",
                        "Policy": Json(d["policy"]),
                        "Tags": tags,
                    },
                    store_as=var,
                    store_path=("KeyMetadata", "Arn"),
                ),
                APICall("kms", "create_alias", {"AliasName": r.alias, "TargetKeyId": var}),
                APICall("kms", "enable_key_rotation", {"KeyId": var}),
            ],
        )
    change = Change(r.kind, r.name, "unchanged")
    key_id = o["key_id"]
    if not o["alias_exists"]:
        change.reasons.append(f"alias missing: adopting key {key_id} created by an interrupted run")
        change.calls.append(APICall("kms", "create_alias", {"AliasName": r.alias, "TargetKeyId": key_id}))
    if not o.get("enabled", True) or o.get("state") == "Disabled":
        change.reasons.append("key is disabled: enabling it")
        change.calls.append(APICall("kms", "enable_key", {"KeyId": key_id}))
    if not _same(o["policy"], d["policy"]):
        change.reasons.append("key policy differs")
        change.diffs["policy"] = json_diff(o["policy"], d["policy"], "key policy")
        change.calls.append(
            APICall("kms", "put_key_policy", {"KeyId": key_id, "PolicyName": "default", "Policy": Json(d["policy"])})
        )
    if not o["rotation"]:
        change.reasons.append("rotation is off: turning it on")
        change.calls.append(APICall("kms", "enable_key_rotation", {"KeyId": key_id}))
    if o.get("description", "") != r.description:
        change.reasons.append("description differs")
        change.calls.append(APICall("kms", "update_key_description", {"KeyId": key_id, "Description": r.description}))
    change.action = "update" if change.calls else "unchanged"
    return change


def _role(r: Role, d: dict, o: dict) -> Change:
    tags = [{"Key": k, "Value": v} for k, v in sorted(r.tags.items())]
    if not o.get("exists"):
        return Change(
            r.kind,
            r.name,
            "create",
            ["role does not exist"],
            {"trust policy": json_diff(None, d["trust_policy"], "trust policy")},
            [
                APICall(
                    "iam",
                    "create_role",
                    {
                        "RoleName": r.name,
                        "Description": r.description,
                        "AssumeRolePolicyDocument": Json(d["trust_policy"]),
                        "Tags": tags,
                    },
                )
            ],
        )
    change = Change(r.kind, r.name, "unchanged")
    if not _same(o["trust"], d["trust_policy"]):
        change.reasons.append("trust policy differs")
        change.diffs["trust policy"] = json_diff(o["trust"], d["trust_policy"], "trust policy")
        change.calls.append(
            APICall("iam", "update_assume_role_policy", {"RoleName": r.name, "PolicyDocument": Json(d["trust_policy"])})
        )
    if o.get("description", "") != r.description:
        change.reasons.append("description differs")
        change.calls.append(APICall("iam", "update_role", {"RoleName": r.name, "Description": r.description}))
    if any(o.get("tags", {}).get(k) != v for k, v in r.tags.items()):
        change.reasons.append("tags differ")
        change.calls.append(APICall("iam", "tag_role", {"RoleName": r.name, "Tags": tags}))
    change.action = "update" if change.calls else "unchanged"
    return change


def _role_policies(r: RolePolicies, d: dict, o: dict) -> Change:
    current = o.get("policies", {})
    change = Change(r.kind, r.name, "unchanged")
    for name, doc in d["policies"].items():
        if name not in current or not _same(current[name], doc):
            change.reasons.append(f"inline policy {name} {'differs' if name in current else 'missing'}")
            change.diffs[name] = json_diff(current.get(name), doc, name)
            change.calls.append(
                APICall("iam", "put_role_policy", {"RoleName": r.role, "PolicyName": name, "PolicyDocument": Json(doc)})
            )
    for name in sorted(set(current) - set(d["policies"])):
        change.reasons.append(f"inline policy {name} is not part of the desired state: removing it")
        change.diffs[name] = json_diff(current[name], None, name)
        change.calls.append(APICall("iam", "delete_role_policy", {"RoleName": r.role, "PolicyName": name}))
    for arn in o.get("attached", []):
        change.reasons.append(f"managed policy {arn} is attached: detaching it (least privilege)")
        change.calls.append(APICall("iam", "detach_role_policy", {"RoleName": r.role, "PolicyArn": arn}))
    if change.calls:
        change.action = "create" if not current and not o.get("attached") else "update"
    return change


def _bucket(r: Bucket, d: dict, o: dict) -> Change:
    encryption = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": d["kms_key"]},
                "BucketKeyEnabled": True,
            }
        ]
    }
    calls = []
    reasons = []
    diffs = {}
    exists = o.get("exists")
    if not exists:
        params: dict[str, Any] = {"Bucket": r.name}
        if r.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": r.region}
        calls.append(APICall("s3", "create_bucket", params))
        reasons.append("bucket does not exist")
    if o.get("public_access_block") != PUBLIC_ACCESS_BLOCK:
        if exists:
            reasons.append("public access block missing or partial")
        calls.append(
            APICall(
                "s3",
                "put_public_access_block",
                {"Bucket": r.name, "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK},
            )
        )
    want = {"algorithm": "aws:kms", "key": d["kms_key"], "bucket_key": True}
    if o.get("encryption") != want:
        if exists:
            reasons.append(f"default encryption {o.get('encryption')} -> SSE-KMS with {d['kms_key']}")
        calls.append(
            APICall("s3", "put_bucket_encryption", {"Bucket": r.name, "ServerSideEncryptionConfiguration": encryption})
        )
    if r.versioning and o.get("versioning") != "Enabled":
        if exists:
            reasons.append(f"versioning {o.get('versioning') or 'never enabled'} -> Enabled")
        calls.append(
            APICall("s3", "put_bucket_versioning", {"Bucket": r.name, "VersioningConfiguration": {"Status": "Enabled"}})
        )
    if any(o.get("tags", {}).get(k) != v for k, v in r.tags.items()):
        if exists:
            reasons.append("tags differ")
        merged = {**o.get("tags", {}), **r.tags}
        calls.append(
            APICall(
                "s3",
                "put_bucket_tagging",
                {"Bucket": r.name, "Tagging": {"TagSet": [{"Key": k, "Value": v} for k, v in sorted(merged.items())]}},
            )
        )
    if r.event_bridge and not o.get("event_bridge"):
        if exists:
            reasons.append("EventBridge notifications off -> on (arrival triggers)")
        # PutBucketNotificationConfiguration replaces the whole configuration: keep what else is there
        notifications = {**(o.get("notifications") or {}), "EventBridgeConfiguration": {}}
        calls.append(
            APICall(
                "s3",
                "put_bucket_notification_configuration",
                {"Bucket": r.name, "NotificationConfiguration": notifications},
            )
        )
    if not _same(o.get("policy"), d["policy"]):
        if exists:
            reasons.append("bucket policy differs")
        diffs["policy"] = json_diff(o.get("policy"), d["policy"], "bucket policy")
        calls.append(APICall("s3", "put_bucket_policy", {"Bucket": r.name, "Policy": Json(d["policy"])}))
    action = "create" if not exists else ("update" if calls else "unchanged")
    return Change(r.kind, r.name, action, reasons, diffs, calls)


def _table(r: LockTable, d: dict, o: dict) -> Change:
    sse = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": d["kms_key"]}
    if not o.get("exists"):
        return Change(
            r.kind,
            r.name,
            "create",
            ["table does not exist"],
            {},
            [
                APICall(
                    "dynamodb",
                    "create_table",
                    {
                        "TableName": r.name,
                        "BillingMode": "PAY_PER_REQUEST",
                        # the key Terraform's S3 backend locks with
                        "AttributeDefinitions": [{"AttributeName": "LockID", "AttributeType": "S"}],
                        "KeySchema": [{"AttributeName": "LockID", "KeyType": "HASH"}],
                        "SSESpecification": sse,
                        "Tags": [{"Key": k, "Value": v} for k, v in sorted(r.tags.items())],
                    },
                )
            ],
        )
    change = Change(r.kind, r.name, "unchanged")
    if o.get("key_schema") and o["key_schema"] != [("LockID", "HASH")]:
        raise BootstrapConflict(
            f"DynamoDB table {r.name} exists with key {o['key_schema']}, not LockID: "
            "Terraform cannot lock with it; choose another terraform.lock_table"
        )
    if o.get("sse_type") != "KMS" or o.get("key") != d["kms_key"]:
        change.reasons.append(f"encryption {o.get('sse_type') or 'AWS owned key'} -> SSE-KMS with {d['kms_key']}")
        change.calls.append(APICall("dynamodb", "update_table", {"TableName": r.name, "SSESpecification": sse}))
        change.action = "update"
    return change


def _group(r: ModelPackageGroup, d: dict, o: dict) -> Change:
    put = APICall(
        "sagemaker",
        "put_model_package_group_policy",
        {"ModelPackageGroupName": r.name, "ResourcePolicy": Json(d["policy"])},
    )
    if not o.get("exists"):
        return Change(
            r.kind,
            r.name,
            "create",
            ["group does not exist"],
            {"policy": json_diff(None, d["policy"], "group policy")},
            [
                APICall(
                    "sagemaker",
                    "create_model_package_group",
                    {
                        "ModelPackageGroupName": r.name,
                        "ModelPackageGroupDescription": r.description,
                        "Tags": [{"Key": k, "Value": v} for k, v in sorted(r.tags.items())],
                    },
                ),
                put,
            ],
        )
    if _same(o.get("policy"), d["policy"]):
        return Change(r.kind, r.name, "unchanged")
    return Change(
        r.kind,
        r.name,
        "update",
        ["resource policy differs" if o.get("policy") else "no resource policy"],
        {"policy": json_diff(o.get("policy"), d["policy"], "group policy")},
        [put],
    )


def _event_rule(r: EventRule, d: dict, o: dict) -> Change:
    put_rule = APICall(
        "events",
        "put_rule",
        {
            "Name": r.name,
            "Description": r.description,
            "EventPattern": Json(d["pattern"]),
            "State": "ENABLED",
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(r.tags.items())],
        },
    )
    desired_targets = sorted(tuple(t) for t in d["targets"])
    put_targets = APICall(
        "events", "put_targets", {"Rule": r.name, "Targets": [{"Id": i, "Arn": arn} for i, arn in desired_targets]}
    )
    if not o.get("exists"):
        return Change(r.kind, r.name, "create", ["rule does not exist"], {}, [put_rule, put_targets])
    change = Change(r.kind, r.name, "unchanged")
    if o.get("pattern") != d["pattern"] or o.get("state") != "ENABLED":
        change.reasons.append("event pattern or state differs")
        change.diffs["pattern"] = "\n".join(
            difflib.unified_diff(
                json.dumps(o.get("pattern"), indent=2, sort_keys=True).splitlines(),
                json.dumps(d["pattern"], indent=2, sort_keys=True).splitlines(),
                "pattern (current)",
                "pattern (desired)",
                lineterm="",
                n=2,
            )
        )
        change.calls.append(put_rule)
    current = [tuple(t) for t in o.get("targets", [])]
    if current != desired_targets:
        change.reasons.append(f"targets {[a for _, a in current]} -> {[a for _, a in desired_targets]}")
        stale = sorted({i for i, _ in current} - {i for i, _ in desired_targets})
        if stale:
            change.calls.append(APICall("events", "remove_targets", {"Rule": r.name, "Ids": stale}))
        change.calls.append(put_targets)
    if change.calls:
        change.action = "update"
    return change


def _event_bus_permission(r: EventBusPermission, d: dict, o: dict) -> Change:
    put = APICall(
        "events",
        "put_permission",
        {"Action": "events:PutEvents", "Principal": d["principal_account"], "StatementId": r.name},
    )
    if not o.get("exists"):
        return Change(r.kind, r.name, "create", [f"account {d['principal_account']} may not put events yet"], {}, [put])
    if o.get("principal_account") == d["principal_account"]:
        return Change(r.kind, r.name, "unchanged")
    remove = APICall("events", "remove_permission", {"StatementId": r.name})
    return Change(
        r.kind,
        r.name,
        "update",
        [f"principal {o.get('principal_account')} -> {d['principal_account']}"],
        {},
        [remove, put],
    )


_PLANNERS: dict[type, Callable[..., Any]] = {
    KmsKey: _key,
    Role: _role,
    RolePolicies: _role_policies,
    Bucket: _bucket,
    LockTable: _table,
    ModelPackageGroup: _group,
    EventRule: _event_rule,
    EventBusPermission: _event_bus_permission,
}
