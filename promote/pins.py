"""Where each version runs, and which version an environment is pinned to.

Runs: every successful inference appends one object to the registry bucket (the RecordRun step),
`<account label>/runs/<environment>/<time>_v<version>_<execution id>.json`. The registry owns the
bucket; a workload's inference Lambda may only put new objects under its own account's `runs/`
(the bucket policy refuses a put without If-None-Match: *, so nothing is overwritten), and it holds
no permission that could change a version's approval.

Pins: `promote pin --env prod --version N` makes prod's inference use N instead of the latest
Approved version, as the approver role: the pin is `pinned:<environment>` in that version's
CustomerMetadataProperties (which the inference Lambda reads), and every pin, unpin and rollback is
also kept as a `pin:<n>` entry (who, when, why, build) on the version, like decisions.

So that the pinned version is read directly rather than found by describing every Approved one, the
group's first version carries an index, `pin-index:<environment>` = the pinned version number or
`none` (SageMaker has no group-level metadata that can change, and a group's tags are not readable
from other accounts). The index only points: the inference Lambda and `promote pin` still require
`pinned:<environment>` on the version it names, which only the approver role can write.
"""

from __future__ import annotations

import json
import re

from mlops_core.config import Environment
from mlops_core.errors import ConfigError, ToolkitError
from mlops_core.session import Sessions
from promote import registry as registry_module
from promote.registry import Registry, _build, _call, _fit_json, _now, person, version_of

PIN_PREFIX = "pinned:"
INDEX_PREFIX = "pin-index:"
INDEX_VERSION = 1  # the version whose metadata holds the group's pin index
_RUN_KEY = re.compile(
    r"^(?P<label>[^/]+)/runs/(?P<env>[^/]+)/(?P<at>[^_/]+)_v(?P<version>\d+)_(?P<execution>[^/]+)\.json$"
)


class PinRefused(ToolkitError):
    """A pin, unpin or rollback that cannot be done (version not Approved, nothing pinned or to roll back to)."""


# -- where versions ran ----------------------------------------------------------------------------
def run_history(env: Environment, registry: Registry) -> list[dict]:
    """Every recorded successful inference, oldest first: environment, account, version, execution, time."""
    runs = []
    for label, account_id in env.workload_accounts.items():
        paginator = registry.s3.get_paginator("list_objects_v2")
        for page in _call(paginator.paginate, Bucket=env.buckets.registry, Prefix=f"{label}/runs/"):
            for item in page.get("Contents", []):
                match = _RUN_KEY.match(item["Key"])
                if not match:
                    continue
                runs.append(
                    {
                        "environment": match["env"],
                        "account": account_id,
                        "version": int(match["version"]),
                        "execution": match["execution"],
                        "at": match["at"],
                        "record": f"s3://{env.buckets.registry}/{item['Key']}",
                    }
                )
    return sorted(runs, key=lambda r: (r["at"], r["record"]))


def runs_in(history: list[dict]) -> dict:
    """{version: [environments whose latest recorded run used it]}."""
    latest = {}
    for run in history:
        latest[run["environment"]] = run["version"]
    found: dict = {}
    for environment, version in sorted(latest.items()):
        found.setdefault(version, []).append(environment)
    return found


# -- pins -----------------------------------------------------------------------------------------
def pin_entries(package: dict) -> list[dict]:
    """The version's recorded pin/unpin/rollback actions, oldest first."""
    found = []
    for key, value in (package.get("CustomerMetadataProperties") or {}).items():
        if key.startswith("pin:") and key[len("pin:") :].isdigit():
            try:
                found.append((int(key[len("pin:") :]), json.loads(value)))
            except ValueError:
                found.append((int(key[len("pin:") :]), {"note": value}))
    return [entry for _, entry in sorted(found, key=lambda kv: kv[0])]


