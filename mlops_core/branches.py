"""Branch environments: a git branch's own namespace inside a dev-like environment's account.

`branch_environment(env, "feature/Fix-42")` is the environment with every name derived under the
branch's namespace (`feature-fix-42`): pipelines `<project>-<ns>-<name>`, the inference Lambda, the
mlops-infra rules and topic (`<project>-<env>-<ns>-...`, Terraform state key `mlops-infra/<env>-<ns>/`),
S3 data under `branches/<ns>/` and a model package group of its own (`<group>-branches`) in which no
version can ever be approved, so nothing trained on a branch can reach stage or prod. Every name
stays inside the patterns the dev account's roles already grant (`<project>-*`, `<project>-<env>-*`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

from mlops_core.config import Environment
from mlops_core.errors import ConfigError

# The longest namespace every derived name fits with the shipped project name: the longest is the
# retraining rule, `<project>-<env>-<ns>-retrain-on-inference-failure`, and EventBridge caps rule
# names at 64 characters. Longer branch names are cut and suffixed with a hash of the full name.
MAX_NAMESPACE = 20
_HASH = 6
BRANCH_GROUP_SUFFIX = "-branches"
# The name-length limits AWS documents for what a branch deploys (names are checked against these).
_LIMITS = {"pipeline": 256, "lambda function": 64, "EventBridge rule": 64, "model package group": 63}
_LONGEST_RULE_SUFFIX = "-retrain-on-inference-failure"


def namespace(branch: str) -> str:
    """A git branch name as a namespace of lowercase letters, digits and single hyphens, at most
    MAX_NAMESPACE characters: what S3 keys, SageMaker, Lambda and EventBridge names all accept."""
    if not isinstance(branch, str) or not branch.strip():
        raise ConfigError("a branch name is required", field="--branch")
    name = branch.strip().removeprefix("refs/heads/").removeprefix("origin/")
    ns = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not ns:
        raise ConfigError(f"{branch!r} has no letter or digit to name a namespace with", field="--branch")
    if len(ns) > MAX_NAMESPACE:
        digest = hashlib.sha256(branch.encode()).hexdigest()[:_HASH]
        ns = ns[: MAX_NAMESPACE - _HASH - 1].rstrip("-") + "-" + digest
    return ns


def branch_group(env: Environment) -> str:
    """The registry group branch runs register in: no role may approve a version there."""
    return f"{env.model_package_group}{BRANCH_GROUP_SUFFIX}"  # = Environment.register_group of a branch


def _branch_name(env: Environment, name: str, ns: str) -> str:
    prefix = f"{env.project}-"
    return f"{prefix}{ns}-{name.removeprefix(prefix)}"


def branch_environment(env: Environment, branch: str, *, other_environments: Iterable[str] = ()) -> Environment:
    """The environment of `branch` inside `env` (dev-like only). Refused in one line when the branch
    sanitises to nothing, or its names would be those of the main environment or another environment
    file (`other_environments`: their names)."""
    if env.kind != "dev":
        raise ConfigError(
            f"environment '{env.name}' is {env.kind}-like: branch namespaces live only in dev-like environments",
            field="--branch",
        )
    if env.branch is not None:
        raise ConfigError(f"environment '{env.name}' is already branch '{env.branch}'", field="--branch")
    ns = namespace(branch)
    pipelines = {key: _branch_name(env, name, ns) for key, name in env.pipelines.items()}
    derived = replace(
        env,
        name=f"{env.name}-{ns}",
        pipelines=pipelines,
        branch=branch,
        namespace=ns,
        base_name=env.name,
    )
    main_names = set(env.pipelines.values()) | {env.name, *other_environments}
    taken = sorted(main_names & {*pipelines.values(), derived.name})
    if taken:
        raise ConfigError(
            f"{branch!r} (namespace '{ns}') would reuse the name {taken[0]!r} of the main environments",
            field="--branch",
        )
    too_long = [
        (what, name)
        for what, name in (
            *(("pipeline", n) for n in pipelines.values()),
            ("lambda function", derived.lambda_function_name),
            ("EventBridge rule", f"{env.project}-{derived.name}{_LONGEST_RULE_SUFFIX}"),
            ("model package group", branch_group(env)),
        )
        if len(name) > _LIMITS[what]
    ]
    if too_long:
        what, name = too_long[0]
        raise ConfigError(
            f"{branch!r}: the {what} name {name!r} would be {len(name)} characters, over AWS's {_LIMITS[what]}",
            field="--branch",
        )
    return derived


# What else a branch deployed besides its pipelines (its mlops-infra resources and Terraform state)
# is removed by steps other packages register under this entry-point group (promote does, in
# pyproject.toml), so teardown in the pipelines package needs no Terraform of its own.
TEARDOWN_ENTRY_POINTS = "mlops_toolkit.branch_teardown"
TeardownStep = Callable[[Environment, Any, Callable[[str], None]], dict]
_TEARDOWN_STEPS: dict[str, TeardownStep] = {}


def register_teardown_step(name: str, step: TeardownStep) -> None:
    """Make `step(branch_env, sessions, echo)` part of every branch teardown (returns what it removed)."""
    _TEARDOWN_STEPS[name] = step


def teardown_steps() -> list[tuple[str, TeardownStep]]:
    """(name, step) of every registered teardown step, installed ones included, by name."""
    steps = dict(_TEARDOWN_STEPS)
    for entry in entry_points(group=TEARDOWN_ENTRY_POINTS):
        steps.setdefault(entry.name, entry.load())
    return sorted(steps.items())


def for_branch(env: Environment, branch: str | None) -> Environment:
    """`env` itself without a branch, else its branch environment, checked against every environment
    file next to env's (their names are the main environments' names)."""
    if branch is None:
        return env
    others = sorted(p.stem for p in env.source.parent.glob("*.yaml")) if env.source else []
    return branch_environment(env, branch, other_environments=others)
