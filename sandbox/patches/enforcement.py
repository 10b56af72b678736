"""Who may do what: IAM identity policies, resource policies and cross-account rules on every request.

moto's own check evaluates identity policies against "*" outside S3/SQS/IAM/STS and ignores resource
policies. This replaces it with AWS's evaluation logic
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html):
an explicit Deny anywhere wins; inside the resource's account an identity Allow or a resource-policy
Allow naming the caller suffices; across accounts both the caller's identity policy and the resource's
policy must allow; KMS keys need their key policy (an account-root grant delegates to IAM); AssumeRole
needs the role's trust policy.

Each service contributes a small resolver (request -> resource ARNs, owning account, resource policy);
sagemaker/kms/s3 patches read `current()` to act in the owning account and to re-check KMS use.
Requests reach the sandbox over plain HTTP on loopback, but it stands in for AWS's HTTPS endpoints, so
`aws:SecureTransport` is true for every request.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sandbox import iam_policy
from sandbox.iam_policy import Principal
from sandbox.patching import Patch

PARTITION = "aws"
_local = threading.local()


# -- who is calling ---------------------------------------------------------------------------------
@dataclass
class Caller:
    principal: Principal
    policies: list = field(default_factory=list)  # identity policy documents (text or dict)
    session_policy: str | None = None
    kind: str = "user"  # user | role | anonymous
    access_key_id: str = ""
    principal_id: str = ""  # AIDA... for a user, AROA...:<session> for a role session (as CloudTrail shows)
    source_identity: str | None = None  # STS source identity carried by a role session
    session_issued: Any = None  # a datetime: when the role session was created (CloudTrail's creationDate)

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    @property
    def arn(self) -> str:
        return self.principal.arn


@dataclass
class Target:
    """What a request acts on, as far as authorization is concerned."""

    resources: list[str]
    owner_account: str
    policy: Any = None  # resource policy document, or None
    policy_kind: str = "resource"  # resource | key | trust | none
    context: dict = field(default_factory=dict)
    missing: bool = False  # resource named in another account that does not exist
    extra_actions: list = field(default_factory=list)  # also required, e.g. sts:TagSession with Tags
    after: Callable | None = None  # further checks once allowed (S3 -> KMS on the caller's behalf)
    action: str | None = None  # the IAM action when it differs from the API's name


@dataclass
class RequestState:
    caller: Caller
    service: str
    action: str
    region: str
    owner_account: str | None = None
    extra: dict = field(default_factory=dict)


def current() -> RequestState | None:
    """The request being served on this thread (set once it is authorized)."""
    return getattr(_local, "state", None)


class AccessDeniedBy(Exception):
    """Raised by the evaluation helpers; turned into the service's own error shape at the edge."""

    def __init__(self, caller: Caller, action: str, resource: str, reason: str):
        super().__init__(reason)
        self.caller, self.action, self.resource, self.reason = caller, action, resource, reason

    def message(self) -> str:
        text = f"User: {self.caller.arn} is not authorized to perform: {self.action} on resource: {self.resource}"
        return f"{text} {self.reason}" if self.reason else text


def _iam(account_id: str):
    from moto.iam.models import iam_backends

    return iam_backends[account_id][PARTITION]


def identify(response: Any) -> Caller:
    """The caller of a signed request, with a checked signature (moto's credentials, AWS's rules)."""
    from moto.core.exceptions import SignatureDoesNotMatchError

    headers = response.headers
    authorization = headers.get("Authorization", "")
    if not authorization:
        return _presigned_caller(response)
    scope = _between(authorization, "Credential=", ",").split("/")
    caller, secret, token = _caller_for_key(response.current_account, scope[0], headers.get("X-Amz-Security-Token"))
    if _signature(response, scope, scope[0], secret, token) != _between(authorization, "Signature=", ","):
        raise SignatureDoesNotMatchError()
    return caller


