"""Lets the sandbox's state survive `sandbox down` / `sandbox up`: AWS state outlives a laptop reboot.

moto keeps state in per-service BackendDicts; most pickle as they are. KMS keys hold
`cryptography` private keys, which do not, so they are reduced to PEM bytes. A pickle runs code
when loaded, so a state file is authenticated (HMAC-SHA256 with the sandbox home's own key) before
it is unpickled: a planted, foreign or damaged file is refused in one line, never loaded.
"""

from __future__ import annotations

import copyreg
import hashlib
import hmac
import importlib
import pickle
import sys
from pathlib import Path

from sandbox.home import write_private
from sandbox.patching import Patch


def register_key_reducers() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    def pem(key):
        return (
            _load_pem,
            (
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ),
            ),
        )

    for base in (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey):
        for cls in {base, *_concrete(base)}:
            copyreg.pickle(cls, pem)


def _concrete(base):
    # The Rust-backed classes are what instances actually are; find them through a throwaway key.
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    makers = {
        rsa.RSAPrivateKey: lambda: rsa.generate_private_key(65537, 1024),
        ec.EllipticCurvePrivateKey: lambda: ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey: ed25519.Ed25519PrivateKey.generate,
    }
    return {type(makers[base]())}


def _load_pem(data: bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(data, password=None)


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


def unseal(data: bytes, key: str, path: Path) -> bytes:
    """The payload of a sealed file, or SnapshotError when it is not this home's."""
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{path} is not a sandbox state file (damaged or foreign): {_recover()}")
    mac, payload = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if not hmac.compare_digest(mac, hmac.new(bytes.fromhex(key), payload, hashlib.sha256).digest()):
        raise SnapshotError(
            f"{path} was not written by this sandbox home (damaged, or planted: it is never loaded): {_recover()}"
        )
    return payload


def dump(path: Path, extra: dict, key: str) -> list[str]:
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


def restore(path: Path, key: str) -> dict:
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


PATCH = Patch(
    name="pickle-crypto-keys",
    adds=("KMS key material survives a sandbox restart (keys pickle as PEM)"),
    overrides=("copyreg.dispatch_table",),
    apply=register_key_reducers,
)
