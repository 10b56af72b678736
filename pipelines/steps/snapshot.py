"""A dataset as a collection of parts, resolved when a run starts, and the exact snapshot the run read.

A dataset is an S3 prefix (`s3://bucket/prefix/`), an S3 object, a local folder, a local file or a
glob. Its parts are the CSV files under it (`.csv`, `.csv.gz`), read in key order as one table: every
part must have the same header. Names starting with `_` or `.` are metadata (a delivery's `_SUCCESS`
marker, a `_manifest.json`), never data. A part in a sub-folder counts only once that sub-folder
holds its `_SUCCESS` marker: a delivery still being uploaded is not half-read by a run that starts
meanwhile (it is listed as skipped).

Each part is read once, as a stream: its stored bytes are hashed (sha256) and its rows counted while
the CSV reader parses them, so ten parts cost what one file of the same rows costs. S3 parts are read at the
content listed when the run started (If-Match on the listed ETag; the version id S3 answers is
recorded), so the snapshot recorded is exactly what was read.
"""

from __future__ import annotations

import csv
import glob as globbing
import gzip
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "_SUCCESS"
SUFFIXES = (".csv", ".csv.gz")


class SnapshotError(Exception):
    """The dataset cannot be read as one table; the message names the part."""


@dataclass
class Part:
    name: str  # S3 key or local path, as shown to people
    uri: str
    size: int
    etag: str = ""
    version_id: str = ""
    sha256: str = ""
    rows: int = 0

    def record(self) -> dict:
        out = {"key": self.name, "uri": self.uri, "bytes": self.size, "sha256": self.sha256, "rows": self.rows}
        if self.etag:
            out["etag"] = self.etag
        if self.version_id:
            out["version_id"] = self.version_id
        return out


@dataclass
class Snapshot:
    source: str
    parts: list
    skipped: list = field(default_factory=list)  # (name, why)

    def record(self) -> dict:
        digest = hashlib.sha256("".join(f"{p.name}\0{p.sha256}\n" for p in self.parts).encode()).hexdigest()
        return {
            "source": self.source,
            "parts": [p.record() for p in self.parts],
            "rows": sum(p.rows for p in self.parts),
            "sha256": digest,
            "skipped": [{"key": name, "reason": why} for name, why in self.skipped],
        }


def _is_metadata(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith(("_", "."))


def _select(source: str, names: list, root: str) -> tuple[list, list]:
    """(parts, skipped) among `names` (keys or paths under `root`): data files of complete deliveries."""
    completed = {n.rsplit("/", 1)[0] for n in names if n.rsplit("/", 1)[-1] == MARKER}
    chosen, skipped = [], []
    for name in sorted(names):
        if _is_metadata(name) or name.endswith("/"):
            continue
        folder = name.rsplit("/", 1)[0] if "/" in name else ""
        if not name.lower().endswith(SUFFIXES):
            raise SnapshotError(f"part {name} of {source} is not a CSV file (.csv or .csv.gz)")
        if folder.rstrip("/") != root.rstrip("/") and folder not in completed:
            skipped.append((name, f"delivery {folder}/ has no {MARKER} marker yet"))
            continue
        chosen.append(name)
    return chosen, skipped


def resolve(source: str, s3=None) -> Snapshot:
    """The parts of `source` as they are now (listing only; nothing is read yet)."""
    if source.startswith("s3://"):
        return _resolve_s3(source, s3 or _s3_client())
    return _resolve_local(source)


def _resolve_local(source: str) -> Snapshot:
    path = Path(source)
    if any(ch in source for ch in "*?["):
        names = [p for p in sorted(globbing.glob(source, recursive=True)) if Path(p).is_file()]
        chosen = [n for n in names if not _is_metadata(n)]
        if not chosen:
            raise SnapshotError(f"dataset {source} matches no file")
        for name in chosen:
            if not name.lower().endswith(SUFFIXES):
                raise SnapshotError(f"part {name} of {source} is not a CSV file (.csv or .csv.gz)")
        return Snapshot(source, [Part(n, n, os.path.getsize(n)) for n in chosen])
    if path.is_file():
        return Snapshot(source, [Part(str(path), str(path), path.stat().st_size)])
    if not path.is_dir():
        raise SnapshotError(f"dataset {source} does not exist")
    root = str(path)
    names = [str(p) for p in path.rglob("*") if p.is_file()]
    chosen, skipped = _select(source, names, root)
    if not chosen:
        raise SnapshotError(f"dataset {source} holds no CSV part")
    return Snapshot(source, [Part(n, n, os.path.getsize(n)) for n in chosen], skipped)


def _s3_client():
    import boto3  # deferred: local runs need no AWS SDK

    return boto3.client("s3")


def _resolve_s3(source: str, s3) -> Snapshot:
    from botocore.exceptions import ClientError

    bucket, _, key = source[5:].partition("/")
    listed = {}
    try:
        if key and not key.endswith("/"):
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                return Snapshot(
                    source, [_s3_part(bucket, key, head["ContentLength"], head.get("ETag"), head.get("VersionId"))]
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            key += "/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents") or []:
                listed[obj["Key"]] = obj
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise SnapshotError(f"cannot list dataset {source}: {err.get('Code')}: {err.get('Message')}") from None
    chosen, skipped = _select(source, list(listed), key)
    if not chosen:
        raise SnapshotError(f"dataset {source} holds no CSV part (the prefix is empty)")
    parts = []
    for name in chosen:
        obj = listed[name]
        parts.append(_s3_part(bucket, name, obj["Size"], obj.get("ETag"), None))
    return Snapshot(source, parts, [(f"s3://{bucket}/{n}", why) for n, why in skipped])


def _s3_part(bucket, key, size, etag, version_id) -> Part:
    return Part(
        name=key,
        uri=f"s3://{bucket}/{key}",
        size=int(size),
        etag=(etag or "").strip('"'),
        version_id=version_id if version_id and version_id != "null" else "",
    )


class _Counting(io.RawIOBase):
    """The raw bytes of one part: hashed as they pass."""

    def __init__(self, raw):
        self.raw, self.digest = raw, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.raw.read(len(buffer))
        if not data:
            return 0
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)


