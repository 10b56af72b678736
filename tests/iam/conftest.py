"""Fixtures for the bootstrap tests: the three shipped accounts bootstrapped once per module on a
clean sandbox, and helpers to act as the roles the bootstrap created."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

WRITE_PREFIXES = ("Get", "Describe", "List", "Head")


@pytest.fixture(scope="module")
def envs():
    from mlops_core.config import load_environment

    return {name: load_environment(name, env_dir=REPO / "environments") for name in ("dev", "stage", "prod")}


@pytest.fixture(scope="module")
def clean_sandbox(sandbox_server):
    from sandbox import client

    return client.reset()


@pytest.fixture(scope="module")
def module_sessions(clean_sandbox, envs):
    from mlops_core.session import Sessions

    return {name: Sessions(env) for name, env in envs.items()}


def bootstrap_all(envs, module_sessions, *, apply=True, session_hook=None):
    """Bootstrap dev, stage, prod and the registry (in that order: the registry's policies name the
    workload roles). Returns {account label: Result}."""
    from iam.bootstrap import bootstrap

    results = {}
    for kind, env_name in (("dev", "dev"), ("stage", "stage"), ("prod", "prod"), ("registry", "prod")):
        env, sessions = envs[env_name], module_sessions[env_name]
        session = None
        if session_hook is not None:
            session = fresh_session(sessions, kind, env)
            session.events.register("before-call", session_hook)
        results[kind] = bootstrap(env, kind, apply=apply, sessions=sessions, session=session)
    return results


def fresh_session(sessions, kind, env):
    """A new boto3 session for the account admin, so hooks registered on it reach only our clients."""
    import boto3

    account_id = env.registry_account_id if kind == "registry" else env.account_id
    base = sessions.in_account(account_id)
    creds = base.get_credentials()
    return boto3.Session(
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
        region_name=env.region,
    )


@pytest.fixture(scope="module")
def bootstrapped(envs, module_sessions):
    return bootstrap_all(envs, module_sessions)


class CallCounter:
    """A botocore before-call hook counting every request, and optionally cutting after N writes."""

    def __init__(self, cut_after_writes: int | None = None):
        self.cut_after = cut_after_writes
        self.reads: list[str] = []
        self.writes: list[str] = []

    def __call__(self, model, **_):
        if model.name.startswith(WRITE_PREFIXES):
            self.reads.append(model.name)
            return
        if self.cut_after is not None and len(self.writes) >= self.cut_after:
            raise Interrupted(f"cut before write #{len(self.writes) + 1} ({model.name})")
        self.writes.append(model.name)


class Interrupted(Exception):
    """Stands for throttling, a denied call or Ctrl-C halfway through an apply."""


def trust_account_root_too(sessions, role_arn: str) -> None:
    """Let the account admin assume a service role, standing in for the service (SageMaker, Lambda,
    EventBridge) that assumes it on AWS: the permissions exercised are still the role's own."""
    account_id, name = role_arn.split(":")[4], role_arn.split("/")[-1]
    iam = sessions.client("iam", sessions.in_account(account_id))
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    trust["Statement"].append(
        {
            "Sid": "TestStandsInForTheService",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "sts:AssumeRole",
        }
    )
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