def pinned_version(env: Environment, registry: Registry) -> dict | None:
    """The package pinned for `env`, if any (whatever its status now): the one the group's pin index
    names, when it carries the pin; otherwise (an index written before, or by hand) every version is
    read, one Search page per 100 versions."""
    key = f"{PIN_PREFIX}{env.name}"
    first = _index_holder(registry)
    indexed = ((first or {}).get("CustomerMetadataProperties") or {}).get(f"{INDEX_PREFIX}{env.name}")
    if indexed == "none":
        return None
    if indexed and indexed.isdigit():
        package = first if int(indexed) == INDEX_VERSION else _describe_or_none(registry, int(indexed))
        if package is not None and key in (package.get("CustomerMetadataProperties") or {}):
            return package
    for package in registry.packages():
        if key in (package.get("CustomerMetadataProperties") or {}):
            return package
    return None


def _describe_or_none(registry: Registry, version: int) -> dict | None:
    try:
        return registry.describe(version)
    except registry_module.VersionNotFound:
        return None


def _index_holder(registry: Registry) -> dict | None:
    return _describe_or_none(registry, INDEX_VERSION)


def _write_index(env: Environment, registry: Registry, version: int | None) -> None:
    """Point the group's pin index for `env` at `version` (None: nothing pinned)."""
    first = _index_holder(registry)
    if first is None:  # checked before anything was written (pin); an unpin has nothing left to point at
        return
    # The update makes the pinning approver version 1's LastModifiedBy: a review board's first approval
    # of version 1, still pending, then no longer verifies (first_board_approval) and must be given
    # again. That fails closed, and a version that old is rarely still pending.
    properties = dict(first.get("CustomerMetadataProperties") or {})
    properties[f"{INDEX_PREFIX}{env.name}"] = str(version) if version is not None else "none"
    _call(
        registry.sagemaker.update_model_package,
        ModelPackageArn=first["ModelPackageArn"],
        CustomerMetadataProperties=properties,
    )


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ConfigError("a reason is required: it is recorded on the version", field="--reason")
    if len(reason) > 180:
        raise ConfigError(f"{len(reason)} characters is too long (at most 180)", field="--reason")
    return reason


def _record(registry: Registry, package: dict, entry: dict, *, set_pin: bool) -> None:
    properties = dict(package.get("CustomerMetadataProperties") or {})
    key = f"{PIN_PREFIX}{entry['environment']}"
    properties[f"pin:{len(pin_entries(package)) + 1}"] = _fit_json(entry)
    kwargs = {}
    if set_pin:
        properties[key] = _fit_json(entry)
    else:
        properties.pop(key, None)
        kwargs["CustomerMetadataPropertiesToRemove"] = [key]
    _call(
        registry.sagemaker.update_model_package,
        ModelPackageArn=package["ModelPackageArn"],
        CustomerMetadataProperties=properties,
        **kwargs,
    )


def _entry(env: Environment, registry: Registry, action: str, reason: str, **extra: object) -> dict:
    principal = registry.identity()
    # who: the STS source identity AWS carried into the approver session (verified by AWS, not a name we
    # chose); the role session's name only when the session has none
    verified = registry.sessions.source_identity(registry.session)
    return {
        "action": action,
        "environment": env.name,
        "by": verified or person(principal),
        "principal": principal,
        "at": _now(),
        "build": _build(),
        "reason": reason,
        **extra,
    }


def pin(env: Environment, sessions: Sessions, version: int, reason: str, *, action: str = "pin") -> dict:
    """Make `env`'s inference use `version` (Approved only) instead of the latest Approved version."""
    reason = _reason(reason)
    registry = Registry(env, sessions, purpose=f"{action}-{env.name}-v{version}")
    package = registry.describe(version)
    status = package.get("ModelApprovalStatus") or "PendingManualApproval"
    if status != "Approved":
        raise PinRefused(f"version {version} is {status}: only an Approved version can be pinned for {env.name}")
    if version != INDEX_VERSION and _index_holder(registry) is None:
        raise PinRefused(
            f"version {INDEX_VERSION} of {env.model_package_group_arn}, which holds the group's pin index, was "
            f"deleted: inference could not find a pin, so none is recorded"
        )
    current = pinned_version(env, registry)
    if current is not None and version_of(current) == version:
        return {"environment": env.name, "version": version, "changed": False, "pin": None}
    entry = _entry(env, registry, action, reason, **({"replaces": version_of(current)} if current else {}))
    if current is not None:
        _record(
            registry,
            current,
            {**entry, "action": "unpin", "reason": f"replaced by v{version}: {reason}"},
            set_pin=False,
        )
    _record(registry, package, entry, set_pin=True)
    _write_index(env, registry, version)
    return {"environment": env.name, "version": version, "changed": True, "pin": entry}


