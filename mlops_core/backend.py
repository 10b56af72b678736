"""Where AWS calls go: real AWS or the embedded sandbox. The only difference the toolkit sees.

A backend supplies the endpoint, the caller's base credentials for an account, and botocore settings.
Everything else (role assumption, clients, retries on throttling) is shared code in mlops_core.session.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit

from mlops_core.config import Environment
from mlops_core.errors import ConfigError

# boto3 and botocore ship no type information; their sessions and configs are Any here.
BotoSession = Any
BotoConfig = Any

# Backends other than AWS register a factory under this entry-point group (the sandbox does, in
# pyproject.toml), so this core package never imports them.
BACKEND_ENTRY_POINTS = "mlops_toolkit.backends"


@dataclass(frozen=True)
class TerraformOverrides:
    """What a backend adds to a Terraform run so the same configuration reaches it.

    files: extra files written into the working directory (e.g. a provider `*_override.tf`);
    backend_config: extra `-backend-config` entries; cli_config: the text of a CLI configuration
    (TF_CLI_CONFIG_FILE, e.g. an offline provider mirror); env: extra environment variables.
    """

    files: dict[str, str] = field(default_factory=dict)
    backend_config: dict[str, str] = field(default_factory=dict)
    cli_config: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    """What the toolkit needs from wherever its AWS calls go (AwsBackend, or one from an entry point)."""

    name: str
    endpoint_url: str | None

    def base_session(self, region: str, account_id: str | None = None) -> BotoSession: ...

    def botocore_config(self, region: str) -> BotoConfig: ...

    def terraform_overrides(self) -> TerraformOverrides | None: ...


class AwsBackend:
    """Real AWS: the standard credential chain (env vars, profile, SSO, instance role)."""

    name = "aws"
    endpoint_url: str | None = None

    def __init__(self, profile: str | None = None) -> None:
        self.profile = profile or None

    def base_session(self, region: str, account_id: str | None = None) -> BotoSession:  # noqa: ARG002 (the interface)
        # On AWS the caller has one identity whatever the target account; chaining reaches the others.
        import boto3

        return boto3.Session(profile_name=self.profile, region_name=region)

    def botocore_config(self, region: str) -> BotoConfig:
        from botocore.config import Config

        return Config(
            region_name=region, retries={"mode": "adaptive", "max_attempts": 10}, connect_timeout=10, read_timeout=70
        )

    def terraform_overrides(self) -> TerraformOverrides | None:
        """Nothing to add: Terraform reaches AWS with its defaults (registry providers, real endpoints)."""
        return None


_FACTORIES: dict[str, Any] = {}  # backend name -> factory(env, profile), loaded once from its entry point


def _factory(name: str) -> Any:
    if name not in _FACTORIES:
        for entry in entry_points(group=BACKEND_ENTRY_POINTS, name=name):
            _FACTORIES[name] = entry.load()
    if name not in _FACTORIES:
        raise ConfigError(f"no backend named '{name}' is installed", field="backend")
    return _FACTORIES[name]


def endpoint_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables botocore would honour, by name."""
    environ = os.environ if environ is None else environ
    if str(environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")).lower() == "true":
        return {}
    return {k: v for k, v in environ.items() if (k == "AWS_ENDPOINT_URL" or k.startswith("AWS_ENDPOINT_URL_")) and v}


def is_local_endpoint(url: str) -> bool:
    """True for an endpoint on this machine (loopback, unspecified address, localhost names)."""
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _refuse_local_endpoints() -> None:
    # backend: aws must reach AWS: an endpoint variable aimed at a local emulator (the sandbox
    # included) would make the toolkit act there while saying "aws".
    for name, url in sorted(endpoint_overrides().items()):
        if is_local_endpoint(url):
            raise ConfigError(
                f"'{url}' is an endpoint on this machine, not AWS: unset {name} or use the sandbox backend",
                field=name,
            )


def backend_for(env: Environment, profile: str | None = None) -> Backend:
    """The backend an environment names (after any --backend override)."""
    if env.backend == "aws":
        _refuse_local_endpoints()
        return AwsBackend(profile)
    return _factory(env.backend)(env, profile or os.environ.get("MLOPS_SANDBOX_IDENTITY"))
