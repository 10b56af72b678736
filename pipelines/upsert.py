"""Pipeline upsert across accounts: plan create/update/unchanged per pipeline, apply, start, follow.

Shaped like a deploy planner: `desired_pipelines()` turns PipelineSpecs into plain data, `plan()` diffs
that against what DescribePipeline returned (pure, no AWS), `apply()` executes the plan. An unchanged
pipeline costs exactly one read (DescribePipeline) and no write, where the SDK's `Pipeline.upsert()`
writes a new version on every run.

What counts as a change: the normalised definition (its parameters included), the execution role, and
the pipeline's identity tags (project, environment, --tag values). Their fingerprint travels in the
pipeline description, which DescribePipeline returns, so comparing tags needs no ListTags. The build
tags (git commit, build tag/URL) say which build last *changed* the pipeline; a new build of the same
definition is not a change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlops_core.config import REPO_ROOT, Environment
from mlops_core.errors import AccessDenied, ConfigError
from mlops_core.session import Sessions, session_name
from mlops_core.session import _local_user as user
from pipelines.floors import check_quality_floors
from pipelines.specs import PipelineSpec

MANAGED_BY = "run-pipeline"
_FINGERPRINT_MARK = "spec-sha256="
# Parameters whose defaults record which build produced the definition (pipelines/definitions.py).
# Like the build tags they say who last *changed* the pipeline, so a new build alone is not a change.
PROVENANCE_PARAMETERS = ("GitCommit", "BuildId", "BuildUrl")


# -- desired state as data ------------------------------------------------------------------------
@dataclass(frozen=True)
class DesiredPipeline:
    key: str  # train / hpo / inference
    name: str
    definition: str  # normalised JSON
    role_arn: str
    description: str  # carries the fingerprint
    identity_tags: dict  # compared: project, environment, --tag values
    parameters: dict  # name -> default
    spec: PipelineSpec = field(compare=False, repr=False)
    parallelism: dict | None = None  # ParallelismConfiguration

    @property
    def fingerprint(self) -> str | None:
        return _fingerprint(self.description)


@dataclass(frozen=True)
class PipelinePlan:
    key: str
    name: str
    action: str  # create / update / unchanged
    changes: tuple = ()
    desired: DesiredPipeline | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict:
        return {"pipeline": self.key, "name": self.name, "action": self.action, "changes": list(self.changes)}


def normalise_definition(text: str) -> str:
    """Canonical JSON of a pipeline definition for comparison: key order, whitespace, parameter order and
    the provenance parameters' defaults do not matter."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pipeline definition is not valid JSON: {exc}", field="definition") from None
    if isinstance(data, dict) and isinstance(data.get("Parameters"), list):
        parameters = []
        for parameter in data["Parameters"]:
            if isinstance(parameter, dict) and parameter.get("Name") in PROVENANCE_PARAMETERS:
                parameter = {**parameter, "DefaultValue": None}
            parameters.append(parameter)
        data["Parameters"] = sorted(parameters, key=lambda p: str(p.get("Name")))
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def identity_tags(env: Environment, extra_tags: dict | None = None) -> dict:
    tags = {"project": env.project, "environment": env.name}
    for key, value in (extra_tags or {}).items():
        if key in tags or key in BUILD_TAG_KEYS:
            raise ConfigError(f"'{key}' is set by run-pipeline itself", field="--tag")
        tags[key] = value
    return tags


BUILD_TAG_KEYS = ("git-commit", "build", "build-url")


def build_tags(repo_root: str | os.PathLike | None = None) -> dict:
    """Which build changed the pipeline: Jenkins' variables when present, else the local checkout."""
    commit = os.environ.get("GIT_COMMIT") or _git_commit(repo_root)
    # outside Jenkins the "build" is the person running it: the registry's separation of duties
    # compares it with the approver
    tags = {"git-commit": commit or "unknown", "build": os.environ.get("BUILD_TAG") or f"local:{_local_user()}"}
    if os.environ.get("BUILD_URL"):
        tags["build-url"] = os.environ["BUILD_URL"][:256]
    return tags


def _local_user() -> str:
    # spelled as in the role session names the approver's identity is compared by
    return session_name("x", user()).rsplit("@", 1)[0]


