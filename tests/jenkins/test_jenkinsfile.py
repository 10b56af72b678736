"""The Jenkinsfile three ways: it parses as Groovy, npm-groovy-lint finds no error, and a dry run with a
stub of the pipeline DSL executes its stages' commands against the sandbox."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO
from tests.jenkins.conftest import JENKINSFILE, java_env, run_stub


def test_jenkinsfile_parses_as_groovy(groovy):
    result = subprocess.run(
        [groovy, "-e", "new GroovyShell().parse(new File(args[0])); println 'parsed'", str(JENKINSFILE)],
        capture_output=True,
        text=True,
        env=java_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "parsed"


def test_a_syntax_error_does_not_parse(groovy, tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().rstrip()[:-1])  # the closing brace of pipeline {}
    result = subprocess.run(
        [groovy, "-e", "new GroovyShell().parse(new File(args[0]))", str(broken)],
        capture_output=True,
        text=True,
        env=java_env(),
        timeout=120,
    )
    assert result.returncode != 0 and "startup failed" in result.stderr


def test_npm_groovy_lint_finds_no_error(groovy_lint):
    result = subprocess.run(
        [str(groovy_lint), "--noserver", "--failon", "error", "--output", "json", str(JENKINSFILE)],
        capture_output=True,
        text=True,
        env=java_env(),
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    errors = [e for f in report["files"].values() for e in f.get("errors", []) if e["severity"] == "error"]
    assert errors == []


def test_parameters_are_the_build_with_parameters_form():
    text = JENKINSFILE.read_text()
    for declaration in (
        "string(name: 'prodAccount'",
        "booleanParam(name: 'APPLY_INFRA'",
        "booleanParam(name: 'START_PIPELINES'",
        "string(name: 'CLEANUP_BRANCH'",
    ):
        assert declaration in text


def _passed(build) -> list[str]:
    return [e["stage"] for e in build["events"] if e["event"] == "stage-passed"]


def _succeeded(result, build):
    assert build is not None, result.stderr[-3000:]
    events = build["events"]
    failures = [e for e in events if e["event"] in ("stage-failed", "post-failed")]
    failed_commands = [e for e in events if e["event"] == "sh" and e["exit"] != 0]
    assert result.returncode == 0 and build["result"] == "SUCCESS", (failures, failed_commands, result.stdout[-3000:])


@pytest.mark.slow
def test_invalid_prod_account_stops_the_main_build_before_anything_is_deployed(groovy, jenkins_agent, tmp_path):
    result, build = run_stub(
        groovy,
        tmp_path,
        agent_env={**jenkins_agent, "BRANCH_NAME": "main"},
        params={"prodAccount": "12345", "APPLY_INFRA": True},
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert build["result"] == "FAILURE"
    events = build["events"]
    [failed] = [e for e in events if e["event"] == "stage-failed"]
    assert failed["stage"] == "Check parameters"
    [check] = [e for e in events if e["event"] == "sh" and "--account-id" in e["script"]]
    assert check["exit"] == 2
    assert "error: --account-id: '12345' is not a 12-digit AWS account id" in check["stderr_tail"]
    skipped = {e["stage"] for e in events if e["event"] == "stage-skipped"}
    assert {"Deploy to stage", "Plan prod", "Approve prod", "Deploy to prod"} <= skipped
    assert not [e for e in events if e["event"].startswith("withAWS")]
    [notify] = [e for e in events if e["event"] == "step" and e["step"] == "emailext"]
    assert "FAILED" in notify["args"]["subject"] and "(main)" in notify["args"]["subject"]


@pytest.fixture
def bootstrapped_main(sandbox, cli):
    """What admins do once before Jenkins can deploy main: bootstrap stage, prod and the registry."""
    for env_name, account in (("stage", "stage"), ("prod", "prod"), ("prod", "registry")):
        result = cli("bootstrap-account", "--env", env_name, "--account", account, "--apply")
        assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_main_deploys_to_stage_then_after_the_gate_to_prod_through_the_jenkins_roles(
    groovy, jenkins_agent, bootstrapped_main, prod_env, tmp_path
):
    from mlops_core.config import load_environment

    stage_env = load_environment("stage", env_dir=REPO / "environments")
    result, build = run_stub(
        groovy,
        tmp_path,
        agent_env={**jenkins_agent, "BRANCH_NAME": "main"},
        params={"prodAccount": prod_env.account_id, "APPLY_INFRA": True, "START_PIPELINES": False},
    )
    _succeeded(result, build)
    events = build["events"]
    assert _passed(build) == [
        "Install",
        "Check parameters",
        "Lint and tests",
        "Deploy to stage",
        "Plan prod",
        "Approve prod",
        "Deploy to prod",
    ]
    assert {e["stage"]: e["reason"] for e in events if e["event"] == "stage-skipped"} == {
        "Clean up branch": "when condition is false",
        "Deploy branch to dev": "when condition is false",
    }
    # the build's own lint and test runs are the only things not executed (CI runs both), and the log says so
    skipped = [e for e in events if e["event"] == "sh-skipped"]
    assert sorted(e["script"].split()[-2:][0] + " " + e["script"].split()[-1] for e in skipped) == [
        "make lint",
        "make test",
    ]
    assert all("skipped by the stub" in e["reason"] for e in skipped)
    [approval] = [e for e in events if e["event"] == "input"]
    assert approval["answer"] == "proceed" and approval["stage"] == "Approve prod"
    # stage is deployed before anyone is asked about prod; prod only after the answer
    order = [e.get("stage") for e in events]
    assert order.index("Deploy to stage") < order.index("Approve prod") < order.index("Deploy to prod")

    for stage_name, env in (("Deploy to stage", stage_env), ("Deploy to prod", prod_env)):
        assumed = [e for e in events if e["event"] == "withAWS" and e["stage"] == stage_name]
        assert {(e["role_arn"], e["external_id"]) for e in assumed} == {
            (env.role_arn("jenkins"), env.jenkins.external_id)
        }
        deploying = [e for e in events if e["event"] == "sh" and e["stage"] == stage_name and "infra" in e["script"]]
        assert deploying and all(e["aws_role"] == env.role_arn("jenkins") and e["exit"] == 0 for e in deploying)
    applied = [e["script"] for e in events if e["event"] == "sh" and "--apply" in e["script"]]
    assert [("--env stage" in a, "--plan-file" in a) for a in applied] == [(True, True), (False, True)]

    assert "Plan:" in (REPO / "build" / "terraform" / "prod" / "plan.txt").read_text()
    archived = [e["args"]["artifacts"] for e in events if e["event"] == "step" and e["step"] == "archiveArtifacts"]
    assert any("plan.tfplan" in a and "definitions-*.json" in a for a in archived)

    from mlops_core.session import Sessions

    for env in (stage_env, prod_env):
        sessions = Sessions(env)
        account = sessions.in_account(env.account_id)
        sagemaker = sessions.client("sagemaker", account)
        pipelines = {
            p["PipelineName"]
            for page in sagemaker.get_paginator("list_pipelines").paginate()
            for p in page["PipelineSummaries"]
        }
        assert set(env.pipelines.values()) <= pipelines
        rules = {
            r["Name"]
            for page in sessions.client("events", account)
            .get_paginator("list_rules")
            .paginate(NamePrefix="mlops-demo-")
            for r in page["Rules"]
        }
        assert f"mlops-demo-{env.name}-inference-schedule" in rules


@pytest.mark.slow
def test_a_feature_branch_deploys_to_its_dev_namespace_and_the_cleanup_path_removes_it(
    groovy, jenkins_agent, sandbox, cli, dev_env, tmp_path
):
    for env_name, account in (("dev", "dev"), ("prod", "registry")):
        result = cli("bootstrap-account", "--env", env_name, "--account", account, "--apply")
        assert result.returncode == 0, result.stderr
    branch = "feature/JIRA-7_new-features"
    result, build = run_stub(
        groovy, tmp_path, agent_env={**jenkins_agent, "BRANCH_NAME": branch}, params={"APPLY_INFRA": True}
    )
    _succeeded(result, build)
    assert _passed(build) == ["Install", "Check parameters", "Lint and tests", "Deploy branch to dev"]
    events = build["events"]
    assert not [e for e in events if e["event"] == "input"]
    assumed = {(e["role_arn"], e["stage"]) for e in events if e["event"] == "withAWS"}
    assert assumed == {(dev_env.role_arn("jenkins"), "Deploy branch to dev")}

    from mlops_core.session import Sessions

    sessions = Sessions(dev_env)
    dev = sessions.in_account(dev_env.account_id)
    sagemaker, events_client = sessions.client("sagemaker", dev), sessions.client("events", dev)

    def deployed():
        pipelines = {
            p["PipelineName"]
            for page in sagemaker.get_paginator("list_pipelines").paginate()
            for p in page["PipelineSummaries"]
        }
        rules = {
            r["Name"]
            for page in events_client.get_paginator("list_rules").paginate(NamePrefix="mlops-demo-dev-")
            for r in page["Rules"]
        }
        return pipelines, rules

    pipelines, rules = deployed()
    target = json.loads((REPO / "build" / "target-dev.json").read_text())
    ns = target["environment"].removeprefix("dev-")
    # every pipeline of the environment, under the branch's namespace (names come from the environment file)
    assert {name.replace("mlops-demo-", f"mlops-demo-{ns}-", 1) for name in dev_env.pipelines.values()} == pipelines
    assert f"mlops-demo-dev-{ns}-inference-schedule" in rules
    assert all(rule.startswith(f"mlops-demo-dev-{ns}-") for rule in rules)

    # the branch is deleted: the cleanup job runs the same Jenkinsfile with CLEANUP_BRANCH
    result, build = run_stub(
        groovy, tmp_path, agent_env={**jenkins_agent, "BRANCH_NAME": "main"}, params={"CLEANUP_BRANCH": branch}
    )
    _succeeded(result, build)
    assert _passed(build) == ["Install", "Clean up branch"]
    assert deployed() == (set(), set())
