"""What steps need from the sandbox around them: the endpoint, credentials of the role a step acts
as (minted for the AWS service that assumes it, after checking the role trusts that service),
boto3 clients on those credentials, S3 transfers and CloudWatch log streams."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sandbox.engine import preload
from sandbox.journal import durable, op_headers

REGION_DEFAULT = "us-east-1"
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_state: dict[str, Any] = {"server": None}
_lock = threading.Lock()
_zygote_lock = threading.Lock()


def attach(server: Any) -> None:
    """Remember the running SandboxServer (its port and home) for steps and deliveries."""
    _state["server"] = server


def server() -> Any:
    return _state["server"]


def endpoint() -> str:
    srv = _state["server"]
    if srv is None or not srv.port:
        raise RuntimeError("the sandbox engine runs only inside the sandbox server")
    return f"http://127.0.0.1:{srv.port}"


def work_root() -> Path:
    srv = _state["server"]
    base = Path(srv.home) if srv is not None else Path(os.environ.get("TMPDIR", "/tmp"))
    path = base / "executions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def zygote() -> preload.Zygote | None:
    """The shared pre-forked Python for step scripts, or None when it cannot start."""

    with _zygote_lock:
        if "zygote" not in _state:
            _state["zygote"] = preload.Zygote(work_root().parent / "preload")
    return _state["zygote"] if _state["zygote"].ensure() else None


class RoleNotAssumable(Exception):
    """The role does not exist or does not trust the service that must assume it."""


def trusts(role_arn: str, service: str) -> bool:
    from moto.iam.models import iam_backends

    account = role_arn.split(":")[4]
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:
        raise RoleNotAssumable(f"role {role_arn} does not exist") from None
    document = role.assume_role_policy_document
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        principal = st.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if (
            st.get("Effect") == "Allow"
            and service in services
            and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
        ):
            return True
    return False


def role_credentials(role_arn: str, service: str, session_name: str, region: str = REGION_DEFAULT) -> dict:
    """Temporary credentials of `role_arn` as `service` (sagemaker/lambda/events.amazonaws.com)
    would obtain them: only if the role's trust policy allows that service."""
    # minting them changes STS state: a journaled operation, so requests signed with them replay
    return _mint_role_credentials(role_arn=role_arn, service=service, session_name=session_name, region=region)


@durable("engine.role-credentials")
def _mint_role_credentials(role_arn: str, service: str, session_name: str, region: str) -> dict:
    from moto.sts.models import AssumedRole, sts_backends

    if not trusts(role_arn, service):
        raise RoleNotAssumable(
            f"{service} is not trusted by {role_arn} (its trust policy must allow "
            f"sts:AssumeRole for the service principal)"
        )
    account = role_arn.split(":")[4]
    backend = sts_backends[account]["aws"]
    with _lock:
        _, access_key = backend._create_access_key(role=role_arn)
        assumed = AssumedRole(
            account_id=account,
            region_name=region,
            access_key=access_key,
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy=None,
            duration=3600,
            external_id=None,
        )
        access_key.role_arn = role_arn
        backend.assumed_roles.append(assumed)
    return {
        "AWS_ACCESS_KEY_ID": assumed.access_key_id,
        "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
        "AWS_SESSION_TOKEN": assumed.session_token,
    }


def client(service: str, creds: dict, region: str = REGION_DEFAULT) -> Any:
    import boto3
    from botocore.config import Config

    made = boto3.client(
        service,
        endpoint_url=endpoint(),
        region_name=region,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )
    # a call made during a journaled operation (an EventBridge delivery starting a pipeline) runs
    # as part of it, not behind it
    made.meta.events.register("before-send", _mark_operation)
    return made


def _mark_operation(request, **_):
    request.headers.update(op_headers())


