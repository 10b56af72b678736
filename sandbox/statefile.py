"""Sandbox state files: every moto BackendDict in use (with the BackendDict's own fields: S3's
bucket -> owning account map lives there) plus the sandbox's own state, pickled and sealed.

A pickle runs code when loaded, so a state file is authenticated (HMAC-SHA256 with the sandbox home's
own key) before it is unpickled: a planted, foreign or damaged file is refused in one line, never
loaded. The pickling of what moto keeps is made possible by sandbox/patches/snapshot.py.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import pickle
import sys
from pathlib import Path

from sandbox.home import write_private


def loaded_backends() -> dict:
    """Every moto BackendDict this process has created, keyed by "module:attribute"."""
    from moto.core.base_backend import BackendDict

    found, seen = {}, set()
    for module_name, module in list(sys.modules.items()):
        if not (module_name.startswith("moto.") and module_name.endswith(".models")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            # a module that re-exports another's BackendDict (sts uses iam's) must not store it twice
            if isinstance(value, BackendDict) and len(value) and id(value) not in seen:
                seen.add(id(value))
                found[f"{module_name}:{attr}"] = value
    return found


MAGIC = b"mlops-sandbox-state/2\n"
_BACKEND_DICT_FIELDS = ("backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id")


class SnapshotError(Exception):
    """A state file that must not be loaded: one line naming it and how to recover."""


def _recover() -> str:
    return "`sandbox down --discard` removes it and the next `sandbox up` starts empty"


def state_bytes(extra: dict) -> tuple[bytes, list[str]]:
    """Every used service's state (with the BackendDict's own fields: S3's bucket -> owning account
    map lives there) plus `extra`, pickled; and the services that could not be."""
    state, skipped = {}, []
    for name, backends in loaded_backends().items():
        fields = {k: v for k, v in vars(backends).items() if k not in _BACKEND_DICT_FIELDS}
        try:
            state[name] = pickle.dumps((dict(backends), fields))
        except Exception as exc:  # one odd service must not lose the rest
            skipped.append(f"{name}: {exc}")
    return pickle.dumps({"services": state, "extra": extra}), skipped


def seal(payload: bytes, key: str) -> bytes:
    return MAGIC + hmac.new(bytes.fromhex(key), payload, hashlib.sha256).digest() + payload


def unseal(data: bytes, key: str, path: Path | str) -> bytes:
    """The payload of a sealed file, or SnapshotError when it is not this home's."""
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{path} is not a sandbox state file (damaged or foreign): {_recover()}")
    mac, payload = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if not hmac.compare_digest(mac, hmac.new(bytes.fromhex(key), payload, hashlib.sha256).digest()):
        raise SnapshotError(
            f"{path} was not written by this sandbox home (damaged, or planted: it is never loaded): {_recover()}"
        )
    return payload


def dump(path: Path | str, extra: dict, key: str) -> list[str]:
    """Seal every used service's state plus `extra` (the sandbox's own state) into `path` (0600)."""

    payload, skipped = state_bytes(extra)
    write_private(Path(path), seal(payload, key))  # atomic: a crash mid-write leaves the previous one
    return skipped


def load_payload(payload: bytes) -> dict:
    """Install a payload of state_bytes() into this process's moto backends; returns `extra`."""
    snapshot = pickle.loads(payload)
    for name, blob in snapshot["services"].items():
        module_name, attr = name.split(":")
        live = getattr(importlib.import_module(module_name), attr)
        accounts, fields = pickle.loads(blob)
        for account_id, account_backends in accounts.items():
            dict.__setitem__(live, account_id, account_backends)
        for field_name, value in fields.items():
            setattr(live, field_name, value)
    return snapshot.get("extra", {})


def restore(path: Path | str, key: str) -> dict:
    """Load a snapshot written by dump() (after checking it is this home's); returns `extra`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{path} cannot be read ({exc.strerror}): {_recover()}") from None
    payload = unseal(data, key, path)
    try:
        return load_payload(payload)
    except Exception as exc:  # authentic but unloadable (another moto version): one line
        raise SnapshotError(
            f"{path} cannot be loaded by this sandbox ({type(exc).__name__}: {exc}): {_recover()}"
        ) from None
