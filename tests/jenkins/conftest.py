"""Fixtures for the Jenkinsfile tests: Groovy (Debian) and npm-groovy-lint (project-local), failing
with the make target that installs them when they are missing, and the stub DSL runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HERE = Path(__file__).resolve().parent
JENKINSFILE = REPO / "Jenkinsfile"
GROOVY_LINT = REPO / ".tools" / "npm" / "node_modules" / ".bin" / "npm-groovy-lint"
_JAVA_HOMES = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/default-java")


def java_env() -> dict:
    env = dict(os.environ)
    # short JVM runs: the C1 compiler alone and a serial GC halve npm-groovy-lint's CPU time
    env["JAVA_TOOL_OPTIONS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    for home in _JAVA_HOMES:
        if Path(home, "bin", "java").exists():
            env["JAVA_HOME"] = home
            break
    return env


@pytest.fixture(scope="session")
def groovy():
    path = shutil.which("groovy")
    if path is None:
        pytest.fail("groovy is not installed: run `make tools` (Debian package groovy)")
    return path


@pytest.fixture(scope="session")
def groovy_lint():
    if not GROOVY_LINT.exists():
        pytest.fail(f"npm-groovy-lint is not installed at {GROOVY_LINT}: run `make tools`")
    return GROOVY_LINT


@pytest.fixture
def jenkins_agent(sandbox):
    """The Jenkins agent's own credentials: a `jenkins-agent` role in the Jenkins account (the principal
    that environments' `jenkins.principal_arn` trusts), allowed only to assume the deploy roles."""
    import boto3
    from botocore.config import Config

    from mlops_core.config import load_environment

    env = load_environment("prod", env_dir=REPO / "environments")
    agent_arn = env.jenkins.principal_arn
    account = env.jenkins.account_id
    creds = {a["account_id"]: a["credentials"] for a in sandbox["accounts"]}[account]
    config = Config(region_name=env.region, retries={"max_attempts": 1})
    admin = boto3.Session(region_name=env.region, **creds)
    iam = admin.client("iam", endpoint_url=sandbox["endpoint"], config=config)
    role_name = agent_arn.rsplit("/", 1)[1]
    iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="assume-deploy-roles",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        # the deploy role's trust requires a source identity, set on this first hop
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                        "Resource": f"arn:aws:iam::*:role/{env.roles.jenkins}",
                    }
                ],
            }
        ),
    )
    sts = admin.client("sts", endpoint_url=sandbox["endpoint"], config=config)
    session = sts.assume_role(RoleArn=agent_arn, RoleSessionName="jenkins-agent")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": session["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
        "AWS_SESSION_TOKEN": session["SessionToken"],
        "AWS_DEFAULT_REGION": env.region,
        # the toolkit acts as whoever the AWS_* variables say, as on a real agent
        "MLOPS_SANDBOX_CREDENTIALS": "env",
    }


def run_stub(groovy_path, tmp_path, *, params, agent_env, input_answer="proceed", timeout=900):
    """Execute the Jenkinsfile with the stub DSL; returns (completed process, the recorded build log)."""
    log = tmp_path / "build-log.json"
    config = {
        "jenkinsfile": str(JENKINSFILE),
        "workspace": str(REPO),
        "params": params,
        "env": agent_env,
        "input": input_answer,
        # the build's own `make test` would run this suite again inside itself; its `make lint` is what CI
        # runs before this suite (.ci/run), a minute of CPU per dry run to repeat here
        "skip_sh": [r"^PYTEST_ADDOPTS=\S+ make test$", r"^make lint$"],
        "assume_role_command": [sys.executable, str(HERE / "assume_role.py")],
        "log": str(log),
    }
    (tmp_path / "stub-config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [groovy_path, str(HERE / "jenkins_stub.groovy"), str(tmp_path / "stub-config.json")],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=java_env(),
        cwd=REPO,
    )
    build = json.loads(log.read_text()) if log.exists() else None
    return result, build
