"""Durable sandbox state: a write is in the journal, fsync'd, before its response is sent.

Design. Every mutating request (and each state change the pipeline engine makes on its own) is one
*operation*: operations run one at a time under one lock, each with its own random seed, and are
appended to `journal-NNNNNNNN.log` (one JSON line, HMAC'd with the home's key) and fsync'd before
the reply leaves. On start the last snapshot (`state.snap`, sealed) is loaded and the journal after
it replayed, request by request, with the same seeds (moto draws every id, key and token from
`mock_random` / `os.urandom`, which replay feeds from the recorded seed) and the recorded clock, so
a restart yields exactly the acknowledged state. The journal is compacted into a new snapshot every
COMPACT_EVERY_OPS operations, at a clean stop and after `reset`, so a replay stays short.

Why a journal of requests rather than a write-through store: moto keeps state as Python objects
with no notion of what a request changed; re-pickling an account's backends on every write would cost
O(state) per call. A request journal costs one small append and one fsync per write (bench/
sandbox_overhead.py measures it), and JSON lines cannot run code when read.

What replay does not reproduce exactly: timestamps moto takes with `datetime.now()` directly (a few
places) and the sandbox's own delivery-record times come from the replay's clock, not the original.
State a patch keeps must live in a moto BackendDict or in `SandboxServer.extra`, which snapshots
include; anything else is rebuilt only by replay.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import io
import json
import os
import pickle
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sandbox import statefile as snapshot
from sandbox.home import fsync_dir, open_private, write_private
from sandbox.patching import Patch, WsgiApp
from sandbox.protocol import Unavailable, error_body

SNAPSHOT = "state.snap"
LEGACY_SNAPSHOT = "state.pkl"
SEGMENT = re.compile(r"^journal-(\d{8})\.log$")
COMPACT_EVERY_OPS = int(os.environ.get("MLOPS_SANDBOX_COMPACT_EVERY", "500"))
COMPACT_EVERY_BYTES = int(os.environ.get("MLOPS_SANDBOX_COMPACT_BYTES", str(32 << 20)))
OP_HEADER = "X-Sandbox-Op"

# /_sandbox routes that change nothing (everything else there is journaled)
READ_ROUTES = {"status", "events", "clock", "shutdown"}
# AWS actions that only read; anything not matched here is journaled (a write wrongly taken for a
# read would be lost on restart, a read taken for a write only costs an fsync)
_READ_ACTION = re.compile(
    r"^(Describe|List|Get|Head|Search|BatchGet|Lookup|Query|Scan|Test|Simulate|Decrypt|Encrypt|ReEncrypt|"
    r"GenerateDataKey|GenerateRandom|GenerateMac|VerifyMac|Verify|Sign|Filter|Check|Validate|Preview)"
)
_WRITES_DESPITE_NAME = {"GetSessionToken", "GetFederationToken", "GetId", "GetOpenIdToken"}

_tls = threading.local()
_real_urandom = os.urandom
_real_time = time.time
ACTIVE: Journal | None = None
HANDLERS: dict = {}


class Stopping(Exception):
    """The server is stopping: the operation was not run (and not acknowledged)."""


class JournalError(Exception):
    """A journal file that cannot be trusted: one line naming it and how to recover."""


class _Op:
    __slots__ = ("clock", "id", "rng")

    def __init__(self, seed: int, clock=None):
        self.id = uuid.UUID(bytes=_real_urandom(16)).hex
        self.rng = random.Random(seed)
        self.clock = clock


def _op() -> _Op | None:
    return getattr(_tls, "op", None)


def replaying() -> bool:
    return ACTIVE is not None and ACTIVE.replaying


# -- determinism: every random draw and clock read of an operation comes from the operation ---------
_installed: list = []


def install_determinism() -> None:
    """Route moto's randomness (mock_random, os.urandom, uuid4) and clock (utcnow, time.time) through
    the running operation when there is one; elsewhere they behave as before."""
    if _installed:
        return
    _installed.append(True)
    import moto.core.utils as moto_utils
    from moto.core import base_backend
    from moto.moto_api._internal import mock_random

    def urandom(n: int) -> bytes:
        op = _op()
        return op.rng.randbytes(n) if op is not None else _real_urandom(n)

    os.urandom = urandom
    for rng in (mock_random, random._inst):
        _route_through_operations(rng)
    random.random = random._inst.random

    def clock_time() -> float:
        op = _op()
        return op.clock() if op is not None and op.clock is not None else _real_time()

    time.time = clock_time

    def utcnow() -> datetime:
        return datetime.fromtimestamp(clock_time(), UTC).replace(tzinfo=None)

    # moto modules import utcnow by name: swap the one function's code so every importer, present or
    # imported later, reads the operation's clock
    moto_utils._sandbox_utcnow = utcnow
    moto_utils.utcnow.__code__ = _utcnow_trampoline.__code__
    # a backend created lazily must not consume an operation's random stream (its id is internal)
    base_backend.uuid4 = lambda: uuid.UUID(bytes=_real_urandom(16), version=4)


def _route_through_operations(rng: random.Random) -> None:
    plain_random, plain_bits = rng.random, rng.getrandbits

    def routed_random() -> float:
        op = _op()
        return op.rng.random() if op is not None else plain_random()

    def routed_bits(k: int) -> int:
        op = _op()
        return op.rng.getrandbits(k) if op is not None else plain_bits(k)

    # instance attributes: every method of Random (choice, randint, uuid4...) draws through these two
    setattr(rng, "random", routed_random)  # noqa: B010
    setattr(rng, "getrandbits", routed_bits)  # noqa: B010


def _utcnow_trampoline() -> datetime:
    return _sandbox_utcnow()  # type: ignore[name-defined]  # noqa: F821 - resolved in moto.core.utils


# -- operations the engine makes on its own ----------------------------------------------------------
def durable(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make `func(**kwargs)` a journaled operation named `kind` (replayed with the same arguments)."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        HANDLERS[kind] = func

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            journal = ACTIVE
            if journal is None or _op() is not None or journal.replaying:
                return func(**kwargs)
            return journal.run({"kind": kind, "args": _encode(kwargs)}, lambda: func(**kwargs))

        return wrapper

    return register


def in_operation() -> bool:
    """Whether this thread runs inside a journaled operation (and so holds the operation lock)."""
    return _op() is not None


def op_headers() -> dict:
    """Headers a request the server makes to itself during an operation carries, so it runs as part
    of that operation (inline, same random stream) instead of waiting for the lock it holds."""
    op = _op()
    return {OP_HEADER: op.id} if op is not None else {}


def _encode(value) -> str:
    def default(obj):
        if isinstance(obj, datetime):
            return {"$dt": obj.isoformat()}
        if isinstance(obj, (set, tuple)):
            return list(obj)
        return str(obj)

    return json.dumps(value, default=default, sort_keys=True)


def _decode(text: str):
    return json.loads(text, object_hook=lambda d: datetime.fromisoformat(d["$dt"]) if set(d) == {"$dt"} else d)


# -- requests ---------------------------------------------------------------------------------------
def _action(environ, body: bytes) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    # Smithy RPC v2 (CBOR), e.g. CloudWatch from boto3: POST /service/<service>/operation/<Action>
    rpc = re.match(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$", environ.get("PATH_INFO", ""))
    if rpc:
        return rpc.group(1)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        form = parse_qs(body.decode("latin-1"))
        if "Action" in form:
            return form["Action"][0]
    return None


def is_write(environ: dict, body: bytes) -> bool:
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if path.startswith("/_sandbox/"):
        return path[len("/_sandbox/") :].strip("/") not in READ_ROUTES
    if path.startswith("/moto-api"):
        return method == "POST"
    action = _action(environ, body)
    if action is None:
        return method not in ("GET", "HEAD", "OPTIONS")  # REST (S3, Lambda): the method says
    return action in _WRITES_DESPITE_NAME or not _READ_ACTION.match(action)


def _read_body(environ) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return stream.read()
    return b""


_SKIP_ENVIRON = ("REMOTE_PORT", "HTTP_" + OP_HEADER.upper().replace("-", "_"))


def _recordable(environ) -> dict:
    return {
        k: v
        for k, v in environ.items()
        if isinstance(v, str) and not k.startswith(("wsgi.", "werkzeug.")) and k not in _SKIP_ENVIRON
    } | {"wsgi.url_scheme": environ.get("wsgi.url_scheme", "http")}


def _collect(app, environ) -> tuple[str, list, bytes]:
    captured: dict = {}
    chunks: list = []

    def start_response(status, headers, _exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return captured["status"], captured["headers"], b"".join(chunks)


def _replay_environ(recorded: dict, body: bytes) -> dict:
    environ = dict(recorded)
    environ.update(
        {
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
    )
    return environ


# -- the journal --------------------------------------------------------------------------------------
class Journal:
    """The operation lock, the journal segments, the snapshot, and replay."""

    def __init__(self, server):
        self.server = server
        self.home: Path = server.home
        self.key = bytes.fromhex(server.secrets["state_key"])
        self.lock = threading.RLock()
        self.active: _Op | None = None
        self.replaying = False
        self.stopping = False
        self.compact_requested = False
        self.segment = 0
        self.fd: int | None = None
        self.ops = 0
        self.bytes = 0
        self.snapshot_bytes = 0  # the size of the last snapshot: what the next one will cost to write
        self.inner = None  # the WSGI app requests are replayed into (set by wsgi())

    # -- running ------------------------------------------------------------------------------------
    def run(self, record: dict, fn: Callable[[], Any]) -> Any:
        """Run `fn` as one operation and journal `record` (fsync'd) before returning its result."""
        if _op() is not None:
            return fn()  # part of the operation this thread (or the request that called us) runs
        with self.lock:
            if self.stopping:
                raise Stopping()
            seed = int.from_bytes(_real_urandom(16), "big")
            started = _real_time()
            op = _Op(seed)
            self.active, _tls.op = op, op
            try:
                return fn()
            finally:
                _tls.op, self.active = None, None
                self._append({**record, "seed": seed, "t": started})

    def wsgi(self, inner: WsgiApp) -> WsgiApp:
        """`inner` with every write journaled before its reply; a request the server makes to
        itself during an operation (OP_HEADER) runs inside that operation."""
        self.inner = inner

        def app(environ, start_response):
            nested = environ.get("HTTP_" + OP_HEADER.upper().replace("-", "_"))
            op = self.active
            if nested and op is not None and hmac.compare_digest(nested, op.id):
                _tls.op = op
                try:
                    status, headers, body = _collect(inner, environ)
                finally:
                    _tls.op = None
                start_response(status, headers)
                return [body]
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS") and not is_write(environ, b""):
                return inner(environ, start_response)  # reads stream as before, unjournaled
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            if not is_write(environ, body):
                return inner(environ, start_response)
            record = {"kind": "http", "environ": _recordable(environ), "body": base64.b64encode(body).decode()}
            try:
                status, headers, out = self.run(record, lambda: _collect(inner, environ))
            except Stopping:
                payload = json.dumps(error_body(Unavailable("the sandbox is stopping: the request was not run")))
                start_response("503 Service Unavailable", [("Content-Type", "application/json")])
                return [payload.encode()]
            start_response(status, headers)
            return [out]

        return app

    # -- the journal file ---------------------------------------------------------------------------
    def _segment_path(self, number: int) -> Path:
        return self.home / f"journal-{number:08d}.log"

    def _open_segment(self, number: int) -> None:

        fd = open_private(self._segment_path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        fsync_dir(self.home)
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.segment, self.ops, self.bytes = fd, number, 0, 0

    def _line(self, record: dict) -> bytes:
        text = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
        return text + b" " + hmac.new(self.key, text, hashlib.sha256).hexdigest()[:32].encode() + b"\n"

    def _append(self, record: dict) -> None:
        if self.replaying or self.fd is None:
            return
        line = self._line(record)
        view = memoryview(line)
        while view:
            view = view[os.write(self.fd, view) :]
        os.fdatasync(self.fd)
        self.ops += 1
        self.bytes += len(line)
        if self.compact_requested or self.due():
            self.compact()

    def due(self) -> bool:
        """Whether the journal has grown enough to be worth a snapshot. A snapshot costs the whole state (a
        batch of a few hundred MB in S3 makes it seconds), a long journal costs replay time on a restart: the
        thresholds grow with the last snapshot's size, so writing snapshots stays a fixed share of the bytes
        written (amortised) instead of re-writing a large state every COMPACT_EVERY_BYTES."""
        scale = max(1, self.snapshot_bytes // COMPACT_EVERY_BYTES)
        return self.ops >= COMPACT_EVERY_OPS * scale or self.bytes >= COMPACT_EVERY_BYTES * scale

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    # -- snapshot -----------------------------------------------------------------------------------
    def compact(self) -> None:
        """Snapshot the whole state and start a new journal segment; older segments are removed."""

        with self.lock:
            self.compact_requested = False
            for attempt in range(5):
                try:
                    payload, skipped = snapshot.state_bytes(self.server.saved_state())
                    break
                except RuntimeError:  # a concurrent read created a backend mid-pickle: try again
                    if attempt == 4:
                        raise
            if skipped:  # a snapshot without them would lose state the journal still has: keep the journal
                self.ops = self.bytes = 0
                for line in skipped:
                    print(f"snapshot: not taken, cannot save {line}", file=sys.stderr)
                return
            following = self.segment + 1
            self._open_segment(following)
            sealed = snapshot.seal(pickle.dumps({"journal_from": following, "state": payload}), self.key.hex())
            write_private(self.home / SNAPSHOT, sealed)
            self.snapshot_bytes = len(sealed)
            for path in self.home.glob("journal-*.log"):
                match = SEGMENT.match(path.name)
                if match and int(match.group(1)) < following:
                    path.unlink(missing_ok=True)
            (self.home / LEGACY_SNAPSHOT).unlink(missing_ok=True)

    # -- start ---------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Load the snapshot, replay the journal after it, mark executions the stop cut short, and
        compact. Returns the number of operations replayed."""

        journal_from = 0
        snap = self.home / SNAPSHOT
        legacy = self.home / LEGACY_SNAPSHOT
        if snap.exists():
            try:
                data = snap.read_bytes()
            except OSError as exc:
                raise JournalError(f"{snap} cannot be read ({exc.strerror}): {_recover_hint()}") from None
            sealed = pickle.loads(snapshot.unseal(data, self.key.hex(), snap))
            journal_from = sealed["journal_from"]
            self.server.restore_state(_load(snapshot, sealed["state"], snap))
        elif legacy.exists():
            self.server.restore_state(snapshot.restore(legacy, self.key.hex()))
        segments = sorted((int(m.group(1)), p) for p in self.home.glob("journal-*.log") if (m := SEGMENT.match(p.name)))
        segments = [(n, p) for n, p in segments if n >= journal_from]
        replayed = 0
        self.replaying = True
        try:
            for index, (_number, path) in enumerate(segments):
                replayed += self._replay_segment(path, last=index == len(segments) - 1)
        finally:
            self.replaying = False
        self.segment = max([journal_from - 1] + [n for n, _ in segments])
        self._open_segment(self.segment + 1 if segments else max(journal_from, 1))
        interrupted = HANDLERS.get("engine.interrupted")
        if interrupted is not None:
            self.run({"kind": "engine.interrupted", "args": "{}"}, interrupted)
        self.compact()
        return replayed

    def _replay_segment(self, path: Path, last: bool) -> int:
        data = path.read_bytes()
        lines = data.split(b"\n")  # after the final newline comes b"" (or a torn, unterminated line)
        records, offset = [], 0
        for number, raw in enumerate(lines, 1):
            record = self._verify(raw) if number < len(lines) else None
            if record is None and raw:
                rest = [r for r in lines[number:] if r]
                if last and not any(self._verify(r) for r in rest):
                    # the unfinished tail of the last write: it never returned, so it was never acknowledged
                    with open(path, "r+b") as fh:
                        fh.truncate(offset)
                    break
                raise JournalError(
                    f"{path} line {number} is damaged or was not written by this sandbox home: {_recover_hint()}"
                )
            if record is not None:
                records.append(record)
            offset += len(raw) + 1
        for record in records:
            self._replay(record)
        return len(records)

    def _verify(self, raw: bytes) -> dict | None:
        text, _, mac = raw.rpartition(b" ")
        expected = hmac.new(self.key, text, hashlib.sha256).hexdigest()[:32].encode()
        if not text or not hmac.compare_digest(mac, expected):
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    def _replay(self, record: dict) -> None:
        started = time.perf_counter()
        recorded_time = record["t"]
        op = _Op(record["seed"], clock=lambda: recorded_time + (time.perf_counter() - started))
        with self.lock:
            self.active, _tls.op = op, op
            try:
                if record["kind"] == "http":
                    environ = _replay_environ(record["environ"], base64.b64decode(record["body"]))
                    _collect(self.inner, environ)
                else:
                    HANDLERS[record["kind"]](**_decode(record["args"]))
            except Exception as exc:
                print(f"replay: {record['kind']} raised {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                _tls.op, self.active = None, None


def _load(snapshot_module, payload: bytes, path) -> dict:
    try:
        return snapshot_module.load_payload(payload)
    except Exception as exc:
        raise JournalError(
            f"{path} cannot be loaded by this sandbox ({type(exc).__name__}): {_recover_hint()}"
        ) from None


def _recover_hint() -> str:
    return "`sandbox down --discard` removes the saved state and the next `sandbox up` starts empty"


PATCH = Patch(
    name="deterministic-operations",
    adds="an acknowledged write survives SIGKILL: each is journaled before its reply and replays with its "
    "recorded random seed and clock (ids, keys and tokens come out the same)",
    overrides=(
        "moto.core.base_backend.uuid4",
        "moto.core.utils._sandbox_utcnow",
        "code of moto.core.utils.utcnow",
        "methods random/getrandbits of moto's mock_random and of the random module",
        "os.urandom",
        "time.time",
    ),
    apply=install_determinism,
)
