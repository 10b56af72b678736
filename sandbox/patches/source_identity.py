"""STS source identity: set once on AssumeRole, carried through role chaining, never changed.

AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html
moto ignores the `SourceIdentity` parameter. Here the value a new session carries is decided when the
request is authorized (sandbox.patches.enforcement: the caller's own source identity if it has one,
else the requested one; a different value in a chain is refused; setting or carrying one needs
`sts:SetSourceIdentity` in the trust policy), stored on the session, returned in the AssumeRole
response as AWS returns it, and evaluated as `aws:SourceIdentity` in every later request of the session.
"""

from __future__ import annotations

from sandbox.patches.enforcement import current
from sandbox.patching import Patch


def patch_source_identity() -> None:
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sts.exceptions import STSValidationError
    from moto.sts.models import AssumedRole
    from moto.sts.responses import MAX_ROLE_NAME_LENGTH, TokenResponse

    def assume_role(self) -> ActionResult:
        role_session_name = self._get_param("RoleSessionName")
        if role_session_name is not None and len(role_session_name) > MAX_ROLE_NAME_LENGTH:
            raise STSValidationError(
                f"1 validation error detected: Value '{role_session_name}' at 'roleSessionName' failed to satisfy "
                f"constraint: Member must have length less than or equal to {MAX_ROLE_NAME_LENGTH}"
            )
        role = self.backend.assume_role(
            region_name=self.region,
            role_session_name=role_session_name,
            role_arn=self._get_param("RoleArn"),
            policy=self._get_param("Policy"),
            duration=self._get_int_param("DurationSeconds", 3600),
            external_id=self._get_param("ExternalId"),
        )
        state = current()
        role.source_identity = (state.extra.get("source_identity") if state else None) or None
        role.created = utcnow()
        result = {
            "Credentials": role,
            "AssumedRoleUser": {"AssumedRoleId": role.user_id, "Arn": role.arn},
            "PackedPolicySize": 6,
        }
        if role.source_identity:
            result["SourceIdentity"] = role.source_identity
        return ActionResult(result)

    TokenResponse.assume_role = assume_role
    AssumedRole.source_identity = None  # class defaults: sessions pickled before this patch still load
    AssumedRole.created = None


PATCH = Patch(
    name="sts-source-identity",
    adds=(
        "AssumeRole SourceIdentity: needs sts:SetSourceIdentity in the trust policy, set once, carried through "
        "role chaining, refused when a chain tries to change it; aws:SourceIdentity in policies"
    ),
    overrides=(
        "moto.sts.responses.TokenResponse.assume_role",
        "moto.sts.models.AssumedRole.source_identity",
        "moto.sts.models.AssumedRole.created",
    ),
    apply=patch_source_identity,
)