class PartsReader(io.RawIOBase):
    """The parts of a snapshot as one CSV stream: the first part's header, then every part's rows.

    A part with another header stops the read with a SnapshotError naming the part and the column.
    Each part's sha256 (of its stored bytes) and row count are filled in as it is read.
    """

    def __init__(self, snapshot: Snapshot, s3=None):
        self.snapshot, self.s3 = snapshot, s3
        self.index = -1
        self.header: bytes | None = None
        self.columns: list = []
        self.current = None
        self.pending = b""
        self.counter = None
        self.ended_with_newline = True

    def readable(self):
        return True

    def _open(self, part: Part):
        if part.uri.startswith("s3://"):
            from botocore.exceptions import ClientError

            bucket, _, key = part.uri[5:].partition("/")
            # If-Match on the listed ETag: a part replaced since the listing fails instead of being read
            # (no s3:GetObjectVersion needed); the response names the exact version that was read.
            args = {"Bucket": bucket, "Key": key}
            if part.etag:
                args["IfMatch"] = f'"{part.etag}"'
            try:
                response = (self.s3 or _s3_client()).get_object(**args)
            except ClientError as exc:
                err = exc.response.get("Error", {})
                code = err.get("Code")
                if code in ("NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412"):
                    raise SnapshotError(
                        f"part {part.uri} changed or disappeared after the run listed it ({code}): "
                        "nothing was trained on a partial snapshot"
                    ) from None
                raise SnapshotError(f"cannot read part {part.uri}: {code}: {err.get('Message')}") from None
            if response.get("VersionId") not in (None, "null"):
                part.version_id = response["VersionId"]
            raw = response["Body"]
        else:
            try:
                raw = open(part.uri, "rb")  # noqa: SIM115 (closed with the part, after its last byte)
            except OSError as exc:
                raise SnapshotError(f"cannot read part {part.name}: {exc.strerror}") from None
        counted = _Counting(raw)
        stream = io.BufferedReader(counted, 1 << 20)
        if part.name.lower().endswith(".gz"):
            stream = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"), 1 << 20)
        return counted, stream

    def _next_part(self) -> bool:
        self._close_part()
        self.index += 1
        if self.index >= len(self.snapshot.parts):
            return False
        part = self.snapshot.parts[self.index]
        self.counter, self.current = self._open(part)
        try:
            header = self.current.readline()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SnapshotError(f"part {part.name} is not readable: {exc}") from None
        if not header.strip():
            raise SnapshotError(f"part {part.name} is empty (no header row)")
        columns = _columns(header, part)
        if self.header is None:
            self.header, self.columns = header.rstrip(b"\r\n") + b"\n", columns
            self.pending = self.header
        elif columns != self.columns:
            raise SnapshotError(_header_difference(part.name, self.snapshot.parts[0].name, self.columns, columns))
        self.ended_with_newline = True
        return True

    def _close_part(self):
        if self.current is None:
            return
        part = self.snapshot.parts[self.index]
        part.sha256 = self.counter.digest.hexdigest()
        self.current.close()
        self.current = None

    def readinto(self, buffer):
        while True:
            if self.pending:
                n = min(len(buffer), len(self.pending))
                buffer[:n] = self.pending[:n]
                self.pending = self.pending[n:]
                return n
            if self.current is None and not self._next_part():
                return 0
            if self.pending:
                continue
            try:
                data = self.current.read(len(buffer))
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise SnapshotError(f"part {self.snapshot.parts[self.index].name} is not readable: {exc}") from None
            part = self.snapshot.parts[self.index]
            if not data:
                if not self.ended_with_newline:
                    part.rows += 1
                    self.pending = b"\n"
                self._close_part()
                continue
            part.rows += data.count(b"\n")
            self.ended_with_newline = data.endswith(b"\n")
            n = len(data)
            buffer[:n] = data
            return n

    def close(self):
        self._close_part()
        super().close()


def _columns(header: bytes, part: Part) -> list:
    try:
        text = header.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SnapshotError(f"part {part.name} is not a text CSV (its first line is not UTF-8)") from None
    return [c.strip() for c in next(csv.reader([text]), [])]


def _header_difference(name: str, first: str, expected: list, got: list) -> str:
    for i, (a, b) in enumerate(zip(expected, got)):
        if a != b:
            return f"part {name} has column '{b}' where {first} has '{a}' (column {i + 1}): parts must share a header"
    if len(got) > len(expected):
        return f"part {name} has an extra column '{got[len(expected)]}' that {first} lacks: parts must share a header"
    return f"part {name} lacks column '{expected[len(got)]}' that {first} has: parts must share a header"


def open_dataset(source: str, s3=None) -> tuple[Snapshot, PartsReader]:
    """Resolve `source` now and return its snapshot with a reader over all its parts."""
    snapshot = resolve(source, s3)
    return snapshot, PartsReader(snapshot, s3)


def read_rows(source: str, s3=None) -> tuple[Snapshot, bytes]:
    """The whole dataset as CSV bytes (header once) and its snapshot: for tests and small reads."""
    snapshot, reader = open_dataset(source, s3)
    with io.BufferedReader(reader) as stream:
        data = stream.read()
    return snapshot, data
