"""What exists in the account now: read-only calls that describe each desired resource.

The result is plain data (dicts) the pure planner compares with the desired state. Only Get /
Describe / List / Head calls happen here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

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
from mlops_core.errors import ToolkitError

BOOTSTRAP_ALIAS_TAG = "bootstrap-alias"


class BootstrapConflict(ToolkitError):
    """Something in the account blocks the bootstrap and needs a person's decision (a key pending
    deletion, a bucket name owned by another account)."""


class Clients:
    """One client per service on the target account's session, every call counted (reads vs writes)."""

    def __init__(self, sessions, session):
        self.sessions = sessions
        self.session = session
        self._clients: dict = {}
        self.reads = 0
        self.writes = 0
        self.operations: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, service: str):
        if service not in self._clients:
            client = self.sessions.client(service, self.session)
            client.meta.events.register("before-call", self._count)
            self._clients[service] = client
        return self._clients[service]

    def _count(self, model, **_):
        with self._lock:
            self.operations.append(model.name)
            if is_write(model.name):
                self.writes += 1
            else:
                self.reads += 1


def is_write(operation: str) -> bool:
    return not operation.startswith(("Get", "Describe", "List", "Head"))


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _read(call, missing: tuple, **params):
    """`call(**params)`, or None when AWS answers that the thing does not exist (one of `missing`)."""
    from botocore.exceptions import ClientError

    try:
        return call(**params)
    except ClientError as exc:
        if _code(exc) in missing:
            return None
        raise


def _doc(value) -> dict | None:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else value


def observe(state: AccountState, clients: Clients, workers: int = 6) -> dict:
    """{(kind, name): observed dict} for every resource of the desired `state`.

    Resources are described concurrently (reads are independent and each costs a round trip); a
    role's inline policies are read once the role is known to exist."""

    observed: dict = {}
    first = [r for r in state.resources if not isinstance(r, RolePolicies)]
    second = [r for r in state.resources if isinstance(r, RolePolicies)]
    for service in {_SERVICES[type(r)] for r in state.resources}:
        clients(service)  # create clients up front: creation is not thread-safe, calls are
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in (first, second):
            results = pool.map(lambda r: _READERS[type(r)](r, clients, observed), batch)
            for resource, result in zip(batch, list(results)):
                observed[(resource.kind, resource.name)] = result
    return observed


def _key(resource: KmsKey, clients, _observed) -> dict:
    from botocore.exceptions import ClientError

    kms = clients("kms")
    alias_exists = True
    try:
        meta = kms.describe_key(KeyId=resource.alias)["KeyMetadata"]
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        alias_exists = False
        meta = _orphaned_key(kms, resource.alias)
        if meta is None:
            return {"exists": False}
    if meta.get("KeyState") == "PendingDeletion":
        raise BootstrapConflict(
            f"KMS key {meta['Arn']} ({resource.alias}) is pending deletion: cancel the "
            "deletion (kms cancel-key-deletion) or choose another kms.key_alias"
        )
    policy = kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"]
    rotation = kms.get_key_rotation_status(KeyId=meta["KeyId"]).get("KeyRotationEnabled", False)
    return {
        "exists": True,
        "arn": meta["Arn"],
        "key_id": meta["KeyId"],
        "state": meta.get("KeyState"),
        "enabled": meta.get("Enabled", True),
        "description": meta.get("Description", ""),
        "policy": _doc(policy),
        "rotation": bool(rotation),
        "alias_exists": alias_exists,
    }


def _orphaned_key(kms, alias: str) -> dict | None:
    """A key an interrupted run created but did not alias yet: found by the tag set at creation, so a
    re-run adopts it instead of leaving a second key behind."""
    from botocore.exceptions import ClientError

    for page in kms.get_paginator("list_keys").paginate():
        for entry in page["Keys"]:
            try:
                meta = kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"]
                if meta.get("KeyManager") != "CUSTOMER" or meta.get("KeyState") == "PendingDeletion":
                    continue
                tags = kms.list_resource_tags(KeyId=entry["KeyId"]).get("Tags", [])
            except ClientError:
                continue  # keys we may not read are not ours
            if any(t["TagKey"] == BOOTSTRAP_ALIAS_TAG and t["TagValue"] == alias for t in tags):
                return meta
    return None


def _role(resource: Role, clients, _observed) -> dict:
    found = _read(clients("iam").get_role, ("NoSuchEntity",), RoleName=resource.name)
    if found is None:
        return {"exists": False}
    role = found["Role"]
    return {
        "exists": True,
        "arn": role["Arn"],
        "trust": _doc(role.get("AssumeRolePolicyDocument")),
        "description": role.get("Description", ""),
        "tags": {t["Key"]: t["Value"] for t in role.get("Tags", [])},
    }


def _role_policies(resource: RolePolicies, clients, observed) -> dict:
    if not observed.get(("iam-role", resource.role), {}).get("exists"):
        return {"policies": {}, "attached": []}
    iam = clients("iam")
    names = [
        n
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=resource.role)
        for n in page["PolicyNames"]
    ]
    docs = {n: _doc(iam.get_role_policy(RoleName=resource.role, PolicyName=n)["PolicyDocument"]) for n in names}
    attached = [
        p["PolicyArn"]
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=resource.role)
        for p in page["AttachedPolicies"]
    ]
    return {"policies": docs, "attached": attached}


