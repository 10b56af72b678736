"""The sandbox server process: moto on 127.0.0.1 with the sandbox patches, seeded accounts and durable state.

Started detached by `sandbox up` (sandbox.client). It binds a free loopback port, replays its journal
(sandbox/journal.py: every acknowledged write survives SIGKILL), writes `server.json` in the sandbox
home, and serves until `POST /_sandbox/shutdown` or SIGTERM: then it stops accepting writes, lets
those in flight finish, snapshots and exits. State a patch keeps must live in a moto BackendDict or
in `SandboxServer.extra` (both are snapshotted) and change only while a request or a journaled
operation runs.
"""

from __future__ import annotations

import argparse
import base64
import faulthandler
import hmac
import json
import os
import signal
import sys
import threading
import time
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sandbox import clock, journal
from sandbox.home import HomeSecretsError, home_secrets, private_dir, write_private
from sandbox.journal import OP_HEADER, JournalError
from sandbox.patches import PATCHES, apply_all, patch_routes
from sandbox.patching import Route, WsgiApp
from sandbox.protocol import (
    LOGIN_ROLE,
    LOGIN_ROLE_PATH,
    TOKEN_HEADER,
    Forbidden,
    InvalidInput,
    NotFound,
    RouteError,
    ServerFault,
    Unavailable,
    error_body,
)
from sandbox.statefile import SnapshotError

ADMIN_USER = "sandbox-admin"
# The sandbox's stand-in for each account's root: an admin inside the emulator, never a real identity.
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "SandboxAccountAdmin", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}


# A person "logs in" to an account by assuming this role with their name as STS source identity: the
# sandbox's stand-in for IAM Identity Center's permission-set roles, or a SAML/OIDC role whose IdP sets
# the source identity (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html).
# Only the account's admin may assume it, and only with a source identity.
def login_trust(account_id: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LoginNamesAPerson",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:user/{ADMIN_USER}"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {"Null": {"sts:SourceIdentity": "false"}},
            }
        ],
    }


def new_admin_credentials() -> dict:
    """Random admin keys for one account of this sandbox home: nothing about them can be guessed
    from the account id, and they stay the same across `reset` and restarts (kept in the state)."""
    raw = os.urandom(40)
    return {
        "aws_access_key_id": "AKIA" + base64.b32encode(raw[:10]).decode(),  # 20 characters, as AWS's
        "aws_secret_access_key": base64.b64encode(raw[10:]).decode(),  # 40 characters
    }


