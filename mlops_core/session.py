"""Cross-account sessions: from the caller's credentials, assume the environment's roles.

Who acts is the STS source identity, set once by the first AssumeRole of a chain and carried by AWS
through every later one (it cannot be changed inside a chain). On AWS it comes from the sign-in: SSO
(IAM Identity Center), a SAML IdP's `https://aws.amazon.com/SAML/Attributes/SourceIdentity` attribute
or an OIDC token's `https://aws.amazon.com/source_identity` claim. A caller whose credentials carry none
(an IAM user, a Jenkins agent, the sandbox's account admin) names itself with `--as NAME` or
`MLOPS_AS=NAME`: the toolkit passes it as SourceIdentity on its first AssumeRole only. Session names
(Jenkins BUILD_TAG or the local user) are for reading CloudTrail, never for deciding who acted.

Sessions are cached per (role, source) and refresh themselves before expiry, so a long `--wait`
outlives the one-hour STS credentials.
"""

from __future__ import annotations

import getpass
import os
import re
import threading
from typing import Any

from mlops_core.backend import Backend, BotoSession, backend_for
from mlops_core.config import Environment
from mlops_core.errors import AccessDenied, ConfigError

_SESSION_NAME_CHARS = re.compile(r"[^\w+=,.@-]")
# AWS's SourceIdentity: 2-64 characters of [\w+=,.@-], not starting with "aws:"
_SOURCE_IDENTITY = re.compile(r"^[\w+=,.@-]{2,64}$")
LOGIN_VARIABLE = "MLOPS_AS"
_LOADER: dict[str, Any] = {}
_LOADER_LOCK = threading.Lock()


def share_service_models(session: BotoSession) -> BotoSession:
    """Make `session` read AWS service models through one loader per process. botocore parses a
    service's model JSON (SageMaker's is megabytes) once per loader and every session has its own, so a
    command that assumes three roles parsed each model three times: most of its run time."""
    core = getattr(session, "_session", None)  # boto3 exposes its botocore session by this name only
    if core is None:
        return session
    own = core.get_component("data_loader")
    with _LOADER_LOCK:
        loader = _LOADER.setdefault("loader", own)
    if own is not loader:
        core.register_component("data_loader", loader)
    return session


def login_identity(value: str | None = None, *, field: str = LOGIN_VARIABLE) -> str | None:
    """The person (or service) acting, from `--as` or MLOPS_AS; None when neither is set."""
    value = value if value is not None else os.environ.get(LOGIN_VARIABLE)
    if not value:
        return None
    if not _SOURCE_IDENTITY.match(value) or value.lower().startswith("aws:"):
        raise ConfigError(
            f"'{value}' is not a valid source identity (2-64 letters, digits or _+=,.@-, not starting aws:)",
            field=field,
        )
    return value


def session_name(purpose: str, who: str | None = None) -> str:
    """`<who>@<purpose>` limited to the 64 characters and the alphabet STS accepts."""
    who = who or os.environ.get("BUILD_TAG") or _local_user()
    name = _SESSION_NAME_CHARS.sub("-", f"{who}@{purpose}")
    return name[:64] if len(name) >= 2 else "mlops-toolkit"


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown-user"


