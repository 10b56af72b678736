"""Lets the sandbox's state survive `sandbox down` / `sandbox up`: AWS state outlives a laptop reboot.

moto keeps state in per-service BackendDicts; most pickle as they are. KMS keys hold
`cryptography` private keys, which do not, so they are reduced to PEM bytes.
"""

from __future__ import annotations

import copyreg
import importlib
import os
import pickle
import sys

from sandbox.patches import patch


@patch("pickle-crypto-keys", adds="KMS key material survives a sandbox restart (keys pickle as PEM)")
def register_key_reducers():
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


def dump(path, extra: dict) -> list[str]:
    """Pickle every used service's state plus `extra` (the sandbox's own state) to `path`."""
    state, skipped = {}, []
    for name, backends in loaded_backends().items():
        try:
            state[name] = pickle.dumps(dict(backends))
        except Exception as exc:  # one odd service must not lose the rest
            skipped.append(f"{name}: {exc}")
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        pickle.dump({"services": state, "extra": extra}, fh)
    os.replace(tmp, path)  # a crash mid-write leaves the previous snapshot intact
    return skipped


def restore(path) -> dict:
    """Load a snapshot written by dump() into this process's moto backends; returns `extra`."""
    with open(path, "rb") as fh:
        snapshot = pickle.load(fh)
    for name, blob in snapshot["services"].items():
        module_name, attr = name.split(":")
        live = getattr(importlib.import_module(module_name), attr)
        for account_id, account_backends in pickle.loads(blob).items():
            dict.__setitem__(live, account_id, account_backends)
    return snapshot.get("extra", {})
