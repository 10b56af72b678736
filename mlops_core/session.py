"""Cross-account sessions: from the caller's credentials, assume the environment's roles.

Sessions are cached per (role, source) and refresh themselves before expiry, so a long `--wait`
outlives the one-hour STS credentials. Session names say who acts and why (Jenkins BUILD_TAG or
the local user) so CloudTrail shows it.
"""

from __future__ import annotations

import getpass
import os
import re
import threading
from typing import Any

from mlops_core.backend import Backend, BotoSession, backend_for
from mlops_core.config import Environment
from mlops_core.errors import AccessDenied

_SESSION_NAME_CHARS = re.compile(r"[^\w+=,.@-]")


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
        self, env: Environment, backend: Backend | None = None, *, who: str | None = None, profile: str | None = None
    ) -> None:
        self.env = env
        self.backend = backend or backend_for(env, profile)
        self.who = who
        self._cache: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------
    def client(self, service: str, session: BotoSession | None = None) -> Any:
        """A client for `service` on `session` (default: the workload session), pointed at the backend."""
        session = session or self.workload()
        return session.client(
            service, endpoint_url=self.backend.endpoint_url, config=self.backend.botocore_config(self.env.region)
        )

    def base(self, account_id: str | None = None) -> BotoSession:
        """The caller's own credentials, as the backend supplies them for acting in `account_id`."""
        key = ("base", account_id)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self.backend.base_session(self.env.region, account_id or self.env.account_id)
            return self._cache[key]

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

        def fetch() -> dict[str, str]:
            kwargs = {"RoleArn": role_arn, "RoleSessionName": name, "DurationSeconds": 3600}
            if external_id:
                kwargs["ExternalId"] = external_id
            try:
                creds = sts.assume_role(**kwargs)["Credentials"]
            except ClientError as exc:
                code = exc.response["Error"].get("Code", "")
                if code in ("AccessDenied", "AccessDeniedException"):
                    raise AccessDenied(
                        f"cannot assume {role_arn}: {exc.response['Error'].get('Message', code)}"
                    ) from None
                raise
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
        return boto3.Session(botocore_session=core, region_name=self.env.region)

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