def _presigned_caller(response) -> Caller:
    # a presigned URL carries its credentials in the query; moto's S3 layer checks its signature
    from moto.iam.models import get_account_id_from

    query = getattr(response, "querystring", {}) or {}
    key_id = (
        (query.get("X-Amz-Credential") or [""])[0].split("/")[0]  # SigV4
        or (query.get("AWSAccessKeyId") or [""])[0]
    )  # SigV2
    if not key_id:
        return Caller(Principal(account_id="", arn="anonymous", anonymous=True), kind="anonymous")
    token = (query.get("X-Amz-Security-Token") or query.get("x-amz-security-token") or [None])[0]
    return _caller_for_key(get_account_id_from(key_id), key_id, token)[0]


def _caller_for_key(account_id: str, key_id: str, token: str | None) -> tuple[Caller, str, str | None]:
    from moto.core.exceptions import InvalidClientTokenIdError

    iam = _iam(account_id)
    access_key = iam.access_keys.get(key_id)
    if access_key is None:
        raise InvalidClientTokenIdError()
    if access_key.role_arn:
        assumed = _assumed_role(account_id, key_id)
        if assumed is None or token != assumed.session_token:
            raise InvalidClientTokenIdError()
        role = _role_by_arn(account_id, assumed.role_arn)
        principal = Principal(
            account_id=account_id, arn=assumed.arn, principal_arn=role.arn if role else assumed.role_arn
        )
        caller = Caller(
            principal,
            policies=_role_policies(role) if role else [],
            session_policy=assumed.policy or None,
            kind="role",
            access_key_id=key_id,
            principal_id=f"{role.id if role else 'AROA'}:{assumed.session_name}",
            source_identity=getattr(assumed, "source_identity", None),
            session_issued=getattr(assumed, "created", None),
        )
        return caller, assumed.secret_access_key, assumed.session_token
    user = iam.users.get(access_key.user_name)
    user_arn = user.arn if user else f"arn:aws:iam::{account_id}:user/{access_key.user_name}"
    caller = Caller(
        Principal(account_id=account_id, arn=user_arn, principal_arn=user_arn),
        policies=_user_policies(iam, user) if user else [],
        kind="user",
        access_key_id=key_id,
        principal_id=user.id if user else "",
    )
    return caller, access_key.secret_access_key, None


def _assumed_role(account_id: str, key_id: str):
    from moto.sts.models import sts_backends

    for assumed in sts_backends[account_id][PARTITION].assumed_roles:
        if assumed.access_key_id == key_id:
            return assumed
    return None


def _role_by_arn(account_id: str, arn: str):
    name = arn.split("/")[-1]
    for role in _iam(account_id).roles.values():
        if role.name == name:
            return role
    return None


def _managed_document(policy) -> str:
    return next(v.document for v in policy.versions if v.is_default)


def _role_policies(role) -> list:
    return list(role.policies.values()) + [_managed_document(p) for p in role.managed_policies.values()]


def _user_policies(iam, user) -> list:
    docs = list(user.policies.values()) + [_managed_document(p) for p in user.managed_policies.values()]
    for group in iam.get_groups_for_user(user.name):
        docs += list(group.policies.values()) + [_managed_document(p) for p in group.managed_policies.values()]
    return docs


def caller_for_role(role_arn: str, session_name: str = "sandbox") -> Caller:
    """A caller acting as `role_arn` (for sandbox engines that act with a role, e.g. a pipeline step or
    an EventBridge target), evaluated with that role's identity policies."""
    account_id = role_arn.split(":")[4]
    role = _role_by_arn(account_id, role_arn)
    name = role_arn.split("/")[-1]
    principal = Principal(
        account_id=account_id,
        arn=f"arn:aws:sts::{account_id}:assumed-role/{name}/{session_name}",
        principal_arn=role.arn if role else role_arn,
    )
    return Caller(principal, policies=_role_policies(role) if role else [], kind="role")


