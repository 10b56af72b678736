"""What every console command shares: environment options, one-line errors at the edge, output.

Commands stay thin (parse, call a library function, render). Only click is imported here: a
command's `--help` must not pay for boto3 or the SageMaker SDK.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
from collections.abc import Callable
from typing import IO, Any, TypeVar, cast

import click

from mlops_core.config import load_environment
from mlops_core.errors import ToolkitError
from mlops_core.session import LOGIN_VARIABLE, login_identity
from mlops_core.text import table

__all__ = [
    "ToolkitCommand",
    "ToolkitGroup",
    "emit_json",
    "env_dir_option",
    "environment_options",
    "environment_selection",
    "output_option",
    "table",
]


F = TypeVar("F", bound=Callable[..., Any])


class _OneLineUsageError(click.UsageError):
    """click's usage error (bad option value, unknown option...) as the toolkit's one line, exit 2."""

    def show(self, file: IO[Any] | None = None) -> None:  # noqa: ARG002 (click's signature; always stderr)
        click.echo(f"error: {self.format_message()}", err=True)


def _one_line(exc: click.UsageError) -> click.UsageError:
    return exc if isinstance(exc, _OneLineUsageError) else _OneLineUsageError(exc.format_message(), exc.ctx)


class _ErrorEdge:
    """Renders toolkit failures as one line on stderr with the right exit code."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        # option values are checked here (click types, ranges), before the command runs or reaches AWS
        try:
            return super().make_context(*args, **kwargs)  # type: ignore[misc]
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except click.UsageError as exc:  # a subcommand's options, an unknown subcommand
            raise _one_line(exc) from None
        except ToolkitError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            line = _client_error_line(exc)
            if line is None:
                raise
            click.echo(f"error: {line}", err=True)
            ctx.exit(1)


class _CommandProcess:
    """What a console command does once, as its process starts (click calls the command object;
    tests that drive a command in-process call its `main`, and keep their own collector settings)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _settle_garbage_collection()
        return super().__call__(*args, **kwargs)  # type: ignore[misc]


# A command is a short process that, within its first second, allocates a few hundred thousand objects
# that live until it exits: its modules, and botocore's service models (SageMaker's is megabytes of
# JSON). CPython's cyclic collector, tuned for long-running programs, walks them all again and again
# meanwhile: ~0.15 s of `promote status`, a tenth of its run.
_GC_YOUNGEST_THRESHOLD = 7000  # CPython's default is 700 allocations


def _settle_garbage_collection() -> None:
    """Freeze what the imports created (modules, classes, functions never become garbage) so later
    collections skip it, and collect the youngest generation every 7,000 allocations instead of 700.
    Cycles are still collected, in a long `--wait` too."""
    gc.freeze()
    gc.set_threshold(_GC_YOUNGEST_THRESHOLD, *gc.get_threshold()[1:])


class ToolkitGroup(_CommandProcess, _ErrorEdge, click.Group):
    """A command group with the toolkit's error edge."""


class ToolkitCommand(_CommandProcess, _ErrorEdge, click.Command):
    """A single command with the toolkit's error edge."""


def _client_error_line(exc: BaseException) -> str | None:
    """botocore's ClientError as one line, without importing botocore when it was never used."""
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is None:
        return None
    if isinstance(exc, botocore_exceptions.ClientError):
        err = exc.response.get("Error", {})
        return f"{exc.operation_name} failed: {err.get('Code', '?')}: {err.get('Message', '')}"
    if isinstance(exc, (botocore_exceptions.EndpointConnectionError, botocore_exceptions.NoCredentialsError)):
        return str(exc)
    return None


def _environment_selection(*, required: bool) -> list[Callable[[F], F]]:
    """The four options that pick an environment and whom to act as, defined once for every command."""
    return [
        click.option(
            "--env",
            "env_name",
            required=required,
            metavar="ENV",
            help="Environment name (a file in environments/) or a path to its YAML file.",
        ),
        env_dir_option,
        click.option(
            "--backend",
            type=click.Choice(["sandbox", "aws"]),
            default=None,
            help="Override the environment's backend: the embedded sandbox or real AWS.",
        ),
        click.option(
            "--profile",
            default=None,
            help="AWS profile to act as (on the sandbox: an account label such as registry).",
        ),
        click.option(
            "--as",
            "login_as",
            default=None,
            metavar="NAME",
            help=f"Who acts (default: ${LOGIN_VARIABLE}), set once as the STS source identity of the first role "
            "assumed. On AWS, SSO/SAML/OIDC sign-in sets it instead.",
        ),
    ]


def _log_in(login_as: str | None) -> None:
    """--as NAME: the rest of the command (and what it spawns) acts as NAME."""
    identity = login_identity(login_as, field="--as") if login_as is not None else None
    if identity:
        os.environ[LOGIN_VARIABLE] = identity


def env_dir_option(func: F) -> F:
    return click.option(
        "--env-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Directory of environment files (default: $MLOPS_ENV_DIR or ./environments).",
    )(func)


def environment_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--env, --env-dir, --backend and --profile, loaded into an Environment passed as `env`."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        env_name: str,
        env_dir: str | None,
        backend: str | None,
        profile: str | None,
        login_as: str | None,
        **kwargs: Any,
    ) -> Any:
        _log_in(login_as)
        env = load_environment(env_name, env_dir=env_dir, backend=backend)
        return func(*args, env=env, profile=profile, **kwargs)

    for option in reversed(_environment_selection(required=True)):
        wrapper = option(wrapper)
    return wrapper


def environment_selection(func: F) -> F:
    """The same options with --env optional, passed through unloaded as env_name, env_dir, backend and
    profile: for a group that also runs without a subcommand (run-pipeline)."""

    @functools.wraps(func)
    def wrapper(*args: Any, login_as: str | None, **kwargs: Any) -> Any:
        _log_in(login_as)
        return func(*args, **kwargs)

    selected: Any = wrapper
    for option in reversed(_environment_selection(required=False)):
        selected = option(selected)
    return cast("F", selected)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for machines.",
    )(func)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))


def branch_option(func: F) -> F:
    """--branch NAME: act on that git branch's namespace inside a dev-like environment."""
    return click.option(
        "--branch",
        default=None,
        metavar="NAME",
        help="Git branch (Jenkins: $BRANCH_NAME): its own namespace of pipelines, Lambda, rules, S3 data and "
        "Terraform state in the dev-like environment.",
    )(func)