class Sessions:
    """Every boto3 session a command needs for one environment, created once and reused."""

    def __init__(
        self,
        env: Environment,
        backend: Backend | None = None,
        *,
        who: str | None = None,
        profile: str | None = None,
        identity: str | None = None,
    ) -> None:
        self.env = env
        self.backend = backend or backend_for(env, profile)
        self.identity = login_identity(identity)
        self.who = who or self.identity
        self._cache: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self._source_identity: dict = {}  # id(session) -> the SourceIdentity STS returned for it

    # -- plumbing -------------------------------------------------------------------------------
    def client(self, service: str, session: BotoSession | None = None) -> Any:
        """A client for `service` on `session` (default: the workload session), pointed at the backend."""
        session = session or self.workload()
        return session.client(
            service, endpoint_url=self.backend.endpoint_url, config=self.backend.botocore_config(self.env.region)
        )

    def base(self, account_id: str | None = None) -> BotoSession:
        """The caller's own credentials for acting in `account_id`. Where the backend has a login role (the
        sandbox), a named caller first logs in: its first AssumeRole, which sets the source identity."""
        key = ("base", account_id)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        account_id = account_id or self.env.account_id
        session = share_service_models(self.backend.base_session(self.env.region, account_id))
        login = getattr(self.backend, "login_role_arn", None)
        login_role = login(account_id) if login and self.identity else None
        if login_role:
            session = self._refreshable(login_role, "login", None, session)
        with self._lock:
            self._cache.setdefault(key, session)
            return self._cache[key]

    def source_identity(self, session: BotoSession) -> str | None:
        """The source identity AWS returned when `session` was assumed (None for the caller's own credentials)."""
        return self._source_identity.get(id(session))

    def caller_account(self, session: BotoSession | None = None) -> str:
        session = session or self.base()
        key = ("identity", id(session))
        if key not in self._cache:
            self._cache[key] = self.client("sts", session).get_caller_identity()["Account"]
        return self._cache[key]

    def assume(
        self, role_arn: str, *, purpose: str, external_id: str | None = None, source: BotoSession | None = None
    ) -> BotoSession:
        """A refreshable session for `role_arn`, assumed from `source` (default: the caller)."""
        source = source or self.base()
        key = ("role", role_arn, id(source))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        session = self._refreshable(role_arn, purpose, external_id, source)
        with self._lock:
            self._cache.setdefault(key, session)
            return self._cache[key]

    def _refreshable(self, role_arn: str, purpose: str, external_id: str | None, source: BotoSession) -> BotoSession:
        import boto3
        import botocore.session
        from botocore.credentials import RefreshableCredentials
        from botocore.exceptions import ClientError

        sts = self.client("sts", source)
        name = session_name(purpose, self.who)
        # Only the first AssumeRole of a chain names the caller; AWS carries it through the rest.
        first = id(source) not in self._source_identity
        answered = {}

        def fetch() -> dict[str, str]:
            kwargs = {"RoleArn": role_arn, "RoleSessionName": name, "DurationSeconds": 3600}
            if external_id:
                kwargs["ExternalId"] = external_id
            if first and self.identity:
                kwargs["SourceIdentity"] = self.identity
            try:
                response = sts.assume_role(**kwargs)
            except ClientError as exc:
                code = exc.response["Error"].get("Code", "")
                if code in ("AccessDenied", "AccessDeniedException"):
                    hint = "" if self.identity else f" (no source identity: log in with --as NAME or {LOGIN_VARIABLE})"
                    raise AccessDenied(
                        f"cannot assume {role_arn}: {exc.response['Error'].get('Message', code)}{hint}"
                    ) from None
                raise
            creds = response["Credentials"]
            answered["source_identity"] = response.get("SourceIdentity")
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        credentials = RefreshableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
        )
        core = botocore.session.get_session()
        core._credentials = credentials  # botocore has no public setter for refreshable credentials
        session = share_service_models(boto3.Session(botocore_session=core, region_name=self.env.region))
        self._source_identity[id(session)] = answered.get("source_identity")
        return session

    # -- the identities the toolkit acts as -----------------------------------------------------
    def workload(self) -> BotoSession:
        """Acting in the environment's account: the caller itself when it is already there, else the
        cross-account Jenkins role (with ExternalId), as Jenkins does when it deploys to prod."""
        base = self.base()
        if self.caller_account(base) == self.env.account_id:
            return base
        return self.assume(
            self.env.role_arn("jenkins"),
            purpose=f"deploy-{self.env.name}",
            external_id=self.env.jenkins.external_id,
            source=base,
        )

    def in_account(self, account_id: str) -> BotoSession:
        """The caller acting in another account (an admin bootstrapping it, an approver signing in)."""
        return self.base(account_id)

    def as_role(self, role: str, *, purpose: str, account_id: str | None = None) -> BotoSession:
        """Assume one of the environment's roles, e.g. `approver` in the registry account."""
        arn = self.env.role_arn(role, account_id)
        source = self.in_account(arn.split(":")[4])
        return self.assume(arn, purpose=purpose, source=source)
