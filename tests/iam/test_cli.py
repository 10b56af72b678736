"""`bootstrap-account` end to end: bad input fails with one line and exit 2 before anything is written;
--apply says what it did, and a re-run says there is nothing to change."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

ACCOUNTS = ("111111111111", "222222222222", "333333333333")


def _variant(tmp_path, name, old, new):
    text = (REPO / "environments" / f"{name}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


def _nothing_written(sessions, env):
    s = sessions(env)
    for account in ACCOUNTS:
        admin = s.in_account(account)
        roles = s.client("iam", admin).list_roles()["Roles"]
        assert [r for r in roles if r["Path"] != "/sandbox/"] == [], account  # the sandbox's own login role aside
        assert s.client("kms", admin).list_keys()["Keys"] == [], account


@pytest.mark.parametrize(
    "args, variant, message",
    [
        (
            ["--env", "dev", "--account", "staging", "--apply"],
            None,
            "error: --account: 'staging' is not one of dev, stage, prod, registry",
        ),
        (
            ["--env", "dev", "--account", "prod", "--apply"],
            None,
            "error: --account: 'prod': environment 'dev' describes the dev account; "
            "use the environment whose account is prod",
        ),
        (
            ["--account", "prod", "--apply"],
            ("prod", 'registry: "333333333333"', 'registry: "222222222222"'),
            "accounts.registry: '222222222222' is the same account as accounts.prod: the registry must be a separate",
        ),
        (
            ["--account", "dev", "--apply"],
            ("dev", 'registry: "333333333333"', 'registry: "222222222222"'),
            "accounts.registry: '222222222222' is the same account as accounts.prod: the registry must be a separate",
        ),
        (
            ["--account", "prod", "--apply"],
            ("prod", "principal_arn: arn:aws:iam::444444444444:role/jenkins-agent", "principal_arn: jenkins-agent"),
            "jenkins.principal_arn: 'jenkins-agent' is not an IAM role or user ARN",
        ),
        (
            ["--env", "dev", "--account", "dev", "--profile", "registry", "--apply"],
            None,
            "error: --profile: these credentials act in account 333333333333, not 111111111111",
        ),
    ],
    ids=[
        "unknown-account-kind",
        "kind-not-of-this-environment",
        "registry-is-prod",
        "registry-is-prod-from-dev",
        "jenkins-principal-malformed",
        "credentials-of-another-account",
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli, sandbox, sessions, dev_env, tmp_path, args, variant, message
):
    if variant:
        args = ["--env", _variant(tmp_path, *variant), *args]
    result = cli("bootstrap-account", *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    _nothing_written(sessions, dev_env)


def test_apply_reports_changes_and_a_rerun_says_nothing_to_change(cli, sandbox, sessions, dev_env):
    planned = cli("bootstrap-account", "--env", "dev", "--account", "dev", "--output", "json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["mode"] == "plan" and plan["calls"]["write"] == 0
    assert plan["summary"] == {"create": 15, "update": 0, "unchanged": 0}
    assert "role.mlops-demo-sagemaker-execution.trust.json" in plan["documents"]
    _nothing_written(sessions, dev_env)

    applied = cli("bootstrap-account", "--env", "dev", "--account", "dev", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "+ create     kms-key            alias/mlops-demo-dev" in applied.stdout
    assert "Applied: 15 created, 0 updated, 0 unchanged" in applied.stdout

    again = cli("bootstrap-account", "--env", "dev", "--account", "dev", "--apply")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == (
        "Nothing to change: the dev account is bootstrapped (0 to create, 0 to update, 15 unchanged; 0 write calls)."
    )
