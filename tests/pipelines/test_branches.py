"""Branch environments in dev: two branches deploy side by side next to the main dev environment, one is
torn down and leaves the other and main exactly as they were; bad branch names and teardown of a branch
that is not there are refused in one line, changing nothing."""

from __future__ import annotations

import json

import pytest

from mlops_core.branches import MAX_NAMESPACE, for_branch, namespace
from mlops_core.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture
def terraform_workdir(tmp_path, monkeypatch):
    """Branch deploys run Terraform: its working directories go under the test's tmp dir."""
    workdir = tmp_path / "terraform-work"
    monkeypatch.setenv("MLOPS_TERRAFORM_WORKDIR", str(workdir))
    return workdir


ALPHA, BETA = "feature/Alpha", "bugfix/JIRA-42_beta#"


@pytest.mark.parametrize(
    "branch, expected",
    [
        ("feature/Alpha", "feature-alpha"),
        ("refs/heads/bugfix/JIRA-42_beta#", "bugfix-jira-42-beta"),
        ("__x__", "x"),
    ],
)
def test_any_git_branch_name_becomes_a_safe_namespace(branch, expected):
    assert namespace(branch) == expected


def test_long_branch_names_are_cut_and_told_apart_by_a_hash():
    a = namespace("feature/a-very-long-branch-name-about-the-new-feature-store")
    b = namespace("feature/a-very-long-branch-name-about-the-new-feature-flags")
    assert a != b and len(a) <= MAX_NAMESPACE and len(b) <= MAX_NAMESPACE
    assert a.startswith("feature-a-ver") and a == namespace(
        "feature/a-very-long-branch-name-about-the-new-feature-store"
    )


def test_branch_names_fit_the_dev_roles_name_patterns_and_aws_limits(dev_env):
    env = for_branch(dev_env, "feature/" + "x" * 200)
    assert all(name.startswith(f"{dev_env.project}-") for name in env.pipelines.values())
    assert env.lambda_function_name.startswith(f"{dev_env.project}-") and len(env.lambda_function_name) <= 64
    assert len(f"{env.project}-{env.name}-retrain-on-inference-failure") <= 64
    assert env.register_group == "mlops-demo-models-branches"
    assert env.outputs_prefix == env.predictions_prefix == f"branches/{env.namespace}"


@pytest.mark.parametrize(
    "env_name, branch, message",
    [
        ("dev", "///", "--branch: '///' has no letter or digit to name a namespace with"),
        ("prod", "feature/x", "--branch: environment 'prod' is prod-like: branch namespaces live only in dev-like"),
        ("stage", "feature/x", "--branch: environment 'stage' is prod-like"),
    ],
)
def test_bad_branches_are_refused_before_anything_runs(cli, env_name, branch, message):
    for command in (("run-pipeline", "--dry-run"), ("promote", "infra", "--check")):
        result = cli(*command, "--env", env_name, "--branch", branch)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {message}"), line


def test_a_branch_named_like_another_environment_is_refused(dev_env, tmp_path):
    import shutil

    for name in ("dev", "prod"):
        shutil.copy(dev_env.source.parent / f"{name}.yaml", tmp_path / f"{name}.yaml")
    (tmp_path / "dev-eu.yaml").write_text(
        (tmp_path / "dev.yaml").read_text().replace("environment: dev", "environment: dev-eu")
    )
    from mlops_core.config import load_environment

    with pytest.raises(ConfigError, match=r"'EU' \(namespace 'eu'\) would reuse the name 'dev-eu' of the main"):
        for_branch(load_environment("dev", env_dir=tmp_path), "EU")


def _account(sessions, env) -> dict:
    """What the dev account holds that branches could touch."""
    s = sessions.in_account(env.account_id)
    sagemaker, lam, events, sns, s3 = (sessions.client(n, s) for n in ("sagemaker", "lambda", "events", "sns", "s3"))
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.buckets.artifacts, Prefix="branches/")
        for o in page.get("Contents", [])
    )
    states = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=env.buckets.terraform_state).get("Contents", []))
    # every page: the sandbox pages as AWS does (10 pipelines a page), and dev holds main's and two branches'
    pipelines = [p for page in sagemaker.get_paginator("list_pipelines").paginate() for p in page["PipelineSummaries"]]
    functions = [f for page in lam.get_paginator("list_functions").paginate() for f in page["Functions"]]
    rules = [
        r for page in events.get_paginator("list_rules").paginate(NamePrefix=f"{env.project}-") for r in page["Rules"]
    ]
    topics = [t for page in sns.get_paginator("list_topics").paginate() for t in page["Topics"]]
    return {
        "pipelines": sorted(p["PipelineName"] for p in pipelines),
        "functions": sorted(f["FunctionName"] for f in functions),
        "rules": sorted(r["Name"] for r in rules),
        "topics": sorted(t["TopicArn"].rsplit(":", 1)[1] for t in topics),
        "branch objects": keys,
        "states": states,
    }


