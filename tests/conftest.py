"""Shared fixtures: one sandbox server per test session on a free loopback port, a clean state per test
that asks for one, environments, sessions, and a runner for the console commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def sandbox_home(tmp_path_factory):
    """A private sandbox home for the whole test session; the CLIs run by tests inherit it."""
    home = tmp_path_factory.mktemp("sandbox-home")
    previous = os.environ.get("MLOPS_SANDBOX_HOME")
    os.environ["MLOPS_SANDBOX_HOME"] = str(home)
    os.environ.pop("MLOPS_SANDBOX_CREDENTIALS", None)
    yield home
    if previous is None:
        os.environ.pop("MLOPS_SANDBOX_HOME", None)
    else:
        os.environ["MLOPS_SANDBOX_HOME"] = previous


@pytest.fixture(scope="session")
def sandbox_server(sandbox_home):
    """The running sandbox (status dict), stopped without a snapshot when the session ends."""
    from mlops_core.config import list_environments, load_environment
    from sandbox import client

    accounts = {}
    for name in list_environments(REPO / "environments"):
        accounts.update(load_environment(name, env_dir=REPO / "environments").sandbox_accounts)
    status = client.up(accounts)
    yield status
    client.down(save=False)


@pytest.fixture
def sandbox(sandbox_server):
    """A sandbox whose accounts are empty but for their seeded admins."""
    from sandbox import client

    return client.reset()


@pytest.fixture
def account(sandbox):
    """A pipeline account on the clean sandbox (tests/sandbox/pipeline_account.py): a bucket, and an
    execution role SageMaker may assume; for the engine, events, clock and progress tests."""
    from tests.sandbox.pipeline_account import pipeline_account

    return pipeline_account(sandbox)


@pytest.fixture
def dev_env():
    from mlops_core.config import load_environment

    return load_environment("dev", env_dir=REPO / "environments")


@pytest.fixture
def prod_env():
    from mlops_core.config import load_environment

    return load_environment("prod", env_dir=REPO / "environments")


@pytest.fixture
def sessions(sandbox):
    """Sessions(env) factory against the clean sandbox."""
    from mlops_core.session import Sessions

    return lambda env, **kw: Sessions(env, **kw)


def run_cli(*argv, env=None, input=None, timeout=300, cwd=REPO):
    """Run an installed console command (run-pipeline, promote, bootstrap-account, sandbox)."""
    command = [str(BIN / argv[0]), *argv[1:]]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, input=input, timeout=timeout, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli
