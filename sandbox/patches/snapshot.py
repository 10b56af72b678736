"""Lets moto's state pickle, so snapshots (sandbox/statefile.py) hold all of it: KMS keys hold
`cryptography` private keys, reduced to PEM bytes; Lambda's storage holds a weak map and lambda-made
defaultdicts, reduced to their plain equivalents.
"""

from __future__ import annotations

import collections
import copyreg
import weakref

from sandbox.patching import Patch


def register_key_reducers() -> None:
    # moto's Lambda storage indexes functions by ARN in a WeakValueDictionary, which does not pickle;
    # its values are pickled with the functions that own them, so the weak map is rebuilt over them
    copyreg.pickle(weakref.WeakValueDictionary, lambda d: (_weak_values, (dict(d.items()),)))
    # ...and keeps aliases in a defaultdict(lambda: {}): a lambda does not pickle, an equivalent type does
    copyreg.pickle(collections.defaultdict, _reduce_defaultdict)

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


def _reduce_defaultdict(d):
    factory = d.default_factory
    if factory is not None and getattr(factory, "__name__", "") == "<lambda>":
        sample = factory()
        factory = next((t for t in (dict, list, set) if type(sample) is t and not sample), factory)
    return (_defaultdict, (factory, dict(d)))


def _defaultdict(factory, items: dict):
    return collections.defaultdict(factory, items)


def _weak_values(items: dict):
    return weakref.WeakValueDictionary(items)


def _load_pem(data: bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(data, password=None)


PATCH = Patch(
    name="pickle-crypto-keys",
    adds="KMS key material and Lambda functions survive a sandbox restart (keys pickle as PEM, weak maps as maps)",
    overrides=("copyreg.dispatch_table",),
    apply=register_key_reducers,
)