def _git_commit(repo_root=None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=repo_root or REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def desired_pipelines(env: Environment, specs: dict, extra_tags: dict | None = None) -> list[DesiredPipeline]:
    """PipelineSpecs (pipelines.definitions.build_pipelines) as the desired state to compare."""
    tags = identity_tags(env, extra_tags)
    desired = []
    for key, spec in specs.items():
        definition = normalise_definition(spec.definition)
        digest = hashlib.sha256(
            json.dumps(
                {
                    "definition": definition,
                    "role": spec.role_arn,
                    "tags": tags,
                    # a function deployed with the pipeline (arrival trigger) changes without the definition
                    "functions": sorted(f"{f.name}:{f.sha256}" for f in getattr(spec, "lambda_functions", ()) or ()),
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()
        purpose = getattr(spec, "description", "") or f"{env.project} {key} pipeline for {env.name}"
        description = f"{purpose[:2900]} (managed by {MANAGED_BY}, {_FINGERPRINT_MARK}{digest})"
        desired.append(
            DesiredPipeline(
                key=key,
                name=spec.name,
                definition=definition,
                role_arn=spec.role_arn,
                description=description,
                identity_tags=tags,
                parameters=dict(spec.parameters),
                spec=spec,
                parallelism=getattr(spec, "parallelism", None),
            )
        )
    return desired


# -- the planner (pure) ---------------------------------------------------------------------------
def plan(desired: list[DesiredPipeline], deployed: dict) -> list[PipelinePlan]:
    """Diff desired pipelines against DescribePipeline answers ({name: response or None if absent})."""
    result = []
    for want in desired:
        have = deployed.get(want.name)
        if have is None:
            result.append(PipelinePlan(want.key, want.name, "create", ("new pipeline",), want))
            continue
        changes = list(definition_changes(have.get("PipelineDefinition") or "{}", want.definition))
        if have.get("RoleArn") != want.role_arn:
            changes.append(f"role {have.get('RoleArn')} -> {want.role_arn}")
        if want.parallelism and have.get("ParallelismConfiguration") != want.parallelism:
            changes.append(f"parallelism {have.get('ParallelismConfiguration')} -> {want.parallelism}")
        if not changes and _fingerprint(have.get("PipelineDescription")) != want.fingerprint:
            changes.append("tags or description")
        result.append(PipelinePlan(want.key, want.name, "update" if changes else "unchanged", tuple(changes), want))
    return result


def _fingerprint(description: str | None) -> str | None:
    if description and _FINGERPRINT_MARK in description:
        return description.rsplit(_FINGERPRINT_MARK, 1)[1].rstrip(")").strip()
    return None


def definition_changes(deployed_text: str, desired_normalised: str) -> list[str]:
    """What differs, in words a reviewer reads in the Jenkins log: steps and parameters by name."""
    try:
        old = json.loads(normalise_definition(deployed_text))
    except ConfigError:
        return ["definition (deployed one is not JSON)"]
    new = json.loads(desired_normalised)
    if old == new:
        return []
    changes = _named_changes(
        "parameter",
        old.get("Parameters", []),
        new.get("Parameters", []),
        lambda a, b: f": {a.get('DefaultValue')!r} -> {b.get('DefaultValue')!r}",
    )
    changes += _named_changes("step", _all_steps(old), _all_steps(new), lambda *_: " changed")
    if not changes:
        changes.append("definition")
    return changes


def _named_changes(kind: str, old: list[dict], new: list[dict], describe) -> list[str]:
    """`<kind> <Name> added`, `... removed`, or `<kind> <Name><describe(before, after)>`, by Name."""
    before, after = {i.get("Name"): i for i in old}, {i.get("Name"): i for i in new}
    changes = []
    for name in sorted(set(before) | set(after), key=str):
        if name not in before:
            changes.append(f"{kind} {name} added")
        elif name not in after:
            changes.append(f"{kind} {name} removed")
        elif before[name] != after[name]:
            changes.append(f"{kind} {name}{describe(before[name], after[name])}")
    return changes


def _all_steps(definition: dict) -> list[dict]:
    """Top-level steps and those nested in condition branches, each once."""
    found, stack = [], list(definition.get("Steps", []))
    while stack:
        step = stack.pop(0)
        if not isinstance(step, dict):
            continue
        found.append(step)
        args = step.get("Arguments") if step.get("Type") == "Condition" else None
        if isinstance(args, dict):
            stack.extend(args.get("IfSteps", []) + args.get("ElseSteps", []))
    return found


# -- reading what is deployed ---------------------------------------------------------------------
def describe_deployed(sagemaker: Any, names: list[str]) -> dict:
    """One DescribePipeline per pipeline, the whole read budget of an unchanged pipeline; the reads are
    independent, so they overlap (boto3 clients are thread-safe)."""

    from botocore.exceptions import ClientError

    def describe(name):
        try:
            return sagemaker.describe_pipeline(PipelineName=name)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise (AccessDenied.from_client_error(exc) or exc) from None

    names = list(names)
    if len(names) < 2:
        return {name: describe(name) for name in names}
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return dict(zip(names, pool.map(describe, names)))


def _is_not_found(exc) -> bool:
    err = exc.response.get("Error", {})
    code, message = err.get("Code", ""), err.get("Message", "").lower()
    # AWS answers ResourceNotFound; some emulators a ValidationException "Could not find pipeline"
    return code == "ResourceNotFound" or (
        code == "ValidationException" and ("could not find" in message or "does not exist" in message)
    )


# -- applying the plan ----------------------------------------------------------------------------
def apply(plans: list[PipelinePlan], clients: dict, env: Environment, build: dict) -> list[dict]:
    """Execute create/update instructions: code uploads, then Lambda functions, then the pipeline."""
    from botocore.exceptions import ClientError

    results: list[dict] = []
    uploaded: set[str] = set()
    for p in plans:
        if p.action == "unchanged":
            results.append({**p.as_dict(), "arn": None})
            continue
        assert p.desired is not None  # plan() sets it on every create/update
        try:
            _put_uploads(clients["s3"], p.desired.spec, env, uploaded)
            _ensure_lambdas(clients["lambda"], p.desired.spec)
            arn = _write_pipeline(clients["sagemaker"], p, build)
        except ClientError as exc:
            raise (AccessDenied.from_client_error(exc) or exc) from None
        results.append({**p.as_dict(), "arn": arn})
    return results


def _put_uploads(s3, spec, env, uploaded: set) -> None:
    for upload in getattr(spec, "uploads", ()) or ():
        if upload.s3_uri in uploaded:
            continue  # the pipelines of one project share their code bundle: put it once per run
        uploaded.add(upload.s3_uri)
        bucket, _, key = upload.s3_uri[len("s3://") :].partition("/")
        # content-addressed keys: re-putting the same bytes is harmless, and only happens on change
        s3.put_object(
            Bucket=bucket, Key=key, Body=upload.body, ServerSideEncryption="aws:kms", SSEKMSKeyId=env.kms_key_alias
        )


def lambda_code_sha256(zip_bytes: bytes) -> str:
    """Lambda's own CodeSha256: base64 of the zip's SHA-256 digest."""

    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def _ensure_lambdas(lam, spec) -> None:
    from botocore.exceptions import ClientError

    for fn in getattr(spec, "lambda_functions", ()) or ():
        try:
            current = lam.get_function_configuration(FunctionName=fn.name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            lam.create_function(
                FunctionName=fn.name,
                Code={"ZipFile": fn.zip_bytes},
                Publish=False,
                Description=f"managed by {MANAGED_BY}",
                **_lambda_configuration(fn),
            )
            continue
        wanted = _lambda_configuration(fn)
        have = {
            "Role": current.get("Role"),
            "Handler": current.get("Handler"),
            "Runtime": current.get("Runtime"),
            "Timeout": current.get("Timeout"),
            "Environment": {"Variables": (current.get("Environment") or {}).get("Variables") or {}},
        }
        config_changed = have != wanted
        if config_changed:
            lam.update_function_configuration(FunctionName=fn.name, **wanted)
        if current.get("CodeSha256") != lambda_code_sha256(fn.zip_bytes):
            if config_changed:
                # AWS refuses a code update while the configuration update is still in progress
                lam.get_waiter("function_updated_v2").wait(FunctionName=fn.name)
            lam.update_function_code(FunctionName=fn.name, ZipFile=fn.zip_bytes)


def _lambda_configuration(fn) -> dict:
    return {
        "Role": fn.role_arn,
        "Handler": fn.handler,
        "Runtime": fn.runtime,
        "Timeout": int(getattr(fn, "timeout", 60) or 60),
        "Environment": {"Variables": dict(getattr(fn, "environment", None) or {})},
    }


def _write_pipeline(sm, p: PipelinePlan, build: dict) -> str:
    want = p.desired
    assert want is not None  # plan() sets it on every create/update
    tags = {**want.identity_tags, **build}
    parallelism = {"ParallelismConfiguration": want.parallelism} if want.parallelism else {}
    if p.action == "create":
        return sm.create_pipeline(
            PipelineName=want.name,
            PipelineDefinition=want.spec.definition,
            PipelineDescription=want.description,
            RoleArn=want.role_arn,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            **parallelism,
        )["PipelineArn"]
    arn = sm.update_pipeline(
        PipelineName=want.name,
        PipelineDefinition=want.spec.definition,
        PipelineDescription=want.description,
        RoleArn=want.role_arn,
        **parallelism,
    )["PipelineArn"]
    # AddTags updates the values of keys the pipeline already has; tags added by others are kept
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return arn


# -- starting executions --------------------------------------------------------------------------
def split_parameters(desired: list[DesiredPipeline], params: dict) -> dict:
    """--param values per pipeline: each must be a parameter of at least one of the pipelines."""
    known = set().union(*(d.parameters for d in desired)) if desired else set()
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(
            f"'{unknown[0]}' is not a parameter of {', '.join(d.name for d in desired)} "
            f"(known: {', '.join(sorted(known)) or 'none'})",
            field="--param",
        )
    return {d.name: {k: v for k, v in params.items() if k in d.parameters} for d in desired}


def start_executions(sagemaker: Any, desired: list[DesiredPipeline], params: dict, build: dict) -> list[dict]:
    from botocore.exceptions import ClientError

    per_pipeline = split_parameters(desired, params)
    started = []
    for d in desired:
        kwargs: dict[str, Any] = {
            "PipelineName": d.name,
            "PipelineExecutionDescription": f"started by {MANAGED_BY} ({build.get('build', 'local')})",
        }
        # the execution records the build that started it, whatever build last changed the definition
        provenance = {
            "GitCommit": build.get("git-commit"),
            "BuildId": build.get("build"),
            "BuildUrl": build.get("build-url"),
        }
        values = {**{k: v for k, v in provenance.items() if v and k in d.parameters}, **per_pipeline[d.name]}
        if values:
            kwargs["PipelineParameters"] = [{"Name": k, "Value": str(v)} for k, v in values.items()]
        try:
            arn = sagemaker.start_pipeline_execution(**kwargs)["PipelineExecutionArn"]
        except ClientError as exc:
            raise (AccessDenied.from_client_error(exc) or exc) from None
        started.append({"pipeline": d.key, "name": d.name, "execution_arn": arn, "parameters": values})
    return started


# -- the whole operation --------------------------------------------------------------------------
@dataclass
class UpsertResult:
    environment: str
    account_id: str
    plans: list
    applied: list
    executions: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "environment": self.environment,
            "account_id": self.account_id,
            "plan": [p.as_dict() for p in self.plans],
            "pipelines": self.applied,
            "executions": self.executions,
        }


def upsert(
    env: Environment,
    specs: dict,
    sessions: Sessions,
    *,
    extra_tags: dict | None = None,
    start: bool = False,
    params: dict | None = None,
    build: dict | None = None,
    clients: dict | None = None,
) -> UpsertResult:
    """Plan and apply the pipelines of `specs` in the environment's account, optionally start them.

    `clients` ({"sagemaker": .., "s3": .., "lambda": ..}, filled in as needed) lets a caller promoting
    many projects in one process reuse its clients: creating a boto3 client costs more than a call.
    """
    desired = desired_pipelines(env, specs, extra_tags)
    if params and not start:
        raise ConfigError("--param only applies with --start or --wait", field="--param")
    if start:
        split_parameters(desired, params or {})  # bad input fails before anything is written
        check_quality_floors(env, params or {})
    clients = clients if clients is not None else {}
    if "sagemaker" not in clients:
        clients["sagemaker"] = sessions.client("sagemaker", sessions.workload())
    sm = clients["sagemaker"]
    plans = plan(desired, describe_deployed(sm, [d.name for d in desired]))
    build = build if build is not None else build_tags()
    if any(p.action != "unchanged" for p in plans):
        for service in ("s3", "lambda"):
            if service not in clients:
                clients[service] = sessions.client(service, sessions.workload())
    applied = apply(plans, clients, env, build)
    result = UpsertResult(env.name, env.account_id, plans, applied)
    if start:
        result.executions = start_executions(sm, desired, params or {}, build)
    return result


def selected(which: str | None) -> tuple:
    return ("train", "hpo", "inference", "quality") if which in (None, "all") else (which,)


def render_plan(result: UpsertResult) -> str:
    lines = [f"Pipelines in {result.environment} (account {result.account_id}):"]
    for p in result.plans:
        lines.append(f"  {p.action:<9}  {p.name}")
        if p.action == "update":
            lines.extend(f"             - {c}" for c in p.changes)
    counts = {a: sum(p.action == a for p in result.plans) for a in ("create", "update", "unchanged")}
    lines.append(f"{counts['create']} created, {counts['update']} updated, {counts['unchanged']} unchanged")
    for e in result.executions:
        lines.append(f"started {e['name']}: {e['execution_arn']}")
    return "\n".join(lines)