def _between(text: str, start: str, end: str) -> str:
    return text.partition(start)[2].partition(end)[0]


def _signature(response, scope, key_id, secret, token) -> str:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = response.headers
    signed = _between(headers["Authorization"], "SignedHeaders=", ",").split(";")
    path = response.raw_path
    query = response.parsed_url.query
    if query:
        path += "?" + query
    body = response.raw_body or response.data
    if headers.get("Content-Encoding") == "gzip":
        # the SDK compresses large bodies (CloudWatch PutMetricData) and signs the compressed bytes; moto
        # keeps only the decompressed body, the server's input stream still holds what was sent
        sent = response.normalized_request.environ.get("wsgi.input")
        if isinstance(sent, io.BytesIO):
            body = sent.getvalue()
    if response.method in ("GET", "HEAD", "DELETE") and not isinstance(body, (bytes, str)):
        body = b""  # moto's Lambda responses keep the headers in `data` when a GET has no body
    request = AWSRequest(
        method=response.method, url=path, data=body, headers={k: v for k, v in headers.items() if k.lower() in signed}
    )
    request.context["timestamp"] = headers.get("X-Amz-Date")
    auth_cls = S3SigV4Auth if scope[3] == "s3" else SigV4Auth
    auth = auth_cls(Credentials(key_id, secret, token), scope[3], scope[2])
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


# -- the decision -----------------------------------------------------------------------------------
def base_context(caller: Caller, region: str, owner_account: str) -> dict:
    p = caller.principal
    ctx = {"aws:SecureTransport": True, "aws:RequestedRegion": region, "aws:ResourceAccount": owner_account}
    if not p.anonymous:
        ctx.update(
            {
                "aws:PrincipalAccount": p.account_id,
                "aws:PrincipalArn": p.principal_arn,
                "aws:PrincipalType": "AssumedRole" if caller.kind == "role" else "User",
            }
        )
        if caller.kind == "user":
            ctx["aws:username"] = p.principal_arn.split("/")[-1]
        if caller.source_identity:
            # present in every request of a session whose source identity is set
            # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-sourceidentity)
            ctx["aws:SourceIdentity"] = caller.source_identity
    return ctx


def decide(caller: Caller, action: str, target: Target, context: dict) -> None:
    """Raise AccessDeniedBy unless AWS would allow `caller` to do `action` on `target`."""
    resource = target.resources[0]
    if caller.kind == "anonymous":
        identity = iam_policy.Result()
    else:
        identity = iam_policy.evaluate(caller.policies, action, target.resources, context)
        if caller.session_policy and identity.allowed and not identity.denied:
            session = iam_policy.evaluate([caller.session_policy], action, target.resources, context)
            identity.denied = identity.denied or session.denied
            identity.allowed = session.allowed
    if identity.denied:
        raise AccessDeniedBy(caller, action, resource, "with an explicit deny in an identity-based policy")
    cross_account = caller.account_id != target.owner_account
    if target.missing and cross_account:
        raise AccessDeniedBy(caller, action, resource, f"because no resource-based policy allows the {action} action")
    if target.policy_kind == "none" or (target.policy is None and target.policy_kind == "resource"):
        if cross_account:
            raise AccessDeniedBy(
                caller, action, resource, f"because no resource-based policy allows the {action} action"
            )
        if not identity.allowed:
            raise AccessDeniedBy(
                caller, action, resource, f"because no identity-based policy allows the {action} action"
            )
        return
    held = iam_policy.evaluate(
        [target.policy] if target.policy else [], action, target.resources, context, principal=caller.principal
    )
    if held.denied:
        raise AccessDeniedBy(caller, action, resource, "with an explicit deny in a resource-based policy")
    if target.policy_kind == "key":
        # a key policy is the only source of authority over a key: an account grant delegates to IAM
        if not held.allowed:
            raise AccessDeniedBy(
                caller, action, resource, f"because no resource-based policy allows the {action} action"
            )
        if (cross_account or not held.allowed_specifically) and not identity.allowed:
            raise AccessDeniedBy(
                caller, action, resource, f"because no identity-based policy allows the {action} action"
            )
        return
    if target.policy_kind == "trust":
        if not held.allowed:
            raise AccessDeniedBy(caller, action, resource, "")
        if (cross_account or not held.allowed_specifically) and not identity.allowed:
            raise AccessDeniedBy(caller, action, resource, "")
        return
    if cross_account:
        if not held.allowed:
            raise AccessDeniedBy(
                caller, action, resource, f"because no resource-based policy allows the {action} action"
            )
        if not identity.allowed:
            raise AccessDeniedBy(
                caller, action, resource, f"because no identity-based policy allows the {action} action"
            )
        return
    if not (identity.allowed or held.allowed_specifically):
        raise AccessDeniedBy(caller, action, resource, f"because no identity-based policy allows the {action} action")


