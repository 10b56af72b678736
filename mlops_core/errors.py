"""Failures a user can act on, each rendered once at the CLI edge as one line.

Exit code 2 means the input was wrong (config, arguments); 1 means an operation failed.
"""

from __future__ import annotations

from typing import Any


class ToolkitError(Exception):
    """Base class: `str(error)` is the one line shown to the user."""

    exit_code = 1


class ConfigError(ToolkitError):
    """An environment file or a command-line value is invalid: names the file, field and value."""

    exit_code = 2

    def __init__(self, message: str, *, source: object = None, field: str | None = None):
        self.source = source
        self.field = field
        prefix = ": ".join(str(p) for p in (source, field) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class AccessDenied(ToolkitError):
    """AWS (or the sandbox) refused a call; names the principal and the action when known."""

    CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")

    @classmethod
    def from_client_error(cls, exc: Any) -> AccessDenied | None:
        """The one-line form of a botocore ClientError that is a denial, else None."""
        err = exc.response.get("Error", {})
        if err.get("Code") in cls.CODES:
            return cls(f"{exc.operation_name} denied: {err.get('Message', '')}")
        return None


class SandboxError(ToolkitError):
    """The embedded sandbox could not be started, reached or stopped."""


class PipelineFailed(ToolkitError):
    """A pipeline execution ended Failed or Stopped."""
