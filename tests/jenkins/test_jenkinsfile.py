"""The Jenkinsfile three ways: it parses as Groovy, npm-groovy-lint finds no error, and a dry run with a
stub of the pipeline DSL executes its stages' commands against the sandbox."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO
from tests.jenkins.conftest import JENKINSFILE, java_env, run_stub


def test_jenkinsfile_parses_as_groovy(groovy):
    result = subprocess.run([groovy, "-e", "new GroovyShell().parse(new File(args[0])); println 'parsed'",
                             str(JENKINSFILE)], capture_output=True, text=True, env=java_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "parsed"


def test_a_syntax_error_does_not_parse(groovy, tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().rstrip()[:-1])  # the closing brace of pipeline {}
    result = subprocess.run([groovy, "-e", "new GroovyShell().parse(new File(args[0]))", str(broken)],
                            capture_output=True, text=True, env=java_env(), timeout=120)
    assert result.returncode != 0 and "startup failed" in result.stderr


def test_npm_groovy_lint_finds_no_error(groovy_lint):
    result = subprocess.run([str(groovy_lint), "--noserver", "--failon", "error", "--output", "json",
                             str(JENKINSFILE)], capture_output=True, text=True, env=java_env(), cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    errors = [e for f in report["files"].values() for e in f.get("errors", []) if e["severity"] == "error"]
    assert errors == []


def test_parameters_are_the_build_with_parameters_form():
    text = JENKINSFILE.read_text()
    for declaration in ("choice(name: 'ENV', choices: ['dev', 'prod']", "string(name: 'prodAccount'",
                        "booleanParam(name: 'APPLY_INFRA'", "booleanParam(name: 'START_PIPELINES'"):
        assert declaration in text


@pytest.mark.slow
def test_invalid_prod_account_stops_the_build_before_anything_is_deployed(groovy, jenkins_agent, tmp_path):
    result, build = run_stub(groovy, tmp_path, agent_env=jenkins_agent,
                             params={"ENV": "prod", "prodAccount": "12345", "APPLY_INFRA": True})
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert build["result"] == "FAILURE"
    events = build["events"]
    [failed] = [e for e in events if e["event"] == "stage-failed"]
    assert failed["stage"] == "Check parameters"
    [check] = [e for e in events if e["event"] == "sh" and "promote infra" in e["script"]]
    assert check["exit"] == 2
    assert "error: --account-id: '12345' is not a 12-digit AWS account id" in check["stderr_tail"]
    skipped = {e["stage"] for e in events if e["event"] == "stage-skipped"}
    assert {"Definitions and plan", "Approve prod", "Upsert pipelines", "Apply infra"} <= skipped
    assert not [e for e in events if e["event"].startswith("withAWS")]
    [notify] = [e for e in events if e["event"] == "step" and e["step"] == "emailext"]
    assert "FAILED" in notify["args"]["subject"] and "ENV=prod" in notify["args"]["subject"]
