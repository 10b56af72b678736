"""The four console commands: real --help, cheap start-up, honest about what is not built."""

import subprocess
import sys

import pytest

from tests.conftest import run_cli

COMMANDS = ["run-pipeline", "promote", "bootstrap-account", "sandbox"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_the_command(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 8


@pytest.mark.parametrize(
    "module, attr",
    [("pipelines.run_pipeline", "main"), ("promote.cli", "main"), ("iam.cli", "main"), ("sandbox.cli", "main")],
)
def test_help_imports_neither_boto3_nor_the_sdk(module, attr):
    code = (
        f"import sys\nfrom {module} import {attr}\n"
        f"try:\n    {attr}(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('sagemaker', 'pandas', 'boto3', 'botocore', 'moto', 'numpy')"
        " if m in sys.modules)\nprint('HEAVY:' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY:"
