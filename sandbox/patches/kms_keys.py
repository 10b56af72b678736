"""KMS across accounts: key ARNs resolve in the owning account, key policies decide, key state matters.

AWS: https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html
(the key policy must allow the other account AND its IAM policy must allow the caller),
https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html (a root-principal grant
delegates to IAM), https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html (a disabled
key refuses cryptographic operations with DisabledException, a key pending deletion with
KMSInvalidStateException). `use_key()` is the same check for services (S3) acting on a caller's behalf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.patches.enforcement import AccessDeniedBy, Caller, Target, arn_account, check, current, param, resolver
from sandbox.patching import Patch

CRYPTO = {
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "Sign",
    "Verify",
    "GenerateMac",
    "VerifyMac",
}


@dataclass
class KeyRef:
    account_id: str
    key: Any  # moto's Key, or None when it does not exist
    arn: str


def _backend(account_id: str, region: str):
    from moto.kms.models import kms_backends

    return kms_backends[account_id][region]


def resolve_key(ref: str, default_account: str, region: str) -> KeyRef:
    """A key id, key ARN, alias name or alias ARN, resolved in the account it names (else `default_account`)."""
    account = arn_account(ref, default_account)
    if ref.startswith("arn:"):
        region = ref.split(":")[3] or region
    backend = _backend(account, region)
    if ref.startswith("alias/") or ":alias/" in ref:
        alias = "alias/" + ref.split(":alias/")[1] if ref.startswith("arn:") else ref
        key_id = backend.get_key_id_from_alias(alias)
    else:
        key_id = ref.split(":key/")[1] if ref.startswith("arn:") else ref
    key = backend.keys.get(key_id) if key_id else None
    arn = (
        key.arn
        if key is not None
        else (
            ref
            if ref.startswith("arn:")
            else f"arn:aws:kms:{region}:{account}:{ref if ref.startswith('alias/') else 'key/' + ref}"
        )
    )
    return KeyRef(account, key, arn)


def key_for_ciphertext(blob: bytes, caller_account: str, region: str) -> KeyRef | None:
    """The key a moto ciphertext was made with, in whichever account owns it (the blob names the key,
    as AWS's ciphertext metadata does)."""
    from moto.kms.models import kms_backends
    from moto.kms.utils import _deserialize_ciphertext_blob

    try:
        key_id = _deserialize_ciphertext_blob(blob).key_id
    except Exception:
        return None
    accounts = [caller_account] + [a for a in list(kms_backends.keys()) if a != caller_account]
    for account in accounts:
        regions = kms_backends[account]
        backend = dict.get(regions, region)
        if backend is not None and key_id in backend.keys:
            return KeyRef(account, backend.keys[key_id], backend.keys[key_id].arn)
    return None


def refuse_unusable(key: Any) -> None:
    """Raise AWS's key-state error for a key that cannot encrypt or decrypt now."""
    from moto.core.exceptions import JsonRESTError

    if key.key_state == "Disabled":
        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state == "PendingDeletion":
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is pending deletion.")


def _context(caller_account: str, encryption_context: dict | None, via: str | None) -> dict:
    ctx: dict[str, Any] = {"kms:CallerAccount": caller_account}
    if via:
        ctx["kms:ViaService"] = via
    for k, v in (encryption_context or {}).items():
        ctx[f"kms:EncryptionContext:{k}"] = v
    if encryption_context:
        ctx["kms:EncryptionContextKeys"] = list(encryption_context)
    return ctx


def _resource_tags(ref: KeyRef) -> dict:
    """aws:ResourceTag/<key> of a KMS key: its tags, as AWS KMS ABAC evaluates them
    (https://docs.aws.amazon.com/kms/latest/developerguide/abac.html)."""
    tags = _backend(ref.account_id, ref.key.region).tagger.get_tag_dict_for_resource(ref.key.id)
    return {f"aws:ResourceTag/{k}": v for k, v in tags.items()}


def _request_tags(response) -> dict:
    """aws:RequestTag/<key> and aws:TagKeys of CreateKey / TagResource (their Tags parameter)."""
    tags = {t.get("TagKey"): t.get("TagValue") for t in param(response, "Tags") or []}
    ctx = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        ctx["aws:TagKeys"] = list(tags)
    return ctx


def key_target(ref: KeyRef, caller: Caller, encryption_context: dict | None = None, via: str | None = None) -> Target:
    return Target(
        [ref.arn],
        ref.account_id,
        policy=ref.key.policy,
        policy_kind="key",
        context={**_context(caller.account_id, encryption_context, via), **_resource_tags(ref)},
    )


def use_key(
    caller: Caller, action: str, ref: KeyRef, region: str, *, via: str, encryption_context: dict | None = None
) -> None:
    """A service using `ref` on the caller's behalf (S3 SSE-KMS): key state, key policy, IAM policy."""
    if ref.key is None:
        raise AccessDeniedBy(caller, action, ref.arn, "because the key does not exist or is not accessible")
    check(caller, action, key_target(ref, caller, encryption_context, via), region)
    refuse_unusable(ref.key)


@resolver("kms")
def _kms(response, action, caller, region, _default_resource) -> Target:
    acct = caller.account_id
    if action == "CreateKey":
        target = Target(["*"], acct, policy_kind="none", context=_request_tags(response))
        new_tags = {
            k.replace("aws:RequestTag/", "aws:ResourceTag/"): v
            for k, v in target.context.items()
            if k.startswith("aws:RequestTag/")
        }
        target.after = lambda c, _state: _refuse_lockout(
            response, c, f"arn:aws:kms:{region}:{acct}:key/new", region, new_tags
        )
        return target
    if action in ("ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants"):
        return Target(["*"], acct, policy_kind="none")
    if action in ("CreateAlias", "UpdateAlias", "DeleteAlias"):
        # Permission on the alias AND on each key it is pointed at or away from
        # (https://docs.aws.amazon.com/kms/latest/developerguide/alias-access.html).
        alias = param(response, "AliasName", "")
        target = Target([f"arn:aws:kms:{region}:{acct}:{alias}"], acct, policy_kind="none")
        keys = [param(response, "TargetKeyId")] if action != "DeleteAlias" else []
        if action != "CreateAlias":
            current_key = _backend(acct, region).get_key_id_from_alias(alias)
            keys.append(current_key)

        def keys_allow(c, _state):
            for ref in (resolve_key(k, acct, region) for k in keys if k):
                if ref.key is not None:
                    check(c, f"kms:{action}", key_target(ref, c), region)

        target.after = keys_allow
        return target
    encryption_context = param(response, "EncryptionContext") or param(response, "SourceEncryptionContext")
    key_ref = param(response, "KeyId") or param(response, "TargetKeyId")
    if action in ("Decrypt", "ReEncrypt") and not (action == "Decrypt" and key_ref):
        ref = key_for_ciphertext(param(response, "CiphertextBlob") or b"", acct, region)
        if ref is None:
            return Target(["*"], acct, policy_kind="none")  # moto answers InvalidCiphertextException
    elif key_ref:
        ref = resolve_key(key_ref, acct, region)
    else:
        return Target(["*"], acct, policy_kind="none")
    if ref.key is None:
        # moto answers NotFoundException from the account the ARN names
        target = Target([ref.arn], acct, policy_kind="none")
        target.after = lambda _c, state: setattr(state, "owner_account", ref.account_id)
        return target
    target = key_target(ref, caller, encryption_context)
    if action == "TagResource":
        target.context.update(_request_tags(response))
    if action == "PutKeyPolicy":
        target.after = lambda c, _state: _refuse_lockout(response, c, ref.arn, region, _resource_tags(ref))
        return target
    if action == "ReEncrypt":
        target.action = "kms:ReEncryptFrom"
    destination = param(response, "DestinationKeyId")

    def after(c, _state):
        if action == "ReEncrypt" and destination:
            dest = resolve_key(destination, acct, region)
            if dest.key is not None:
                check(
                    c, "kms:ReEncryptTo", key_target(dest, c, param(response, "DestinationEncryptionContext")), region
                )
                refuse_unusable(dest.key)
        if action in CRYPTO:
            refuse_unusable(ref.key)

    target.after = after
    return target


def _refuse_lockout(response, caller: Caller, key_arn: str, region: str, tags: dict | None = None) -> None:
    """AWS refuses a key policy that would not let its author change it again, unless told to bypass
    the check (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-bypass-policy-lockout-safety-check)."""
    from moto.core.exceptions import JsonRESTError

    policy = param(response, "Policy")
    if not policy or param(response, "BypassPolicyLockoutSafetyCheck"):
        return
    try:
        check(
            caller,
            "kms:PutKeyPolicy",
            Target(
                [key_arn],
                caller.account_id,
                policy=policy,
                policy_kind="key",
                # the key's tags as they will be once the call succeeds (CreateKey: the request's)
                context={**_context(caller.account_id, None, None), **(tags or {})},
            ),
            region,
        )
    except AccessDeniedBy:
        raise JsonRESTError(
            "MalformedPolicyDocumentException",
            "The new key policy will not allow you to update the key policy in the future.",
        ) from None


def _owner_backend(self):
    state = current()
    account = state.owner_account if state and state.owner_account else self.current_account
    return _backend(account, self.region)


def patch_kms() -> None:
    from moto.kms.models import KmsBackend
    from moto.kms.responses import KmsResponse

    KmsResponse.kms_backend = property(_owner_backend)
    # AWS takes a key ARN wherever it takes a key id; moto's state changes only took ids
    for name in ("disable_key", "enable_key", "schedule_key_deletion", "cancel_key_deletion"):
        setattr(KmsBackend, name, _accepting_arns(getattr(KmsBackend, name)))


def _accepting_arns(method):
    def wrapper(self, key_id, *args, **kwargs):
        return method(self, self.get_key_id(key_id), *args, **kwargs)

    wrapper.__name__ = method.__name__
    return wrapper


PATCH = Patch(
    name="kms-cross-account",
    adds=(
        "KMS key ARNs from other accounts resolve there; key policies (root "
        "delegation, principals, conditions) decide; disabled/pending keys refuse"
    ),
    overrides=(
        "moto.kms.models.KmsBackend.cancel_key_deletion",
        "moto.kms.models.KmsBackend.disable_key",
        "moto.kms.models.KmsBackend.enable_key",
        "moto.kms.models.KmsBackend.schedule_key_deletion",
        "moto.kms.responses.KmsResponse.kms_backend",
    ),
    apply=patch_kms,
)