def _bucket(resource: Bucket, clients, _observed) -> dict:
    from botocore.exceptions import ClientError

    s3 = clients("s3")
    try:
        s3.head_bucket(Bucket=resource.name)
    except ClientError as exc:
        code = _code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return {"exists": False}
        if code in ("403", "AccessDenied"):
            raise BootstrapConflict(
                f"bucket {resource.name} exists but this account cannot reach it "
                "(owned by another account?): choose another name in buckets.*"
            ) from None
        raise

    def read(call, missing: tuple, pick):
        found = _read(call, missing, Bucket=resource.name)
        return None if found is None else pick(found)

    encryption = read(
        s3.get_bucket_encryption,
        ("ServerSideEncryptionConfigurationNotFoundError",),
        lambda r: _encryption(r["ServerSideEncryptionConfiguration"]),
    )
    versioning = s3.get_bucket_versioning(Bucket=resource.name).get("Status")
    public_access = read(
        s3.get_public_access_block,
        ("NoSuchPublicAccessBlockConfiguration",),
        lambda r: r["PublicAccessBlockConfiguration"],
    )
    policy = read(s3.get_bucket_policy, ("NoSuchBucketPolicy",), lambda r: _doc(r["Policy"]))
    tags = (
        read(
            s3.get_bucket_tagging,
            ("NoSuchTagSet", "NoSuchTagSetError"),
            lambda r: {t["Key"]: t["Value"] for t in r["TagSet"]},
        )
        or {}
    )
    notifications = _read(s3.get_bucket_notification_configuration, (), Bucket=resource.name) or {}
    notifications.pop("ResponseMetadata", None)
    return {
        "exists": True,
        "notifications": notifications,
        "event_bridge": "EventBridgeConfiguration" in notifications,
        "encryption": encryption,
        "versioning": versioning,
        "public_access_block": public_access,
        "policy": policy,
        "tags": tags,
    }


def _encryption(config: dict) -> dict:
    rule = (config.get("Rules") or [{}])[0]
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    return {
        "algorithm": default.get("SSEAlgorithm"),
        "key": default.get("KMSMasterKeyID"),
        "bucket_key": bool(rule.get("BucketKeyEnabled", False)),
    }


def _table(resource: LockTable, clients, _observed) -> dict:
    found = _read(clients("dynamodb").describe_table, ("ResourceNotFoundException",), TableName=resource.name)
    if found is None:
        return {"exists": False}
    table = found["Table"]
    sse = table.get("SSEDescription") or {}
    return {
        "exists": True,
        "sse_type": sse.get("SSEType"),
        "sse_status": sse.get("Status"),
        "key": sse.get("KMSMasterKeyArn"),
        "key_schema": [(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])],
    }


def _group(resource: ModelPackageGroup, clients, _observed) -> dict:
    sagemaker = clients("sagemaker")
    missing = ("ValidationException", "ResourceNotFound")
    group = _read(sagemaker.describe_model_package_group, missing, ModelPackageGroupName=resource.name)
    if group is None:
        return {"exists": False}
    found = _read(sagemaker.get_model_package_group_policy, missing, ModelPackageGroupName=resource.name)
    policy = _doc(found["ResourcePolicy"]) if found else None
    return {
        "exists": True,
        "arn": group.get("ModelPackageGroupArn"),
        "policy": policy,
        "description": group.get("ModelPackageGroupDescription", ""),
    }


def _event_rule(resource: EventRule, clients, _observed) -> dict:
    events = clients("events")
    rule = _read(events.describe_rule, ("ResourceNotFoundException",), Name=resource.name)
    if rule is None:
        return {"exists": False}
    targets = events.list_targets_by_rule(Rule=resource.name).get("Targets", [])
    return {
        "exists": True,
        "pattern": json.loads(rule.get("EventPattern") or "{}"),
        "state": rule.get("State"),
        "targets": sorted((t["Id"], t["Arn"]) for t in targets),
    }


def _event_bus_permission(resource: EventBusPermission, clients, _observed) -> dict:
    policy = clients("events").describe_event_bus().get("Policy")
    for s in json.loads(policy)["Statement"] if policy else []:
        if s.get("Sid") == resource.name:
            principal = (s.get("Principal") or {}).get("AWS", "")
            return {"exists": True, "principal_account": principal.split(":")[4] if ":" in principal else principal}
    return {"exists": False}


_SERVICES = {
    KmsKey: "kms",
    Role: "iam",
    RolePolicies: "iam",
    Bucket: "s3",
    LockTable: "dynamodb",
    ModelPackageGroup: "sagemaker",
    EventRule: "events",
    EventBusPermission: "events",
}
_READERS: dict[type, Callable[..., dict]] = {
    KmsKey: _key,
    Role: _role,
    RolePolicies: _role_policies,
    Bucket: _bucket,
    LockTable: _table,
    ModelPackageGroup: _group,
    EventRule: _event_rule,
    EventBusPermission: _event_bus_permission,
}
