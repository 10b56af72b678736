"""Control of the sandbox server from other processes: up, down, status, reset, and the backend the
toolkit uses to reach it (endpoint + per-account admin credentials).

The server is found through `server.json` in the sandbox home ($MLOPS_SANDBOX_HOME, default
~/.mlops-sandbox). Starting is serialised with a file lock so two commands never start two servers.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops_core.backend import TerraformOverrides, endpoint_overrides
from mlops_core.config import Environment
from mlops_core.errors import ConfigError, SandboxError
from sandbox.engine import instances
from sandbox.home import HomeSecretsError, home_secrets, open_private, private_dir
from sandbox.protocol import LOGIN_ROLE, LOGIN_ROLE_PATH, TOKEN_HEADER, error_from
from sandbox.terraform import terraform_overrides

START_TIMEOUT = 120.0  # a start replays the journal written since the last snapshot


def home() -> Path:
    """The sandbox home, created 0700 (an existing directory's mode is corrected: it holds secrets)."""
    return private_dir(Path(os.environ.get("MLOPS_SANDBOX_HOME") or Path.home() / ".mlops-sandbox"))


def _token(directory: Path) -> str | None:
    try:
        return home_secrets(directory, create=False)["control_token"]
    except FileNotFoundError:
        return None
    except HomeSecretsError as exc:
        raise SandboxError(str(exc)) from None


@contextmanager
def _start_lock(directory: Path):
    with os.fdopen(open_private(directory / "start.lock", os.O_WRONLY | os.O_CREAT), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _request(
    endpoint: str,
    name: str,
    body: dict | None = None,
    method: str = "POST",
    timeout: float = 30.0,
    directory: Path | None = None,
) -> dict:
    data = json.dumps(body or {}).encode() if method == "POST" else None
    headers = {"Content-Type": "application/json", TOKEN_HEADER: _token(directory or home()) or ""}
    req = urllib.request.Request(f"{endpoint}/_sandbox/{name}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        raise error_from(exc.code, answer, name) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
        # HTTPException covers IncompleteRead: a server that shuts down may close before its reply is flushed
        raise SandboxError(f"sandbox at {endpoint} did not answer {name}: {getattr(exc, 'reason', exc)}") from None


def _pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by whoever started it) is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
    except OSError:
        return True


def running(directory: Path | None = None) -> dict | None:
    """The live server's status, or None when no server answers (a stale server.json is removed)."""
    directory = directory or home()
    info_path = directory / "server.json"
    try:
        info = json.loads(info_path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _pid_alive(int(info.get("pid", -1))):
        info_path.unlink(missing_ok=True)
        return None
    _token(directory)  # a damaged secrets file is its own one-line error, not "not running"
    try:
        return _request(info["endpoint"], "status", method="GET", timeout=5, directory=directory)
    except SandboxError:
        return None


def up(accounts: dict | None = None, port: int = 0) -> dict:
    """Start the server unless one runs; ensure `accounts` ({label: id}) are seeded. Returns status."""
    directory = home()
    with _start_lock(directory):
        status = running(directory)
        if status is None:
            try:
                home_secrets(directory)  # the server's control token and state key, created 0600 once
            except HomeSecretsError as exc:
                raise SandboxError(str(exc)) from None
            status = _spawn(directory, port)
    if accounts:
        missing = {
            label: a for label, a in accounts.items() if a not in {acc["account_id"] for acc in status["accounts"]}
        }
        if missing:
            status = _request(status["endpoint"], "accounts", {"accounts": missing}, directory=directory)
    return status


def _spawn(directory: Path, port: int) -> dict:
    try:  # a setting the engine reads on each job: refused here, in one line, not at the first job
        instances.cpus_per_instance()
    except ValueError as exc:
        raise ConfigError(str(exc), source="environment", field=instances.CPUS_VARIABLE) from None
    env = dict(os.environ)
    # the package must import in the child however this one was started (installed, or from a checkout)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    log_fd = open_private(directory / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with os.fdopen(log_fd, "ab") as log:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.server", "--home", str(directory), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=env,
            cwd=str(directory),
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (directory / "server.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise SandboxError(
                f"sandbox server exited at start (code {proc.returncode}): "
                f"{tail[0] if tail else 'no output'}; see {directory / 'server.log'}"
            )
        status = running(directory)
        if status is not None:
            return status
        time.sleep(0.05)
    proc.kill()
    raise SandboxError(f"sandbox server did not answer within {START_TIMEOUT:.0f}s; see {directory / 'server.log'}")


def down(save: bool = True, timeout: float = 20.0) -> bool:
    """Stop the server, snapshotting its state unless save=False. Returns False if none was running."""
    directory = home()
    try:
        status = running(directory)
    except SandboxError:  # e.g. damaged secrets: the server cannot be asked, but it can be signalled
        status = _by_pid(directory)
    if status is None:
        return False
    pid = status["pid"]
    try:
        if status.get("endpoint"):
            _request(status["endpoint"], "shutdown", {"save": save}, timeout=10, directory=directory)
    except SandboxError:
        pass
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, 15)
        time.sleep(1)
        if _pid_alive(pid):
            os.kill(pid, 9)
    (directory / "server.json").unlink(missing_ok=True)
    return True


def _by_pid(directory: Path) -> dict | None:
    try:
        pid = int(json.loads((directory / "server.json").read_text()).get("pid", -1))
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return {"pid": pid} if _pid_alive(pid) else None


def reset() -> dict:
    status = running()
    if status is None:
        raise SandboxError("no sandbox is running (start it with `sandbox up`)")
    return _request(status["endpoint"], "reset")


def call(name: str, body: dict | None = None) -> dict:
    """Call a sandbox route (`/_sandbox/<name>`) on the running server."""
    status = running()
    if status is None:
        raise SandboxError("no sandbox is running (start it with `sandbox up`)")
    return _request(status["endpoint"], name, body)


STATE_FILES = ("state.snap", "state.pkl", "journal-*.log", "secrets.json")


def forget_snapshot() -> None:
    """Remove the saved state, its journal and the home's secrets (a damaged one included): the
    next `up` starts empty, with new admin keys and a new control token."""
    directory = home()
    for pattern in STATE_FILES:
        for path in directory.glob(pattern):
            path.unlink(missing_ok=True)


def admin_credentials(account_id: str) -> dict:
    """The running sandbox's admin keys for one account (what `sandbox status --output json` shows)."""
    status = running()
    if status is None:
        raise SandboxError("no sandbox is running (start it with `sandbox up`)")
    for account in status["accounts"]:
        if account["account_id"] == account_id:
            return account["credentials"]
    raise SandboxError(f"account {account_id} is not seeded in the sandbox")


class SandboxBackend:
    """The toolkit's view of the sandbox: an endpoint and admin credentials per account."""

    name = "sandbox"

    def __init__(self, status: dict, identity: str | None = None):
        self.endpoint_url = status["endpoint"]
        self.credentials = {a["account_id"]: a["credentials"] for a in status["accounts"]}
        self.labels = {a["label"]: a["account_id"] for a in status["accounts"]}
        self.identity = identity

    @classmethod
    def for_environment(cls, env: Environment, identity: str | None = None) -> SandboxBackend:
        backend = cls(up(env.sandbox_accounts), identity)
        _note_ignored_endpoints(backend.endpoint_url)
        return backend

    def base_session(self, region: str, account_id: str | None = None) -> Any:
        """The caller acting in `account_id`. MLOPS_SANDBOX_CREDENTIALS=env uses AWS_* variables
        instead (as a Jenkins `withAWS` block sets them); an identity label (--profile) picks one
        account's admin whatever the target."""
        import boto3

        if os.environ.get("MLOPS_SANDBOX_CREDENTIALS") == "env":
            return boto3.Session(region_name=region)
        if self.identity:
            if self.identity not in self.labels:
                raise ConfigError(
                    f"'{self.identity}' is not a sandbox account (one of: {', '.join(self.labels)})", field="--profile"
                )
            account_id = self.labels[self.identity]
        creds = self.credentials.get(account_id)
        if creds is None:
            raise SandboxError(f"account {account_id} is not seeded in the sandbox")
        return boto3.Session(region_name=region, **creds)

    def login_role_arn(self, account_id: str | None) -> str | None:
        """Where a person logs in to `account_id`: the seeded login role, assumed from the account's admin
        with the person's name as source identity (on AWS, SSO/SAML/OIDC sign-in does this). None when the
        caller brings its own credentials (MLOPS_SANDBOX_CREDENTIALS=env, as Jenkins does)."""
        if os.environ.get("MLOPS_SANDBOX_CREDENTIALS") == "env":
            return None
        if self.identity in self.labels:
            account_id = self.labels[self.identity]
        return (
            f"arn:aws:iam::{account_id}:role{LOGIN_ROLE_PATH}{LOGIN_ROLE}" if account_id in self.credentials else None
        )

    def botocore_config(self, region: str) -> Any:
        from botocore.config import Config

        # Loopback never throttles; an unimplemented call should fail at once, not retry for 10 s.
        return Config(
            region_name=region, retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5, read_timeout=300
        )

    def terraform_overrides(self) -> TerraformOverrides:
        """Endpoints, an offline provider mirror and the S3 backend settings that aim Terraform here."""

        return terraform_overrides(self.endpoint_url)


_noted: set = set()


def _note_ignored_endpoints(endpoint: str) -> None:
    """Every client of this backend names the sandbox endpoint explicitly, which botocore prefers to
    AWS_ENDPOINT_URL*: say so once, so nobody believes the variable took effect."""

    for name, url in sorted(endpoint_overrides().items()):
        if url.rstrip("/") != endpoint and name not in _noted:
            _noted.add(name)
            print(f"note: {name}={url} is ignored: backend sandbox talks to {endpoint}", file=sys.stderr)


def backend_for_environment(env: Environment, identity: str | None = None) -> SandboxBackend:
    """The entry point core's backend registry loads for `backend: sandbox` (see pyproject.toml)."""
    return SandboxBackend.for_environment(env, identity)
