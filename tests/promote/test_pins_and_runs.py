"""Where each version runs, and pin / unpin / rollback, end to end on the sandbox with the bootstrapped
policies: the inference Lambda's role appends run records (never overwrites them, never approves),
`promote status` and `promote lineage` read them back, and only approvers pin Approved versions, which
the Lambda then serves instead of the latest one."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.iam.conftest import trust_account_root_too
from tests.pipelines.test_latest_approved import load_handler

pytestmark = pytest.mark.slow


APPROVER = {"MLOPS_AS": "alex"}  # the approver signs in: the approver role's trust needs a source identity


@pytest.fixture
def world(sandbox, cli, prod_env):
    from mlops_core.session import Sessions

    for env_name, account in (("dev", "dev"), ("prod", "prod"), ("prod", "registry")):
        result = cli("bootstrap-account", "--env", env_name, "--account", account, "--apply")
        assert result.returncode == 0, result.stderr
    s = Sessions(prod_env)
    roles = {}
    for name, role in (("lambda", "lambda"), ("execution", "execution")):
        arn = prod_env.role_arn(role)
        trust_account_root_too(s, arn)
        roles[name] = s.assume(arn, purpose=f"test-{name}", source=s.in_account(prod_env.account_id))
    # three versions registered from dev (by a data scientist's pipeline run), in the registry group
    dev_execution = prod_env.role_arn("execution", prod_env.accounts["dev"])
    trust_account_root_too(s, dev_execution)
    trainer = s.assume(dev_execution, purpose="alice-train", source=s.in_account(prod_env.accounts["dev"]))
    sm = s.client("sagemaker", trainer)
    for tag in ("v1", "v2", "v3"):
        _register_by_arn(sm, prod_env, tag)
    # decided by the registry's admin: these versions were registered by a direct call, not by a pipeline
    # run, so `promote approve` refuses them (no verifiable trainer; tests/security covers that)
    registry_sm = s.client("sagemaker", s.in_account(prod_env.registry_account_id))
    for version, status in ((1, "Approved"), (2, "Approved"), (3, "Rejected")):
        arn = prod_env.model_package_group_arn.replace(":model-package-group/", ":model-package/") + f"/{version}"
        registry_sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return s, roles


def _register_by_arn(sagemaker, env, tag):
    """The registration the train pipeline makes: by group ARN, PendingManualApproval, with its baselines."""
    bucket = env.buckets.registry
    baseline = {"ContentType": "application/json"}
    sagemaker.create_model_package(
        ModelPackageGroupName=env.model_package_group_arn,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://{bucket}/dev/models/{tag}/output/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {**baseline, "S3Uri": f"s3://{bucket}/dev/{tag}/statistics.json"},
                "Constraints": {**baseline, "S3Uri": f"s3://{bucket}/dev/{tag}/constraints.json"},
            }
        },
    )


def _run(roles, s, env, version, execution):
    """What the RecordRun step sends after a successful transform, run as the prod inference Lambda."""
    handler = load_handler()
    return handler.record_run(
        s.client("s3", roles["lambda"]),
        {
            "action": "record",
            "environment": env.name,
            "model_version": str(version),
            "model_package_arn": env.model_package_group_arn.replace("-group/", "/") + f"/{version}",
            "execution_arn": f"{env.pipeline_arn('inference')}/execution/{execution}",
            "runs_bucket": env.buckets.registry,
            "runs_prefix": f"{env.account}/runs/{env.name}/",
            "kms_key_id": env.kms_key_alias,
        },
    )


def _served(roles, s, env) -> str:
    handler = load_handler()
    sm = s.client("sagemaker", roles["lambda"])
    return handler.outputs_for(handler.latest_approved_package(sm, env.model_package_group_arn, env.name))[
        "model_version"
    ]


def _status(cli) -> dict:
    result = cli("promote", "status", "--env", "prod", "--output", "json", env=APPROVER)
    assert result.returncode == 0, result.stderr
    return {row["version"]: row for row in json.loads(result.stdout)}


def _one_line(result, code) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    return line


def test_runs_are_recorded_append_only_and_pins_decide_what_inference_serves(world, cli, prod_env):
    s, roles = world
    assert _served(roles, s, prod_env) == "2"  # nothing pinned: the latest Approved
    record = _run(roles, s, prod_env, 1, "exec-a")["record_uri"]
    _run(roles, s, prod_env, 2, "exec-b")

    # Append-only: the same record cannot be written again, and a put without If-None-Match is refused.
    s3 = s.client("s3", roles["lambda"])
    bucket, key = record[len("s3://") :].split("/", 1)
    with pytest.raises(ClientError) as again:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*", ServerSideEncryption="aws:kms")
    assert again.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError) as overwrite:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}", ServerSideEncryption="aws:kms")
    assert overwrite.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as elsewhere:  # another account's records
        s3.put_object(Bucket=bucket, Key="dev/runs/dev/x_v1_y.json", Body=b"{}", IfNoneMatch="*")
    assert elsewhere.value.response["Error"]["Code"] == "AccessDenied"
    # The role that records runs can never approve (https://docs.aws.amazon.com/sagemaker/latest/dg/
    # model-registry-approve.html: approval is UpdateModelPackage's ModelApprovalStatus).
    for role in ("lambda", "execution"):
        with pytest.raises(ClientError) as approving:
            s.client("sagemaker", roles[role]).update_model_package(
                ModelPackageArn=prod_env.model_package_group_arn.replace("-group/", "/") + "/3",
                ModelApprovalStatus="Approved",
            )
        assert approving.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")

    status = _status(cli)
    assert status[2]["runs_in"] == ["prod"] and status[1]["runs_in"] == [] and status[3]["status"] == "Rejected"
    table = cli("promote", "status", "--env", "prod", env=APPROVER).stdout
    assert "RUNS IN" in table and "PINNED FOR" in table
    lineage = json.loads(
        cli("promote", "lineage", "--env", "prod", "--version", "1", "--output", "json", env=APPROVER).stdout
    )
    assert [(r["environment"], r["account"], r["execution"]) for r in lineage["runs"]] == [
        ("prod", prod_env.account_id, "exec-a")
    ]

    # v2 misbehaves: roll back to the Approved version that ran before it.
    rolled = cli(
        "promote", "rollback", "--env", "prod", "--reason", "v2 flags every record", "--output", "json", env=APPROVER
    )
    assert rolled.returncode == 0, rolled.stderr
    result = json.loads(rolled.stdout)
    assert (result["version"], result["rolled_back_from"], result["pin"]["action"]) == (1, 2, "rollback")
    assert result["pin"]["by"] == "alex" and result["pin"]["at"] and "v2 flags every record" in result["pin"]["reason"]
    assert _served(roles, s, prod_env) == "1"
    assert _status(cli)[1]["pinned_for"] == ["prod"]

    # Bad pins: one line each, nothing changed.
    line = _one_line(cli("promote", "pin", "--env", "prod", "--version", "3", "--reason", "x", env=APPROVER), 1)
    assert line == "error: version 3 is Rejected: only an Approved version can be pinned for prod", line
    line = _one_line(cli("promote", "pin", "--env", "prod", "--version", "99", "--reason", "x", env=APPROVER), 2)
    assert "no version 99 in" in line, line
    assert _served(roles, s, prod_env) == "1"

    # Pin v2 explicitly, then unpin: prod follows the latest Approved again; each action is recorded.
    pinned = cli("promote", "pin", "--env", "prod", "--version", "2", "--reason", "fixed upstream", env=APPROVER)
    assert pinned.returncode == 0 and "prod pinned to version 2" in pinned.stdout, pinned.stderr
    assert _served(roles, s, prod_env) == "2"
    unpinned = cli("promote", "unpin", "--env", "prod", "--reason", "back to latest", env=APPROVER)
    assert unpinned.returncode == 0, unpinned.stderr
    line = _one_line(cli("promote", "unpin", "--env", "prod", "--reason", "again", env=APPROVER), 1)
    assert line == "error: no version is pinned for prod: it already runs the latest Approved version", line
    history = json.loads(
        cli("promote", "lineage", "--env", "prod", "--version", "1", "--output", "json", env=APPROVER).stdout
    )
    assert [p["action"] for p in history["pins"]] == ["rollback", "unpin"]
    history = json.loads(
        cli("promote", "lineage", "--env", "prod", "--version", "2", "--output", "json", env=APPROVER).stdout
    )
    assert [p["action"] for p in history["pins"]] == ["pin", "unpin"]

    # Only approvers pin: a workload role cannot write the pin the Lambda reads.
    with pytest.raises(ClientError) as forging:
        s.client("sagemaker", roles["execution"]).update_model_package(
            ModelPackageArn=prod_env.model_package_group_arn.replace("-group/", "/") + "/1",
            CustomerMetadataProperties={"pinned:prod": "{}"},
        )
    assert forging.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
