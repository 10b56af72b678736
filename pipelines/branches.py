"""A branch namespace's lifecycle in its dev account: claimed by its first deploy, removed by teardown.

The claim is one object, `branches/<namespace>/branch.json` in the artifacts bucket, naming the git
branch that owns the namespace: a second branch that sanitises to the same namespace is refused
instead of overwriting the first one's pipelines. Teardown removes exactly what the branch deployed:
its mlops-infra resources and Terraform state (through the teardown steps registered with
mlops_core.branches, so this package needs no Terraform), its pipelines, its Lambda, its S3 data
under `branches/<namespace>/`, and last the claim.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlops_core.branches import teardown_steps
from mlops_core.config import Environment
from mlops_core.errors import AccessDenied, ConfigError, ToolkitError


class BranchNotDeployed(ToolkitError):
    """Teardown of a branch that has nothing deployed."""


def claim_key(env: Environment) -> str:
    return f"branches/{env.namespace}/branch.json"


def _owner(env: Environment, s3: Any) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=env.buckets.artifacts, Key=claim_key(env))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise (AccessDenied.from_client_error(exc) or exc) from None
    return json.loads(body)


def _check_owner(env: Environment, claim: dict | None) -> None:
    if claim is not None and claim.get("branch") != env.branch:
        raise ConfigError(
            f"{env.branch!r} sanitises to namespace '{env.namespace}', which branch {claim.get('branch')!r} "
            f"already uses in {env.base_name}: rename the branch",
            field="--branch",
        )


def claim_namespace(env: Environment, sessions: Any) -> dict:
    """Before a branch deploys anything: the namespace is free (claim it) or already this branch's."""
    if not env.namespace:
        return {}
    s3 = sessions.client("s3", sessions.workload())
    claim = _owner(env, s3)
    _check_owner(env, claim)
    if claim is None:
        claim = {
            "branch": env.branch,
            "namespace": env.namespace,
            "environment": env.base_name,
            "claimed": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        s3.put_object(
            Bucket=env.buckets.artifacts,
            Key=claim_key(env),
            Body=json.dumps(claim, sort_keys=True).encode(),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=env.kms_key_alias,
        )
    return claim


def teardown(env: Environment, sessions: Any, echo: Callable[[str], None] = print) -> dict:
    """Remove everything branch `env.branch` deployed, and nothing else; returns what was removed."""
    from botocore.exceptions import ClientError

    if not env.namespace:
        raise ConfigError("teardown needs --branch: the main environment is never torn down", field="--branch")
    session = sessions.workload()
    s3, sagemaker, lam = (sessions.client(n, session) for n in ("s3", "sagemaker", "lambda"))
    claim = _owner(env, s3)
    _check_owner(env, claim)
    pipelines = [name for name in env.pipelines.values() if _exists(sagemaker.describe_pipeline, PipelineName=name)]
    function = env.lambda_function_name
    has_function = _exists(lam.get_function_configuration, FunctionName=function)
    if claim is None and not pipelines and not has_function:
        raise BranchNotDeployed(
            f"no branch {env.branch!r} (namespace '{env.namespace}') is deployed in {env.base_name} "
            f"(account {env.account_id}): nothing to tear down"
        )
    steps = teardown_steps()
    if not steps:  # fail closed: never remove the pipelines and leave the branch's rules behind
        raise ToolkitError(
            "no teardown step for the branch's infrastructure is installed (promote's "
            "mlops_toolkit.branch_teardown entry point): reinstall the toolkit (make install)"
        )
    removed: dict = {"branch": env.branch, "namespace": env.namespace, "environment": env.base_name}
    for name, step in steps:
        removed[name] = step(env, sessions, echo)
    for name in pipelines:
        token = hashlib.sha256(f"teardown {name}".encode()).hexdigest()  # idempotency token: 32-128 characters
        sagemaker.delete_pipeline(PipelineName=name, ClientRequestToken=token)
        echo(f"deleted pipeline {name}")
    removed["pipelines"] = pipelines
    if has_function:
        lam.delete_function(FunctionName=function)
        echo(f"deleted Lambda function {function}")
    removed["lambda_function"] = function if has_function else None
    prefix = f"branches/{env.namespace}/"
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.buckets.artifacts, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"] != claim_key(env)]
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        result = s3.delete_objects(Bucket=env.buckets.artifacts, Delete={"Objects": batch, "Quiet": True})
        if result.get("Errors"):
            first = result["Errors"][0]
            raise ToolkitError(f"could not delete s3://{env.buckets.artifacts}/{first['Key']}: {first['Message']}")
    echo(f"deleted {len(keys)} objects under s3://{env.buckets.artifacts}/{prefix}")
    removed["objects"] = len(keys)
    try:
        s3.delete_object(Bucket=env.buckets.artifacts, Key=claim_key(env))
    except ClientError as exc:
        raise (AccessDenied.from_client_error(exc) or exc) from None
    echo(f"branch {env.branch!r} (namespace '{env.namespace}') removed from {env.base_name}")
    return removed


def _exists(describe: Callable[..., Any], **kwargs: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        describe(**kwargs)
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "").lower()
        if code in ("ResourceNotFound", "ResourceNotFoundException") or (
            code == "ValidationException"
            and ("not exist" in message or "not found" in message or "could not find" in message)
        ):
            return False
        raise (AccessDenied.from_client_error(exc) or exc) from None
