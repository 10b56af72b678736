"""The control API between the `sandbox` commands and the server (`/_sandbox/<route>`): the token
header and typed errors.

A route handler raises one of the errors below; the server answers its HTTP status and
`{"code", "error", "field"}`; the client raises the same class again from the code. No side
parses the other's message text. Body keys are named like the `sandbox` command's options, so a
bad value names the option (`--by`).
"""

from __future__ import annotations

from mlops_core.errors import ConfigError, SandboxError

TOKEN_HEADER = "X-Sandbox-Token"
# Where a person logs in to an account of the sandbox (seeded by the server, assumed by the client's
# backend with the person's name as STS source identity), kept apart from what the toolkit creates.
LOGIN_ROLE = "sandbox-login"
LOGIN_ROLE_PATH = "/sandbox/"


class InvalidInput(ConfigError):
    """A value the caller sent is wrong (exit 2, like any bad input)."""

    code = "InvalidInput"
    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        self.message = message
        super().__init__(message, field=f"--{field}" if field else None)
        self.field = field


class ControlError(SandboxError):
    """A refused or failed control call (exit 1)."""

    code = "ServerFault"
    status = 500

    def __init__(self, message: str, *, field: str | None = None):
        self.message, self.field = message, field
        super().__init__(message)


class Forbidden(ControlError):
    """The request lacks the control token of the sandbox home."""

    code = "Forbidden"
    status = 403


class NotFound(ControlError):
    """No such control route (or not for this method)."""

    code = "NotFound"
    status = 404


class ServerFault(ControlError):
    """A sandbox bug: the server answers instead of hanging the client."""

    code = "ServerFault"
    status = 500


class Unavailable(ControlError):
    """The server is starting (replaying its journal) or stopping: the request was not run."""

    code = "Unavailable"
    status = 503


ERRORS: dict[str, type[InvalidInput] | type[ControlError]] = {
    cls.code: cls for cls in (InvalidInput, Forbidden, NotFound, ServerFault, Unavailable)
}
RouteError = (InvalidInput, ControlError)


def error_body(exc: InvalidInput | ControlError) -> dict:
    """What the server answers for `exc`."""
    body = {"code": exc.code, "error": exc.message}
    if exc.field:
        body["field"] = exc.field
    return body


def error_from(status: int, body: object, route: str) -> InvalidInput | ControlError:
    """The exception a client raises for an error answer of `route`."""
    if isinstance(body, dict) and body.get("code") == InvalidInput.code:
        return InvalidInput(str(body.get("error", "")), field=body.get("field"))
    if isinstance(body, dict) and body.get("code") in ERRORS:
        return ERRORS[body["code"]](f"sandbox {route} failed: {body.get('error', '')}", field=body.get("field"))
    return ServerFault(f"sandbox {route} failed (HTTP {status}): {body}")