def unpin(env: Environment, sessions: Sessions, reason: str) -> dict:
    """`env` follows the latest Approved version again."""
    reason = _reason(reason)
    registry = Registry(env, sessions, purpose=f"unpin-{env.name}")
    current = pinned_version(env, registry)
    if current is None:
        raise PinRefused(f"no version is pinned for {env.name}: it already runs the latest Approved version")
    entry = _entry(env, registry, "unpin", reason)
    _record(registry, current, entry, set_pin=False)
    _write_index(env, registry, None)
    return {"environment": env.name, "version": version_of(current), "changed": True, "pin": entry}


def rollback(env: Environment, sessions: Sessions, reason: str) -> dict:
    """Pin the Approved version that ran in `env` before the one that runs there now."""
    reason = _reason(reason)
    registry = Registry(env, sessions, purpose=f"rollback-{env.name}")
    history = [r for r in run_history(env, registry) if r["environment"] == env.name]
    if not history:
        raise PinRefused(f"no inference has been recorded in {env.name}: nothing to roll back from")
    current = history[-1]["version"]
    for run in reversed(history):
        if run["version"] == current:
            continue
        package = registry.describe(run["version"])
        if package.get("ModelApprovalStatus") == "Approved":
            result = pin(env, sessions, run["version"], f"rollback from v{current}: {reason}", action="rollback")
            return {**result, "rolled_back_from": current}
    raise PinRefused(f"no earlier Approved version ran in {env.name} before v{current}: nothing to roll back to")


def render_pin(result: dict) -> str:
    if not result["changed"]:
        return f"{result['environment']} is already pinned to version {result['version']}: nothing to do"
    entry = result["pin"]
    verb = {"pin": "pinned to", "rollback": "rolled back to", "unpin": "unpinned from"}[entry["action"]]
    tail = " (now follows the latest Approved version)" if entry["action"] == "unpin" else ""
    return (
        f"{result['environment']} {verb} version {result['version']}{tail} by {entry['by']} at {entry['at']}: "
        f"{entry['reason']}"
    )


# -- views ----------------------------------------------------------------------------------------
def status(env: Environment, sessions: Sessions) -> list[dict]:
    """`promote status` rows with where each version runs now (its environments' latest recorded
    run) and which environments it is pinned for."""
    registry = Registry(env, sessions)
    rows = registry_module.status(env, sessions, registry=registry)
    where = runs_in(run_history(env, registry))
    for row in rows:
        row["runs_in"] = where.get(row["version"], [])
        row["pinned_for"] = sorted(
            k[len(PIN_PREFIX) :] for k in row.get("metadata_keys", []) if k.startswith(PIN_PREFIX)
        )
    return rows


def lineage(env: Environment, sessions: Sessions, version: int) -> dict:
    """`promote lineage` with every recorded run of the version and its pin history."""
    registry = Registry(env, sessions, purpose=f"lineage-v{version}")
    package = registry.describe(version)
    info = registry_module.lineage(env, sessions, version, registry=registry, package=package)
    info["runs"] = [r for r in run_history(env, registry) if r["version"] == version]
    info["pins"] = pin_entries(package)
    info["pinned_for"] = sorted(
        k[len(PIN_PREFIX) :] for k in (package.get("CustomerMetadataProperties") or {}) if k.startswith(PIN_PREFIX)
    )
    return info