def check(caller: Caller, action: str, target: Target, region: str) -> None:
    """Evaluate one (possibly implied) action, e.g. S3 using KMS on the caller's behalf."""
    context = base_context(caller, region, target.owner_account)
    context.update(target.context)
    decide(caller, action, target, context)


# -- resolvers: request -> Target, one per service --------------------------------------------------
RESOLVERS: dict[str, Callable] = {}
ERRORS: dict[str, Callable] = {}


def resolver(service: str) -> Callable[[Callable], Callable]:
    def register(func):
        RESOLVERS[service] = func
        return func

    return register


def param(response: Any, name: str, default: Any = None) -> Any:
    try:
        value = response._get_param(name)
    except Exception:  # a body that is not JSON or a query string
        value = None
    return default if value is None else value


def arn_account(arn: str | None, default: str) -> str:
    if arn and arn.startswith("arn:"):
        parts = arn.split(":")
        if len(parts) > 4 and parts[4]:
            return parts[4]
    return default


@resolver("sts")
def _sts(response, action: str, caller: Caller, _region: str, _default_resource: str) -> Target:
    if action != "AssumeRole":
        return Target(["*"], caller.account_id, policy_kind="none")
    role_arn = param(response, "RoleArn", "")
    owner = arn_account(role_arn, caller.account_id)
    role = _role_by_arn(owner, role_arn) if role_arn.startswith("arn:") else None
    ctx = {"sts:ExternalId": param(response, "ExternalId"), "sts:RoleSessionName": param(response, "RoleSessionName")}
    resource = role.arn if role else role_arn
    source_identity = _source_identity(response, caller, resource)
    tags = _query_list(response, "Tags.member", ("Key", "Value"))
    if tags:
        ctx.update({f"aws:RequestTag/{k}": v for k, v in tags})
        ctx["aws:TagKeys"] = [k for k, _ in tags]
    target = Target(
        [role.arn if role else role_arn],
        owner,
        policy=role.assume_role_policy_document if role else None,
        policy_kind="trust",
        context=ctx,
    )
    if role is None:
        # AWS answers AccessDenied, not NoSuchEntity, for a role that does not exist
        target.policy = {"Statement": []}
    if tags:
        target.extra_actions = ["sts:TagSession"]
    if source_identity:
        # Setting a source identity, or carrying one into a chained session, needs sts:SetSourceIdentity
        # in the role's trust policy (and, across accounts or in a chain, the caller's own policy).
        ctx["sts:SourceIdentity"] = source_identity
        target.extra_actions.append("sts:SetSourceIdentity")
    state = current()
    if state is not None:
        state.extra["source_identity"] = source_identity
    return target


_SOURCE_IDENTITY = re.compile(r"^[\w+=,.@-]{2,64}$")


