"""Where AWS calls go: real AWS or the embedded sandbox. The only difference the toolkit sees.

A backend supplies the endpoint, the caller's base credentials for an account, and botocore settings.
Everything else (role assumption, clients, retries on throttling) is shared code in promote.session.
"""

from __future__ import annotations

import os


class AwsBackend:
    """Real AWS: the standard credential chain (env vars, profile, SSO, instance role)."""

    name = "aws"
    endpoint_url = None

    def __init__(self, profile: str | None = None):
        self.profile = profile or None

    def base_session(self, region: str, account_id: str | None = None):
        # On AWS the caller has one identity whatever the target account; chaining reaches the others.
        import boto3
        return boto3.Session(profile_name=self.profile, region_name=region)

    def botocore_config(self, region: str):
        from botocore.config import Config
        return Config(region_name=region, retries={"mode": "adaptive", "max_attempts": 10},
                      connect_timeout=10, read_timeout=70)

    def terraform_overrides(self):
        """Nothing to add: Terraform reaches AWS with its defaults (registry providers, real endpoints)."""
        return None


def backend_for(env, profile: str | None = None):
    """The backend an environment names (after any --backend override)."""
    if env.backend == "aws":
        return AwsBackend(profile)
    from sandbox.client import SandboxBackend
    return SandboxBackend.for_environment(env, identity=profile or os.environ.get("MLOPS_SANDBOX_IDENTITY"))
