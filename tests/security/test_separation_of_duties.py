"""Separation of duties holds against an insider: who trained a version is the STS source identity that
started the pipeline execution which registered it, read from AWS's own records (CloudTrail's
StartPipelineExecution event and the execution's RegisterModel step, through the read-only
registration-audit role), and who decides is the approver session's source identity. Names the caller
chooses (BUILD_TAG, USER, a BuildId parameter, a session name) change nothing.

AWS pages mirrored by the sandbox here:
- https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html
- https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html
- https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html
- https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListPipelineExecutionSteps.html
- https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UserContext.html (LastModifiedBy)
"""

import json

import pytest
from botocore.exceptions import ClientError

from mlops_core.errors import AccessDenied
from mlops_core.session import Sessions
from promote import registry
from tests.promote.conftest import CANDIDATE_REPORT, RegistryWorld


@pytest.fixture
def world(sandbox, prod_env):
    return RegistryWorld(prod_env)


def _approve(cli, version, *extra, env=None):
    return cli(
        "promote", "approve", "--env", "prod", "--version", str(version), "--reason", "reviewed", *extra, env=env or {}
    )


def test_build_tag_naming_someone_else_does_not_let_the_trainer_approve(world, cli):
    """Attempt: `BUILD_TAG=local:dana promote approve` after dana trained (the old check compared session
    names, which turn ':' into '-')."""
    version = world.register(CANDIDATE_REPORT, registered_by="dana")
    refused = _approve(cli, version, env={"MLOPS_AS": "dana", "BUILD_TAG": "local:dana", "USER": "someone-else"})
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: dana started {world.executions[version]}, which registered "
        f"{registry.package_arn(world.env, version)}, and may not also decide on it: ask another approver"
    ]
    assert world.describe(version)["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_build_id_parameter_naming_the_approver_does_not_make_them_the_trainer(world, cli):
    """Attempt: `run-pipeline ... --param BuildId=alex` so the version's build_id says alex, then dana (who
    started the run) approves. The BuildId parameter lands in the version's build_id metadata."""
    version = world.register(CANDIDATE_REPORT, registered_by="dana", extra_metadata={"build_id": "alex"})
    refused = _approve(cli, version, env={"MLOPS_AS": "dana"})
    assert refused.returncode == 1 and "dana started" in refused.stderr
    approved = _approve(cli, version, env={"MLOPS_AS": "alex"})  # alex never started anything: allowed
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(f"version {version} Approved: Approved by alex at ")


def test_a_second_role_session_of_the_same_person_is_the_same_person(world, prod_env):
    """Attempt: dana opens another approver session under another session name."""
    version = world.register(CANDIDATE_REPORT, registered_by="dana")
    other_session = Sessions(prod_env, who="dana-second-laptop", identity="dana")
    with pytest.raises(registry.SeparationOfDuties, match=r"^dana started "):
        registry.decide(prod_env, other_session, version, "approve", "it is fine")
    # a role session of its own (its name says dana-second-laptop), and still dana's source identity
    approver = registry.Registry(prod_env, other_session, purpose=f"approve-v{version}")
    assert approver.identity().endswith("/dana-second-laptop@approve-v1")
    assert other_session.source_identity(approver.session) == "dana"


def test_a_chain_cannot_change_the_source_identity_to_the_approvers(world, prod_env):
    """Attempt: dana, logged in, assumes the approver role passing SourceIdentity=alex."""
    dana = Sessions(prod_env, identity="dana")
    login = dana.in_account(prod_env.registry_account_id)
    sts = dana.client("sts", login)
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=prod_env.role_arn("approver"), RoleSessionName="sneaky", SourceIdentity="alex")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "cannot be changed" in refused.value.response["Error"]["Message"]


def test_nobody_decides_without_a_source_identity(world, cli):
    """Fail closed on the approver's side: the approver role admits no session without a source identity."""
    version = world.register(CANDIDATE_REPORT, registered_by="dana")
    refused = _approve(cli, version, env={"MLOPS_AS": ""})
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: cannot assume arn:aws:iam::333333333333:role/mlops-demo-approver: ")
    assert line.endswith("(no source identity: log in with --as NAME or MLOPS_AS)")