def _source_identity(response, caller: Caller, role_arn: str) -> str | None:
    """The source identity the new session will carry: the caller's, which a chained AssumeRole may
    repeat but never change, else the one requested (AWS: id_credentials_temp_control-access_monitor)."""
    requested = param(response, "SourceIdentity")
    if requested is not None and (not _SOURCE_IDENTITY.match(requested) or requested.lower().startswith("aws:")):
        raise SourceIdentityInvalid(requested)
    carried = caller.source_identity
    if carried and requested and requested != carried:
        raise AccessDeniedBy(
            caller,
            "sts:SetSourceIdentity",
            role_arn,
            f"because the source identity of this role session ({carried}) cannot be changed to {requested}",
        )
    return carried or requested


class SourceIdentityInvalid(Exception):
    def __init__(self, value: str):
        super().__init__(
            f"1 validation error detected: Value '{value}' at 'sourceIdentity' failed to satisfy constraint: "
            "Member must have length between 2 and 64, match [\\w+=,.@-]* and not begin with aws:"
        )


def _query_list(response, prefix: str, fields: tuple[str, str]) -> list[tuple[str, str]]:
    qs = getattr(response, "querystring", {}) or {}
    out, i = [], 1
    while f"{prefix}.{i}.{fields[0]}" in qs:
        out.append((qs[f"{prefix}.{i}.{fields[0]}"][0], qs.get(f"{prefix}.{i}.{fields[1]}", [""])[0]))
        i += 1
    return out


@resolver("iam")
def _iam_resource(response, action, caller, _region, _default_resource) -> Target:
    acct = caller.account_id
    for name_param, kind in (
        ("RoleName", "role"),
        ("UserName", "user"),
        ("GroupName", "group"),
        ("InstanceProfileName", "instance-profile"),
    ):
        name = param(response, name_param)
        if name:
            if kind == "role":
                role = _role_by_name(acct, name)
                if role is not None:
                    return Target([role.arn], acct, policy_kind="none")
            path = param(response, "Path", "/") if action.startswith("Create") else "/"
            return Target([f"arn:aws:iam::{acct}:{kind}{path}{name}"], acct, policy_kind="none")
    policy_arn = param(response, "PolicyArn")
    if policy_arn:
        return Target([policy_arn], acct, policy_kind="none")
    if action == "CreatePolicy":
        path = param(response, "Path", "/")
        return Target(
            [f"arn:aws:iam::{acct}:policy{path}{param(response, 'PolicyName', '')}"], acct, policy_kind="none"
        )
    return Target(["*"], acct, policy_kind="none")


def _role_by_name(account_id: str, name: str):
    try:
        return _iam(account_id).get_role(name)
    except Exception:
        return None


@resolver("sns")
def _sns(response, action, caller, region, _default_resource) -> Target:
    topic_arn = param(response, "TopicArn") or param(response, "TargetArn") or param(response, "ResourceArn")
    if not topic_arn and action == "CreateTopic":
        topic_arn = f"arn:aws:sns:{region}:{caller.account_id}:{param(response, 'Name', '')}"
    if not topic_arn:
        return Target(["*"], caller.account_id, policy_kind="none")
    owner = arn_account(topic_arn, caller.account_id)
    policy = None
    try:
        from moto.sns.models import sns_backends

        topic = sns_backends[owner][topic_arn.split(":")[3] or region].topics.get(topic_arn)
        policy = topic._policy_json if topic is not None else None
    except Exception:
        policy = None
    return Target([topic_arn], owner, policy=policy)