class SandboxServer:
    """One process, one moto, many accounts."""

    def __init__(self, home: Path, port: int = 0):
        self.home = home
        self.port = port
        self.accounts: dict[str, str] = {}  # account id -> label (dev, prod, registry, jenkins...)
        self.started = time.time()
        self.lock = threading.RLock()
        self.httpd: Any = None  # werkzeug's server, once serving
        self.extra: dict = {}  # state patches keep across restarts, by patch name
        self.admins: dict[str, dict] = {}  # account id -> its admin's keys (random per sandbox home)

        self.secrets = home_secrets(home)
        self.journal = journal.Journal(self)
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self._stopping = threading.Lock()
        self.in_flight = 0
        self.in_flight_lock = threading.Lock()

    # -- state ----------------------------------------------------------------------------------
    def seed_account(self, account_id: str, label: str) -> None:
        from moto.iam.models import AccessKey, iam_backends

        with self.lock:
            iam = iam_backends[account_id]["aws"]
            if ADMIN_USER not in iam.users:
                iam.create_user("us-east-1", ADMIN_USER)
                iam.put_user_policy(ADMIN_USER, "sandbox-account-admin", json.dumps(ADMIN_POLICY))
            if LOGIN_ROLE not in {r.name for r in iam.roles.values()}:
                iam.create_role(
                    role_name=LOGIN_ROLE,
                    assume_role_policy_document=json.dumps(login_trust(account_id)),
                    path=LOGIN_ROLE_PATH,
                    permissions_boundary=None,
                    description="sandbox: a person's login session (IAM Identity Center / SAML stand-in)",
                    tags=[],
                    max_session_duration="3600",
                    linked_service=None,
                )
                iam.put_role_policy(LOGIN_ROLE, "sandbox-account-admin", json.dumps(ADMIN_POLICY))
            user = iam.users[ADMIN_USER]
            creds = self.admins.get(account_id) or self.admins.setdefault(account_id, new_admin_credentials())
            if not any(k.access_key_id == creds["aws_access_key_id"] for k in user.access_keys):
                key = AccessKey(ADMIN_USER, prefix="AKIA", account_id=account_id)
                key.access_key_id = creds["aws_access_key_id"]
                key.secret_access_key = creds["aws_secret_access_key"]
                user.access_keys.append(key)
                iam.access_keys[key.access_key_id] = key
            self.accounts[account_id] = self.accounts.get(account_id) or label

    def reset(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        with self.lock:
            moto_api_backend.reset()
            self.extra.clear()
            for patch in PATCHES:
                if patch.reset is not None:
                    patch.reset(self)
            for account_id, label in list(self.accounts.items()):
                self.seed_account(account_id, label)

    def saved_state(self) -> dict:
        """The sandbox's own state that snapshots keep beside moto's backends."""
        return {"accounts": self.accounts, "admins": self.admins, "extra": self.extra}

    def restore_state(self, saved: dict) -> None:
        self.accounts.update(saved.get("accounts", {}))
        self.admins.update(saved.get("admins", {}))
        self.extra.update(saved.get("extra", {}))

    def status(self) -> dict:
        return {
            "endpoint": f"http://127.0.0.1:{self.port}",
            "pid": os.getpid(),
            "started": self.started,
            "accounts": [
                {"account_id": a, "label": label, "credentials": self.admins[a]}
                for a, label in sorted(self.accounts.items(), key=lambda kv: kv[1])
            ],
        }

    # -- serving --------------------------------------------------------------------------------
    def wsgi(self) -> WsgiApp:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        moto_app = DomainDispatcherApplication(create_backend_app)
        for patch in PATCHES:
            if patch.wrap is not None:
                moto_app = patch.wrap(moto_app)
        routes = {**SERVER_ROUTES, **patch_routes()}

        def dispatch(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if not path.startswith("/_sandbox/"):
                return moto_app(environ, start_response)
            name = path[len("/_sandbox/") :].strip("/")
            route = routes.get(name)
            if route is None or environ["REQUEST_METHOD"] not in route.methods:
                missing = NotFound(f"no sandbox route {environ['REQUEST_METHOD']} {path}")
                return _respond(start_response, missing.status, error_body(missing))
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
                status, payload = route.handler(self, body)
            except RouteError as exc:
                status, payload = exc.status, error_body(exc)
            except Exception as exc:  # a sandbox bug must answer, not hang the client
                fault = ServerFault(f"{type(exc).__name__}: {exc}")
                status, payload = fault.status, error_body(fault)
            return _respond(start_response, status, payload)

        durable = self.journal.wsgi(dispatch)  # every write journaled before its reply

        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            control = path.startswith(("/_sandbox/", "/moto-api")) or _host(environ) == "moto_api"
            if control and not self.authorized(environ):
                # moto's /moto-api/data.json lists every access key and session token; its reset and
                # ours wipe every account: only the owner of this sandbox home may call them
                refused = Forbidden(f"{path} needs the control token of the sandbox home ({TOKEN_HEADER} header)")
                return _respond(start_response, refused.status, error_body(refused))
            if not self.ready.is_set() and not environ.get("HTTP_" + OP_HEADER.upper().replace("-", "_")):
                starting = Unavailable("the sandbox is starting (replaying its journal)")
                return _respond(start_response, starting.status, error_body(starting))
            with self.in_flight_lock:
                self.in_flight += 1
            try:
                return durable(environ, start_response)
            finally:
                with self.in_flight_lock:
                    self.in_flight -= 1

        return app

    def authorized(self, environ: dict) -> bool:
        given = environ.get("HTTP_" + TOKEN_HEADER.upper().replace("-", "_"), "")
        return hmac.compare_digest(given.encode(), self.secrets["control_token"].encode())

    def serve(self) -> None:
        """Listen, replay the journal (serving only the requests the server makes to itself
        meanwhile), then serve until SIGTERM or /_sandbox/shutdown."""
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Dated(WSGIRequestHandler):
            """Responses are dated by the sandbox clock, as AWS dates its own (the HTTP Date header): a client
            measuring a running step against the service's time gets the same answer after `sandbox tick`."""

            def date_time_string(self, timestamp: float | None = None) -> str:
                if timestamp is not None:
                    return super().date_time_string(timestamp)
                return format_datetime(clock.now(), usegmt=True)

        apply_all()  # journal.PATCH among them: operations draw randomness and time from their records
        journal.ACTIVE = self.journal
        for patch in PATCHES:
            if patch.start is not None:
                patch.start(self)
        self.httpd = make_server("127.0.0.1", self.port, self.wsgi(), threaded=True, request_handler=Dated)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, name="sandbox-http", daemon=True).start()
        terminate = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: terminate.set())  # handled below, in the main thread
        try:
            replayed = self.journal.recover()
        except Exception:
            self.httpd.shutdown()
            raise
        if replayed:
            print(f"journal: replayed {replayed} operations", file=sys.stderr)
        self.ready.set()
        _write_json(self.home / "server.json", self.status())
        # a timed wait: the main thread must wake up for Python to run the SIGTERM handler
        while not self.stopped.wait(0.2):
            if terminate.is_set():
                self.stop()

    def stop(self, save: bool = True) -> None:
        """Stop accepting writes, let the ones in flight finish and be journaled, snapshot (unless
        discarding), stop listening, exit."""
        with self._stopping:
            if self.stopped.is_set():
                return
            with self.journal.lock:  # waits for the operation in flight
                self.journal.stopping = True
            (self.home / "server.json").unlink(missing_ok=True)
            self.httpd.shutdown()
            deadline = time.monotonic() + 10
            while self.in_flight and time.monotonic() < deadline:  # replies already computed are sent
                time.sleep(0.02)
            if save:
                with self.journal.lock:
                    self.journal.compact()
            self.journal.close()
            self.stopped.set()


