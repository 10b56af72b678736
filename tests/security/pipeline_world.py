"""A bootstrapped dev + registry sandbox with the real pipelines upserted, for the adversarial tests:
each attempt is made the way an insider would make it, against the enforcing sandbox."""

from __future__ import annotations

import subprocess

from tests.conftest import BIN, REPO
from tests.sandbox.engine.test_end_to_end import Story, upsert

DEV, PROD, REGISTRY = "111111111111", "222222222222", "333333333333"


def bootstrap(env_name: str, *accounts: str) -> None:
    for account in accounts:
        done = subprocess.run(
            [str(BIN / "bootstrap-account"), "--env", env_name, "--account", account, "--apply"],
            check=False,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr


def pipeline_world(env, which=("train", "inference")) -> Story:
    """dev and the registry bootstrapped (fresh sandbox), the pipelines of `which` upserted in dev."""
    from mlops_core.session import Sessions
    from pipelines.definitions import build_pipelines
    from sandbox import client

    client.reset()
    bootstrap("dev", "dev", "registry")
    specs = build_pipelines(env, which)
    sessions = Sessions(env)
    for spec in specs.values():
        upsert(sessions, env, spec)
    return Story(env, sessions, specs)


def registered_versions(story) -> list[dict]:
    return story.registry().list_model_packages(ModelPackageGroupName=story.env.model_package_group_arn)[
        "ModelPackageSummaryList"
    ]