def test_a_run_started_without_a_source_identity_cannot_be_decided(world, prod_env):
    """Fail closed on the trainer's side: the run was started by a principal with no source identity (and
    not by EventBridge), so nobody can tell who trained it."""
    version = world.register(CANDIDATE_REPORT, registered_by="")
    with pytest.raises(registry.ProvenanceUnverified, match="without a source identity: cannot verify who trained"):
        registry.decide(prod_env, Sessions(prod_env, identity="alex"), version, "approve", "looks fine")


def test_a_version_whose_recorded_execution_did_not_register_it_cannot_be_decided(world, prod_env):
    """Attempt: a version pointing at an execution someone else started. Its RegisterModel step registered
    another version, so the claim is refused."""
    first = world.register(CANDIDATE_REPORT, registered_by="alex")
    version = world.register(
        CANDIDATE_REPORT, registered_by="dana", extra_metadata={"pipeline_execution_arn": world.executions[first]}
    )
    with pytest.raises(registry.ProvenanceUnverified, match=f"was not registered by {world.executions[first]}"):
        registry.decide(prod_env, Sessions(prod_env, identity="bob"), version, "approve", "fine")


def test_the_review_board_needs_two_different_people(world, prod_env, cli):
    version = world.register(
        CANDIDATE_REPORT, registered_by="dana", extra_metadata={"review_board_approval_required": "true"}
    )
    first = _approve(cli, version, env={"MLOPS_AS": "alex"})
    assert first.returncode == 0, first.stderr
    package = world.describe(version)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ApprovalDescription"].startswith("Review board: approved by alex at ")
    recorded = json.loads(package["CustomerMetadataProperties"]["decision:1"])
    assert (recorded["by"], recorded["board"], recorded["status"]) == ("alex", "1/2", "Approved")

    again = _approve(cli, version, "--as", "alex")  # the same person twice
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"error: alex already approved version {version} for the review board, which needs a second approval "
        "from another person"
    ]
    trainer = _approve(cli, version, "--as", "dana")  # the trainer is not a second reviewer either
    assert trainer.returncode == 1 and "dana started" in trainer.stderr

    second = _approve(cli, version, "--as", "bob")
    assert second.returncode == 0, second.stderr
    package = world.describe(version)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"].startswith("Approved by bob and alex (review board) at ")
    decided = registry.decisions(package)
    assert [(d["by"], d["board"]) for d in decided] == [("alex", "1/2"), ("bob", "2/2")]


def test_a_board_approval_written_at_registration_does_not_count(world, prod_env):
    """Attempt: the registering run writes a forged first board approval into the version's metadata. Only
    an update AWS records as the approver role's (LastModifiedBy) counts."""
    forged = json.dumps({"status": "Approved", "by": "mallory", "board": "1/2"})
    version = world.register(
        CANDIDATE_REPORT,
        registered_by="dana",
        extra_metadata={"review_board_approval_required": "true", "decision:1": forged},
    )
    result = registry.decide(prod_env, Sessions(prod_env, identity="bob"), version, "approve", "reviewed")
    assert result["status"] == "PendingManualApproval" and result["review_board"] == "1/2"


def test_only_the_approver_role_decides_even_for_an_admin_named_like_an_approver(world, prod_env):
    """Positive path and its limit: a logged-in approver decides; the toolkit refuses plain credentials."""
    version = world.register(CANDIDATE_REPORT, registered_by="dana")
    with pytest.raises(AccessDenied):
        registry.decide(prod_env, Sessions(prod_env), version, "approve", "no login")
    done = registry.decide(prod_env, Sessions(prod_env, identity="alex"), version, "approve", "reviewed")
    assert done["decision"]["by"] == "alex" and done["decision"]["started_by"] == "dana"