def _host(environ) -> str:
    return (environ.get("HTTP_HOST") or "").rsplit(":", 1)[0].lower()


def _respond(start_response, status: int, payload: dict):
    body = json.dumps(payload, default=str).encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _write_json(path: Path, data: dict) -> None:
    write_private(path, json.dumps(data, indent=2, default=str).encode(), durable=False)


def _status(server, _body):
    return 200, server.status()


def _accounts(server, body):
    """Ensure accounts exist: {"accounts": {"label": "123456789012", ...}}."""
    for label, account_id in (body.get("accounts") or {}).items():
        if not (isinstance(account_id, str) and len(account_id) == 12 and account_id.isdigit()):
            raise InvalidInput(f"not a 12-digit account id: {account_id!r}", field="accounts")
        server.seed_account(account_id, label)
    if server.ready.is_set():  # not while replaying
        _write_json(server.home / "server.json", server.status())
    return 200, server.status()


def _reset(server, _body):
    server.reset()
    server.journal.compact_requested = True  # the journal before the reset is not needed any more
    return 200, server.status()


def _shutdown(server, body):
    threading.Thread(target=server.stop, kwargs={"save": body.get("save", True)}, daemon=True).start()
    return 200, {"stopping": True}


# The server's own control routes; each patch declares its routes in its Patch (sandbox/patches).
SERVER_ROUTES = {
    "status": Route(_status, methods=("GET", "POST")),
    "accounts": Route(_accounts),
    "reset": Route(_reset),
    "shutdown": Route(_shutdown),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the sandbox server in the foreground.")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    private_dir(args.home)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: every thread's stack to server.log
    try:
        SandboxServer(args.home, args.port).serve()
    except (SnapshotError, HomeSecretsError, JournalError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # the client shows this last line of server.log
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
