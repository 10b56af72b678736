"""The `promote` registry commands as an approver types them: one line on refusal, the record shown after."""

import json

from tests.promote.conftest import CANDIDATE_REPORT, CHAMPION_REPORT


def test_approve_refused_for_the_registrant_then_done_by_another_and_shown(registry_world, cli):
    registry_world.register(CHAMPION_REPORT, status="Approved", registered_by="carol")
    registry_world.register(CANDIDATE_REPORT, registered_by="alice")
    execution = registry_world.executions[2]

    # alice logs in as herself (the source identity); a BUILD_TAG naming someone else changes nothing
    refused = cli(
        "promote",
        "approve",
        "--env",
        "prod",
        "--version",
        "2",
        "--reason",
        "ship it",
        "--as",
        "alice",
        env={"BUILD_TAG": "bob"},
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: alice started {execution}, which registered "
        "arn:aws:sagemaker:us-east-1:333333333333:model-package/mlops-demo-models/2, and may not also decide on it: "
        "ask another approver"
    ]

    approved = cli(
        "promote",
        "approve",
        "--env",
        "prod",
        "--version",
        "2",
        "--reason",
        "AUC +0.029 over v1",
        env={"MLOPS_AS": "bob"},
    )
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("version 2 Approved: Approved by bob at ")

    status = cli("promote", "status", "--env", "prod", env={"MLOPS_AS": "dave"})
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == "arn:aws:sagemaker:us-east-1:333333333333:model-package-group/mlops-demo-models"
    assert lines[1].split() == [
        "VERSION",
        "STATUS",
        "CREATED",
        "AUC",
        "F1",
        "REGISTERED",
        "BY",
        "DECIDED",
        "BY",
        "RUNS",
        "IN",
        "PINNED",
        "FOR",
    ]
    v2 = lines[2].split()
    pipeline_run = "pipeline:" + execution.rsplit("/", 1)[1]
    assert v2[:2] == ["2", "Approved"] and v2[3:] == ["0.9810", "0.9470", pipeline_run, "bob", "-", "-"]

    listed = cli("promote", "list", "--env", "prod", "--output", "json", env={"MLOPS_AS": "dave"})
    assert listed.returncode == 0, listed.stderr
    assert [(v["version"], v["status"]) for v in json.loads(listed.stdout)] == [(2, "Approved"), (1, "Approved")]

    lineage = cli("promote", "lineage", "--env", "prod", "--version", "2", "--output", "json", env={"MLOPS_AS": "dave"})
    assert lineage.returncode == 0, lineage.stderr
    info = json.loads(lineage.stdout)
    assert [(d["status"], d["by"], d["reason"]) for d in info["decisions"]] == [
        ("Approved", "bob", "AUC +0.029 over v1")
    ]
    assert info["git_commit"] == "c0ffee2" and info["metrics"]["auc"] == 0.981


def test_unknown_version_and_empty_reason_are_bad_input(registry_world, cli):
    missing = cli("promote", "reject", "--env", "prod", "--version", "9", "--reason", "x", "--as", "bob")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: --version: no version 9 in "
        "arn:aws:sagemaker:us-east-1:333333333333:model-package-group/mlops-demo-models"
    )
    registry_world.register(CANDIDATE_REPORT)
    blank = cli("promote", "approve", "--env", "prod", "--version", "1", "--reason", "  ", "--as", "bob")
    assert blank.returncode == 2
    assert blank.stderr.strip() == "error: --reason: a reason is required: it is recorded on the version"