def process_env(creds: dict, region: str) -> dict:
    """The environment a step subprocess sees: plain boto3 in it reaches the sandbox as the role."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(creds)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint(),
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


# -- S3 -------------------------------------------------------------------------------------------
def split_s3(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def download(s3: Any, uri: str, dest: Path) -> int:
    """Copy an object or every object under a prefix into `dest` (a directory); returns the count."""
    objects = list_objects(s3, uri)
    if not objects:
        raise FileNotFoundError(f"no object at {uri}")
    return download_objects(s3, uri, objects, dest)


def list_objects(s3: Any, uri: str) -> list[tuple[str, str]]:
    """(key, path relative to the prefix) of the object at `uri` or of every object under it, by key."""
    bucket, key = split_s3(uri)
    found = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            name = obj["Key"]
            if name.endswith("/"):
                continue
            if name == key:
                rel = Path(key).name
            elif key == "" or key.endswith("/") or name.startswith(key + "/"):
                rel = name[len(key) :].lstrip("/")
            else:
                continue  # "prefix" matched a sibling such as data.csv.bak
            found.append((name, rel))
    return found


def download_objects(s3: Any, uri: str, objects: list[tuple[str, str]], dest: Path) -> int:
    """Download `objects` (from list_objects) of `uri`'s bucket into `dest`, which exists afterwards."""
    bucket, _ = split_s3(uri)
    dest.mkdir(parents=True, exist_ok=True)
    for name, rel in objects:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if _copy_stored(s3, bucket, name, target):
            continue
        # one streamed GET: the transfer manager's ranged, threaded GETs cost twice as much against the
        # sandbox, which serves them in this very process
        body = s3.get_object(Bucket=bucket, Key=name)["Body"]
        with open(target, "wb") as handle:
            for chunk in body.iter_chunks(1 << 20):
                handle.write(chunk)
    return len(objects)


def _copy_stored(s3: Any, bucket: str, name: str, target: Path) -> bool:
    """Copy an object's bytes straight from the store this process serves, after S3 has authorised the
    instance's GetObject: a one-byte ranged GetObject as the job's role is the same action on the same
    object (bucket policy, role policy, KMS decrypt of an encrypted object), so a role that may not read it
    fails here as it would on AWS. The bytes copied are those of the version that GET answered for (same
    ETag and version id), else False and the caller streams the whole object through the API. Streaming a
    batch through this process's own HTTP server costs CPU the instances' work then waits for; a copy of an
    object moto keeps on disk does not even pass through this process (_copy_spilled). False too when the
    store is not in this process (the engine's code run elsewhere) or for an empty object."""
    from botocore.exceptions import ClientError
    from moto.s3.models import s3_backends

    located = s3_backends.bucket_accounts.get(bucket)
    if located is None:
        return False
    try:
        answered = s3.get_object(Bucket=bucket, Key=name, Range="bytes=0-0")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
            return False
        raise
    answered["Body"].read()
    partition, account = located
    try:
        stored = s3_backends[account][partition].get_object(bucket, name, version_id=answered.get("VersionId"))
    except Exception:  # deleted or replaced meanwhile: the API answers for what is there now
        return False
    if stored is None or stored.etag != answered.get("ETag"):
        return False
    with open(target, "wb") as handle:
        try:
            if not _copy_spilled(stored, handle.fileno()):
                handle.write(stored.value)
        except (OSError, ValueError):  # overwritten meanwhile and its bytes let go: the API answers
            handle.truncate(0)
            return False
    return True


def _copy_spilled(stored: Any, target_fd: int) -> bool:
    """Copy an object moto keeps in a file of its own (it spills objects above a few MB to disk) inside the
    kernel (copy_file_range), without reading its bytes into this process; False for one kept in memory,
    or where the kernel cannot copy between the two files (the target is then left empty)."""
    spooled = getattr(stored, "_value_buffer", None)
    if spooled is None or not getattr(spooled, "_rolled", False):
        return False
    with stored.lock:
        source, size, copied = spooled.fileno(), stored.size, 0
        try:
            while copied < size:
                step = os.copy_file_range(source, target_fd, size - copied, copied, copied)
                if step == 0:
                    break
                copied += step
        except OSError:
            copied = 0
        if copied != size:
            os.ftruncate(target_fd, 0)
            return False
    return True


def upload_dir(s3: Any, source: Path, uri: str, kms_key: str | None = None) -> int:
    bucket, prefix = split_s3(uri)
    count = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        key = "/".join(filter(None, [prefix.rstrip("/"), path.relative_to(source).as_posix()]))
        upload_file(s3, path, f"s3://{bucket}/{key}", kms_key)
        count += 1
    return count


def upload_file(s3: Any, path: Path, uri: str, kms_key: str | None = None) -> None:
    bucket, key = split_s3(uri)
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
    with open(path, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=key, Body=fh.read(), **extra)


# -- CloudWatch Logs ------------------------------------------------------------------------------
def write_log(account: str, region: str, group: str, stream: str, text: str) -> None:
    """Store a step's output as a CloudWatch log stream of the pipeline's account, as the service does."""
    from moto.logs.models import logs_backends

    backend = logs_backends[account][region]
    lines = text.splitlines() or ["(no output)"]
    now = int(time.time() * 1000)
    with _lock:
        backend.ensure_log_group(group)
        if stream not in backend.groups[group].streams:
            backend.create_log_stream(group, stream)
        for start in range(0, len(lines), 5000):
            backend.put_log_events(
                group, stream, [{"timestamp": now, "message": line[:8000]} for line in lines[start : start + 5000]]
            )