def _ok(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_branches_side_by_side_and_one_torn_down(cli, sandbox, dev_env, sessions, terraform_workdir):
    for env_name, account in (("dev", "dev"), ("prod", "registry")):
        _ok(cli("bootstrap-account", "--env", env_name, "--account", account, "--apply"))
    _ok(cli("run-pipeline", "--env", "dev"))
    for branch in (ALPHA, BETA):
        _ok(cli("run-pipeline", "--env", "dev", "--branch", branch))
        _ok(cli("promote", "infra", "--env", "dev", "--branch", branch, "--apply"))
    s = sessions(dev_env)
    # what a branch's pipeline runs write lands under its namespace in the artifacts bucket
    s3 = s.client("s3", s.in_account(dev_env.account_id))
    for ns in ("feature-alpha", "bugfix-jira-42-beta"):
        s3.put_object(
            Bucket=dev_env.buckets.artifacts,
            Key=f"branches/{ns}/predictions/model-version=1/x.csv",
            Body=b"1",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=dev_env.kms_key_alias,
        )

    before = _account(s, dev_env)
    alpha = {
        "pipelines": [f"mlops-demo-feature-alpha-{p}" for p in ("inference", "train", "train-hpo")],
        "functions": ["mlops-demo-feature-alpha-latest-approved-model"],
        "rules": [
            f"mlops-demo-dev-feature-alpha-{r}"
            for r in ("inference-schedule", "model-pending-approval", "retrain-on-inference-failure", "train-failed")
        ],
        "topics": ["mlops-demo-dev-feature-alpha-notifications"],
        "branch objects": [
            "branches/feature-alpha/branch.json",
            "branches/feature-alpha/predictions/model-version=1/x.csv",
        ],
        "states": ["mlops-infra/dev-feature-alpha/terraform.tfstate"],
    }
    for kind, names in alpha.items():
        assert set(names) <= set(before[kind]), (kind, before[kind])
        beta = [n.replace("feature-alpha", "bugfix-jira-42-beta") for n in names]
        assert set(beta) <= set(before[kind]), (kind, before[kind])
    assert {"mlops-demo-train", "mlops-demo-train-hpo", "mlops-demo-inference"} <= set(before["pipelines"])
    claim = json.loads(
        s3.get_object(Bucket=dev_env.buckets.artifacts, Key="branches/feature-alpha/branch.json")["Body"].read()
    )
    assert claim["branch"] == ALPHA

    # Another branch that sanitises to alpha's namespace is refused, and nothing changes.
    clash = cli("run-pipeline", "--env", "dev", "--branch", "Feature/ALPHA")
    assert clash.returncode == 2
    [line] = clash.stderr.strip().splitlines()
    assert line == (
        "error: --branch: 'Feature/ALPHA' sanitises to namespace 'feature-alpha', which branch 'feature/Alpha' "
        "already uses in dev: rename the branch"
    ), line
    assert _account(s, dev_env) == before

    torn = _ok(cli("run-pipeline", "teardown", "--env", "dev", "--branch", ALPHA, "--output", "json"))
    removed = json.loads(torn.stdout)
    assert removed["infra"]["state"] == "mlops-infra/dev-feature-alpha/terraform.tfstate"
    after = _account(s, dev_env)
    # exactly alpha's resources are gone: everything named from its namespace, nothing else
    assert after == {kind: sorted(n for n in before[kind] if "feature-alpha" not in n) for kind in before}

    again = cli("run-pipeline", "teardown", "--env", "dev", "--branch", ALPHA)
    assert again.returncode == 1
    [line] = again.stderr.strip().splitlines()
    assert line == (
        "error: no branch 'feature/Alpha' (namespace 'feature-alpha') is deployed in dev (account 111111111111): "
        "nothing to tear down"
    ), line
    assert _account(s, dev_env) == after