@resolver("events")
def _events(response, action, caller, region, _default_resource) -> Target:
    acct = caller.account_id
    name = param(response, "Rule") or (
        param(response, "Name")
        if "Rule" in action or action in ("PutRule", "DeleteRule", "DescribeRule", "EnableRule", "DisableRule")
        else None
    )
    bus = param(response, "EventBusName")
    if name:
        if name.startswith("arn:"):
            return Target([name], arn_account(name, acct), policy_kind="none")
        path = f"{bus}/{name}" if bus and bus != "default" else name
        return Target([f"arn:aws:events:{region}:{acct}:rule/{path}"], acct, policy_kind="none")
    if action == "PutEvents":
        return Target([f"arn:aws:events:{region}:{acct}:event-bus/default"], acct, policy_kind="none")
    resource_arn = param(response, "ResourceARN")
    if resource_arn:
        return Target([resource_arn], arn_account(resource_arn, acct), policy_kind="none")
    return Target(["*"], acct, policy_kind="none")


_FUNCTION_IN_PATH = re.compile(r"/functions/([^/]+)")


@resolver("lambda")
def _lambda(response, action, caller, region, _default_resource) -> Target:
    acct = caller.account_id
    name = None
    if action == "CreateFunction":
        name = param(response, "FunctionName")
    else:
        match = _FUNCTION_IN_PATH.search(response.path or "")
        name = unquote(match.group(1)) if match else None
    if not name:
        return Target(["*"], acct, policy_kind="none")
    if name.startswith("arn:"):
        return Target([name], arn_account(name, acct), policy_kind="none")
    return Target([f"arn:aws:lambda:{region}:{acct}:function:{name}"], acct, policy_kind="none")


@resolver("logs")
def _logs(response, _action, caller, region, _default_resource) -> Target:
    acct = caller.account_id
    group = param(response, "logGroupName")
    if not group:
        return Target(["*"], acct, policy_kind="none")
    base = f"arn:aws:logs:{region}:{acct}:log-group:{group}"
    stream = param(response, "logStreamName")
    candidates = [f"{base}:*", base] + ([f"{base}:log-stream:{stream}"] if stream else [])
    return Target(candidates, acct, policy_kind="none")


@resolver("dynamodb")
def _dynamodb(response, _action, caller, region, _default_resource) -> Target:
    table = param(response, "TableName") or param(response, "ResourceArn")
    if not table:
        return Target(["*"], caller.account_id, policy_kind="none")
    if table.startswith("arn:"):
        return Target([table], arn_account(table, caller.account_id), policy_kind="none")
    return Target(
        [f"arn:aws:dynamodb:{region}:{caller.account_id}:table/{table}"], caller.account_id, policy_kind="none"
    )


