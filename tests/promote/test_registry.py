"""Registry operations as the approver: separation of duties, the audit trail, status and lineage."""

import json

import pytest

from mlops_core.session import Sessions
from promote import registry
from tests.promote.conftest import CANDIDATE_REPORT, CHAMPION_REPORT


def _as(env, person):
    """A person logged in (STS source identity), as the README's --as / MLOPS_AS does on the sandbox."""
    return Sessions(env, identity=person)


def test_approver_may_not_approve_what_they_started(registry_world, prod_env):
    version = registry_world.register(CANDIDATE_REPORT, registered_by="alice")
    execution = registry_world.executions[version]
    with pytest.raises(registry.SeparationOfDuties) as refused:
        registry.decide(prod_env, _as(prod_env, "alice"), version, "approve", "looks good")
    assert str(refused.value) == (
        f"alice started {execution}, which registered "
        "arn:aws:sagemaker:us-east-1:333333333333:model-package/mlops-demo-models/1, and may not also decide on it: "
        "ask another approver"
    )
    package = registry_world.describe(1)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"


def test_approval_is_recorded_on_the_version_and_shown_by_status_and_lineage(registry_world, prod_env, monkeypatch):
    registry_world.register(CHAMPION_REPORT, status="Approved", registered_by="carol")
    version = registry_world.register(CANDIDATE_REPORT, registered_by="alice")
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example.com/job/mlops/42/")
    result = registry.decide(prod_env, _as(prod_env, "bob"), version, "approve", "AUC 0.981 beats champion 0.952")
    assert result["changed"]

    package = registry_world.describe(2)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"].startswith("Approved by bob at ")
    assert package["ApprovalDescription"].endswith(
        "(build https://jenkins.example.com/job/mlops/42/): AUC 0.981 beats champion 0.952"
    )
    recorded = json.loads(package["CustomerMetadataProperties"]["decision:1"])
    assert recorded["by"] == "bob" and recorded["reason"] == "AUC 0.981 beats champion 0.952"
    assert recorded["started_by"] == "alice"
    # AWS recorded who made the update: the approver role's session, with bob's source identity
    assert package["LastModifiedBy"]["IamIdentity"]["SourceIdentity"] == "bob"
    assert package["LastModifiedBy"]["IamIdentity"]["Arn"].startswith(
        "arn:aws:sts::333333333333:assumed-role/mlops-demo-approver/bob@"
    )

    rows = registry.status(prod_env, _as(prod_env, "dave"))
    assert [(r["version"], r["status"], r["decided_by"]) for r in rows] == [(2, "Approved", "bob"), (1, "Approved", "")]
    assert rows[0]["metrics"]["auc"] == 0.981 and rows[1]["metrics"]["auc"] == 0.952

    info = registry.lineage(prod_env, _as(prod_env, "dave"), 2)
    dataset = {k: info["dataset"][k] for k in ("uri", "sha256")}
    assert dataset == {"uri": "s3://mlops-demo-dev-artifacts/data/breast-cancer.csv", "sha256": "ab" * 32}
    assert info["dataset"]["parts"] == []  # registered before runs recorded their snapshot: nothing to list
    assert info["git_commit"] == "c0ffee2"
    assert info["pipeline_execution"] == registry_world.executions[2]
    assert info["metrics"]["f1"] == 0.947 and info["metrics"]["confusion_matrix"] == [[138, 5], [4, 81]]
    assert info["baseline"]["item_count"] == 398 and info["baseline"]["constraints"] == 2
    assert [d["status"] for d in info["decisions"]] == ["Approved"]


def test_rerunning_an_approval_changes_nothing(registry_world, prod_env):
    version = registry_world.register(CANDIDATE_REPORT, registered_by="alice")
    registry.decide(prod_env, _as(prod_env, "bob"), version, "approve", "good")
    again = registry.decide(prod_env, _as(prod_env, "bob"), version, "approve", "good")
    assert not again["changed"]
    package = registry_world.describe(1)
    assert [k for k in package["CustomerMetadataProperties"] if k.startswith("decision:")] == ["decision:1"]


def test_rejecting_an_approved_version_keeps_both_decisions(registry_world, prod_env):
    version = registry_world.register(CANDIDATE_REPORT, registered_by="alice")
    registry.decide(prod_env, _as(prod_env, "bob"), version, "approve", "good")
    registry.decide(prod_env, _as(prod_env, "erin"), version, "reject", "bias found in audit")
    info = registry.lineage(prod_env, _as(prod_env, "dave"), version)
    assert info["status"] == "Rejected"
    assert [(d["status"], d["by"]) for d in info["decisions"]] == [("Approved", "bob"), ("Rejected", "erin")]


def test_deployment_records_show_where_a_version_runs(registry_world, prod_env):
    version = registry_world.register(CANDIDATE_REPORT, status="Approved", registered_by="alice")
    package = registry_world.describe(version)
    registry.record_deployment(
        registry_world.sm, package, "prod", "arn:aws:sagemaker:us-east-1:222222222222:pipeline/mlops-demo-inference"
    )
    rows = registry.status(prod_env, _as(prod_env, "dave"))
    assert list(rows[0]["deployed"]) == ["prod"]
    assert rows[0]["deployed"]["prod"].endswith("pipeline/mlops-demo-inference")
    assert rows[0]["status"] == "Approved"


def test_unknown_version_names_the_group(registry_world, prod_env):
    with pytest.raises(
        registry.VersionNotFound,
        match="--version: no version 7 in arn:aws:sagemaker:us-east-1:"
        "333333333333:model-package-group/mlops-demo-models",
    ):
        registry.decide(prod_env, _as(prod_env, "bob"), 7, "approve", "x")


def test_a_run_started_by_the_retrain_rule_has_no_human_starter(registry_world, prod_env):
    """EventBridge (the events role, which only events.amazonaws.com may assume) started the run: no person
    chose to train it, so any identified approver may decide, and the record says the rule started it."""
    version = registry_world.register(CANDIDATE_REPORT, registered_by=None)
    result = registry.decide(prod_env, _as(prod_env, "alex"), version, "approve", "retrained on drift, reviewed")
    assert result["status"] == "Approved"
    assert result["decision"]["started_by"].startswith(
        "EventBridge (arn:aws:sts::111111111111:assumed-role/mlops-demo-events/"
    )


def test_local_runs_record_the_user_as_the_build(monkeypatch):
    from pipelines.upsert import build_tags

    monkeypatch.delenv("BUILD_TAG", raising=False)
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    assert build_tags()["build"] == "local:alice"
    monkeypatch.setenv("BUILD_TAG", "jenkins-mlops-9")
    assert build_tags()["build"] == "jenkins-mlops-9"
