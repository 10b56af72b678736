"""S3 like AWS for our artefacts: bucket policies with principals and conditions, and SSE-KMS objects
that remember their key so reading them needs kms:Decrypt on it.

AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-auth-workflow-object-operation.html
(cross-account: the bucket policy AND the caller's IAM policy), and
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#aws-managed-customer-managed-keys
(writing needs kms:GenerateDataKey, reading kms:Decrypt, on the object's key, evaluated for the
requester with kms:ViaService = s3.<region>.amazonaws.com). A key id or alias in a request resolves in
the requester's account, as AWS documents; objects record the full key ARN.
"""

from __future__ import annotations

from urllib.parse import unquote

from sandbox.patches.enforcement import ERRORS, AccessDeniedBy, Target, base_context, current, decide, resolver
from sandbox.patches.kms_keys import resolve_key, use_key
from sandbox.patching import Patch

# moto's request names -> IAM actions, where they differ
_IAM_NAMES = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListBuckets": "ListAllMyBuckets",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "GetBucketCORS": "GetBucketCORS",
    "ListBucketVersions": "ListBucketVersions",
}
# bucket sub-resources moto does not name: (method, query key) -> IAM action
_SUBRESOURCES = {
    ("PUT", "encryption"): "PutEncryptionConfiguration",
    ("GET", "encryption"): "GetEncryptionConfiguration",
    ("DELETE", "encryption"): "PutEncryptionConfiguration",
    ("PUT", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("GET", "publicAccessBlock"): "GetBucketPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("PUT", "ownershipControls"): "PutBucketOwnershipControls",
    ("GET", "ownershipControls"): "GetBucketOwnershipControls",
    ("PUT", "object-lock"): "PutBucketObjectLockConfiguration",
    ("GET", "object-lock"): "GetBucketObjectLockConfiguration",
}
VIA = "s3.{region}.amazonaws.com"


def _bucket(name: str):
    from moto.s3.models import s3_backends

    found = s3_backends.bucket_accounts.get(name)
    if not found:
        return None, None
    partition, account = found
    return s3_backends[account][partition].buckets.get(name), account


def _iam_action(response, moto_name: str, has_key: bool) -> str:
    if not has_key:
        for (method, query), action in _SUBRESOURCES.items():
            if response.method == method and query in response.querystring:
                return action
    return _IAM_NAMES.get(moto_name, moto_name)


@resolver("s3")
def _s3(response, action, caller, region, default_resource) -> Target:
    acct = caller.account_id
    path = default_resource.split(":::", 1)[1] if ":::" in default_resource else "*"
    bucket_name, _, key_name = path.partition("/")
    iam_action = "s3:" + _iam_action(response, action, bool(key_name))
    if bucket_name == "*":
        return Target(["*"], acct, policy_kind="none", action=iam_action)
    bucket, owner = _bucket(bucket_name)
    headers = response.headers
    ctx = {
        "s3:x-amz-server-side-encryption": headers.get("x-amz-server-side-encryption"),
        "s3:x-amz-server-side-encryption-aws-kms-key-id": headers.get("x-amz-server-side-encryption-aws-kms-key-id"),
        # conditional writes (PutObject, CompleteMultipartUpload): present only when the request sends them
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
        "s3:if-none-match": headers.get("If-None-Match"),
        "s3:if-match": headers.get("If-Match"),
    }
    if "prefix" in response.querystring:
        ctx["s3:prefix"] = response.querystring["prefix"][0]
    if bucket is None:
        return Target([default_resource], acct, policy_kind="none", context=ctx, action=iam_action)
    policy = bucket.policy.decode() if isinstance(bucket.policy, bytes) else bucket.policy
    target = Target([default_resource], owner, policy=policy, context=ctx, action=iam_action)
    if key_name and iam_action == "s3:PutObject":

        def after(c, state):
            if headers.get("x-amz-copy-source"):
                _check_copy_source(c, headers["x-amz-copy-source"], region)
            _check_write_key(c, state, bucket, owner, headers, region)

        target.after = after
    elif key_name and iam_action in ("s3:GetObject", "s3:GetObjectVersion") and response.method == "GET":
        target.after = lambda c, _state: _check_read_key(c, bucket, owner, key_name, response, region)
    return target


def _check_write_key(caller, state, bucket, owner, headers, region):
    """PutObject with SSE-KMS (asked for, or the bucket's default): the writer needs GenerateDataKey."""
    algorithm = headers.get("x-amz-server-side-encryption")
    key_ref = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
    resolve_in = caller.account_id  # a key named in the request resolves in the requester's account
    if algorithm is None and bucket.encryption:
        default = bucket.encryption["Rule"]["ApplyServerSideEncryptionByDefault"]
        algorithm, key_ref, resolve_in = default.get("SSEAlgorithm"), default.get("KMSMasterKeyID"), owner
    if algorithm not in ("aws:kms", "aws:kms:dsse"):
        return
    if not key_ref:
        return  # the bucket account's AWS managed aws/s3 key: any writer may use it (reads are checked)
    ref = resolve_key(key_ref, resolve_in, region)
    _use(caller, "kms:GenerateDataKey", ref, region)
    state.extra["kms_key_arn"] = ref.arn


def _check_copy_source(caller, source: str, region: str) -> None:
    """CopyObject reads its source: s3:GetObject on it (bucket policy included) and kms:Decrypt on its key."""

    path, _, query = unquote(source).lstrip("/").partition("?")
    bucket_name, _, key_name = path.partition("/")
    bucket, owner = _bucket(bucket_name)
    if bucket is None:
        return  # moto answers NoSuchBucket
    policy = bucket.policy.decode() if isinstance(bucket.policy, bytes) else bucket.policy
    target = Target([f"arn:aws:s3:::{bucket_name}/{key_name}"], owner, policy=policy)
    decide(caller, "s3:GetObject", target, base_context(caller, region, owner))
    version = query.split("versionId=", 1)[1] if "versionId=" in query else None
    _check_object_key(caller, bucket, owner, key_name, version, region)


def _check_read_key(caller, bucket, owner, key_name, response, region):
    _check_object_key(caller, bucket, owner, key_name, response.querystring.get("versionId", [None])[0], region)


def _check_object_key(caller, bucket, owner, key_name, version, region):
    versions = bucket.keys.getlist(key_name, []) if hasattr(bucket.keys, "getlist") else []
    obj = next((v for v in versions if v.version_id == version), None) if version else bucket.keys.get(key_name)
    if obj is None or getattr(obj, "encryption", None) not in ("aws:kms", "aws:kms:dsse"):
        return
    if not obj.kms_key_id:
        if caller.account_id != owner:
            # AWS managed keys cannot be shared: objects under aws/s3 are unreadable from other accounts
            raise AccessDeniedBy(
                caller,
                "kms:Decrypt",
                f"arn:aws:kms:{region}:{owner}:alias/aws/s3",
                "because AWS managed keys cannot be used from another account",
            )
        return
    _use(caller, "kms:Decrypt", resolve_key(obj.kms_key_id, owner, region), region)


def _use(caller, action, ref, region):
    from moto.core.exceptions import JsonRESTError

    try:
        use_key(caller, action, ref, region, via=VIA.format(region=region))
    except JsonRESTError as exc:  # S3 reports KMS's refusal under its own name, e.g. KMS.DisabledException
        raise _s3_error(f"KMS.{exc.error_type}", exc.message, 400) from None


def _s3_error(code: str, message: str, status: int):
    from moto.s3.exceptions import S3ClientError

    err = S3ClientError(code, message)
    err.status_code = status
    return err


def _access_denied(_denied: AccessDeniedBy):
    from moto.s3.exceptions import S3AccessDeniedError

    return S3AccessDeniedError()  # S3 says only "Access Denied", whatever the cause


ERRORS["s3"] = _access_denied


def patch_s3() -> None:
    from moto.s3.models import S3Backend

    put_object = S3Backend.put_object

    def put_object_with_key_arn(self, *args, **kwargs):
        state = current()
        key_arn = state.extra.pop("kms_key_arn", None) if state is not None else None
        obj = put_object(self, *args, **kwargs)
        if key_arn and getattr(obj, "encryption", None) in ("aws:kms", "aws:kms:dsse"):
            obj.kms_key_id = key_arn
        return obj

    S3Backend.put_object = put_object_with_key_arn


PATCH = Patch(
    name="s3-bucket-policies-and-sse-kms",
    adds=(
        "bucket policies with principals/conditions decide cross-account access; SSE-KMS objects "
        "record their key ARN and reading needs kms:Decrypt on it (writing kms:GenerateDataKey)"
    ),
    overrides=("moto.s3.models.S3Backend.put_object",),
    apply=patch_s3,
)