# -- iam:PassRole: handing a role to a service is a permission of its own -----------------------------
# (service, API action) -> (where the role ARN is in the request, the service the role is passed to)
PASSED_ROLES = {
    ("sagemaker", "CreatePipeline"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "UpdatePipeline"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateTrainingJob"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateProcessingJob"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateModel"): ("ExecutionRoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateHyperParameterTuningJob"): ("TrainingJobDefinition.RoleArn", "sagemaker.amazonaws.com"),
    ("lambda", "CreateFunction"): ("Role", "lambda.amazonaws.com"),
    ("lambda", "UpdateFunctionConfiguration"): ("Role", "lambda.amazonaws.com"),
    ("events", "PutTargets"): ("Targets[].RoleArn", "events.amazonaws.com"),
}


def passed_roles(response: Any, service: str, api_action: str) -> list[tuple[str, str]]:
    where = PASSED_ROLES.get((service, api_action))
    if where is None:
        return []
    path, to_service = where
    if path.endswith("[].RoleArn"):
        items = param(response, path.split("[]")[0]) or []
        arns = [t.get("RoleArn") for t in items if isinstance(t, dict)]
    elif "." in path:
        outer, inner = path.split(".", 1)
        arns = [(param(response, outer) or {}).get(inner)]
    else:
        arns = [param(response, path)]
    return [(arn, to_service) for arn in arns if isinstance(arn, str) and arn]


def check_pass_role(caller: Caller, role_arn: str, to_service: str, region: str) -> None:
    """AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html. A role of
    another account can never be passed."""
    target = Target(
        [role_arn],
        arn_account(role_arn, caller.account_id),
        policy_kind="none",
        context={"iam:PassedToService": to_service},
    )
    check(caller, "iam:PassRole", target, region)


# -- error shapes -----------------------------------------------------------------------------------
def _json_denied(denied: AccessDeniedBy, status: int = 400):
    from moto.core.exceptions import JsonRESTError

    err = JsonRESTError("AccessDeniedException", denied.message())
    err.code = status
    return err


def _query_denied(code: str):
    def make(denied: AccessDeniedBy):
        from moto.core.exceptions import _RESTError as RESTError  # the XML error shape of query APIs

        err = RESTError(code, denied.message())
        err.code = 403
        return err

    return make


for _service in ("sagemaker", "kms", "events", "logs"):
    ERRORS[_service] = _json_denied
ERRORS["lambda"] = lambda d: _json_denied(d, 403)
ERRORS["iam"] = ERRORS["sts"] = _query_denied("AccessDenied")
ERRORS["sns"] = _query_denied("AuthorizationError")


def service_error(service: str, denied: AccessDeniedBy) -> Exception:
    return ERRORS.get(service, _query_denied("AccessDenied"))(denied)


# -- the hook moto calls before serving each request ------------------------------------------------
def authenticate_and_authorize(response: Any, iam_request_cls: Any, resource: str = "*") -> None:
    if response.headers.get("X-Amz-Target") in ("AWSCognitoIdentityService.GetId",):
        return
    caller = identify(response)
    is_s3 = getattr(iam_request_cls, "__name__", "") == "S3IAMRequest"
    service = "s3" if is_s3 else _signing_service(response)
    api_action = response._get_action() if not is_s3 else response.data.get("Action", "")
    if isinstance(api_action, list):
        api_action = api_action[0]
    action = f"{service}:{api_action}"
    region = response.region
    state = RequestState(caller, service, action, region)
    _local.state = state
    if action == "sts:GetCallerIdentity":
        return  # always allowed, even under an explicit Deny (AWS documents this)
    resolve = RESOLVERS.get(service)
    try:
        if resolve is None:
            target = Target([resource or "*"], caller.account_id, policy_kind="none")
        else:
            target = resolve(response, api_action, caller, region, resource)
        state.owner_account = target.owner_account
        if target.action:
            action = state.action = target.action
        context = base_context(caller, region, target.owner_account)
        context.update(target.context)
        decide(caller, action, target, context)
        for implied in target.extra_actions:
            decide(caller, implied, target, context)
        for role_arn, to_service in passed_roles(response, service, api_action):
            check_pass_role(caller, role_arn, to_service, region)
        if target.after is not None:
            target.after(caller, state)
    except AccessDeniedBy as denied:
        raise service_error(service, denied) from None
    except SourceIdentityInvalid as invalid:
        from moto.core.exceptions import _RESTError as RESTError

        err = RESTError("ValidationError", str(invalid))
        err.code = 400
        raise err from None


def _signing_service(response) -> str:
    authorization = response.headers.get("Authorization", "")
    if authorization:
        return _between(authorization, "Credential=", ",").split("/")[3]
    return response.service_name


def enable_enforcement() -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_and_authorize
    # bucket policies are evaluated here with principals and conditions; moto's partial check would
    # deny TLS-only policies outright (it sees no aws:SecureTransport)
    FakeBucket.get_permission = lambda *_: PermissionResult.NEUTRAL


PATCH = Patch(
    name="iam-enforcement",
    adds=(
        "every request is authorized like AWS: identity policies on real resource "
        "ARNs, resource/key/trust policies, cross-account needs both sides"
    ),
    overrides=(
        "moto.core.authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action",
        "moto.s3.models.FakeBucket.get_permission",
        "moto.settings.INITIAL_NO_AUTH_ACTION_COUNT",
    ),
    apply=enable_enforcement,
)
