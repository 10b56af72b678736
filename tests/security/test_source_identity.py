"""The identity the sandbox gives a caller behaves as AWS's: STS source identity is set once, needs the
trust policy's sts:SetSourceIdentity, survives role chaining, cannot be changed inside a chain, shows in
SageMaker's CreatedBy and in CloudTrail, and LookupEvents finds who started a pipeline execution.

AWS pages mirrored:
- https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html
- https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-sourceidentity
- https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html (SourceIdentity in the response)
- https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UserContext.html (CreatedBy.IamIdentity)
- https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html
- https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html
"""

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

DEV, REGISTRY = "111111111111", "333333333333"
REGION = "us-east-1"
_CONFIG = Config(region_name=REGION, retries={"max_attempts": 1})


def _client(endpoint, service, creds):
    return boto3.client(service, endpoint_url=endpoint, config=_CONFIG, **creds)


def _as(creds: dict) -> dict:
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


@pytest.fixture
def world(sandbox):
    admin = {a["account_id"]: a["credentials"] for a in sandbox["accounts"]}
    endpoint = sandbox["endpoint"]

    def client(account_or_creds, service):
        creds = admin[account_or_creds] if isinstance(account_or_creds, str) else account_or_creds
        return _client(endpoint, service, creds)

    def role(account, name, *, trust_actions, statements, principal=None, condition=None):
        trust = {
            "Effect": "Allow",
            "Principal": {"AWS": principal or f"arn:aws:iam::{account}:root"},
            "Action": trust_actions,
        }
        if condition:
            trust["Condition"] = condition
        iam = client(account, "iam")
        iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]})
        )
        if statements:
            iam.put_role_policy(
                RoleName=name,
                PolicyName="p",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            )
        return f"arn:aws:iam::{account}:role/{name}"

    return client, role


ASSUME_ANY = {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": "*"}


def test_setting_a_source_identity_needs_sts_set_source_identity_in_the_trust_policy(world):
    client, role = world
    plain = role(DEV, "no-set", trust_actions="sts:AssumeRole", statements=[ASSUME_ANY])
    sts = client(DEV, "sts")
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=plain, RoleSessionName="s1", SourceIdentity="dana")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # without a source identity the same trust policy is enough
    assert sts.assume_role(RoleArn=plain, RoleSessionName="s1")["AssumedRoleUser"]["Arn"].endswith("no-set/s1")


def test_source_identity_is_returned_carried_through_a_chain_and_visible_to_policies(world):
    client, role = world
    first = role(DEV, "first", trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"], statements=[ASSUME_ANY])
    # the second role may be assumed only by a session whose source identity is dana
    second = role(
        REGISTRY,
        "second",
        trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"],
        principal=first,
        condition={"StringEquals": {"aws:SourceIdentity": "dana"}},
        statements=[{"Effect": "Allow", "Action": "sagemaker:*ModelPackageGroup", "Resource": "*"}],
    )
    answer = client(DEV, "sts").assume_role(RoleArn=first, RoleSessionName="login", SourceIdentity="dana")
    assert answer["SourceIdentity"] == "dana"
    chained = client(_as(answer["Credentials"]), "sts").assume_role(RoleArn=second, RoleSessionName="chained")
    assert chained["SourceIdentity"] == "dana"  # not passed again, carried by AWS

    session = _as(chained["Credentials"])
    me = client(session, "sts").get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{REGISTRY}:assumed-role/second/chained"
    assert me["UserId"].endswith(":chained") and me["UserId"].startswith("AROA")

    sm = client(session, "sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="g")
    created = sm.describe_model_package_group(ModelPackageGroupName="g")["CreatedBy"]
    assert created == {"IamIdentity": {"Arn": me["Arn"], "PrincipalId": me["UserId"], "SourceIdentity": "dana"}}

    # another person's session is refused by the same trust policy
    alex = client(DEV, "sts").assume_role(RoleArn=first, RoleSessionName="login", SourceIdentity="alex")
    with pytest.raises(ClientError) as refused:
        client(_as(alex["Credentials"]), "sts").assume_role(RoleArn=second, RoleSessionName="x1")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_chain_cannot_change_its_source_identity(world):
    """AWS: 'If the user attempts to set a source identity that is different from the value set when
    CriticalRole was assumed, the assume role request will be denied.'"""
    client, role = world
    first = role(DEV, "first", trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"], statements=[ASSUME_ANY])
    second = role(DEV, "second", trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"], statements=[])
    dana = _as(
        client(DEV, "sts").assume_role(RoleArn=first, RoleSessionName="s1", SourceIdentity="dana")["Credentials"]
    )
    with pytest.raises(ClientError) as refused:
        client(dana, "sts").assume_role(RoleArn=second, RoleSessionName="s1", SourceIdentity="alex")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "cannot be changed" in refused.value.response["Error"]["Message"]
    # repeating the same value is not a change
    same = client(dana, "sts").assume_role(RoleArn=second, RoleSessionName="s1", SourceIdentity="dana")
    assert same["SourceIdentity"] == "dana"


def test_a_chained_role_whose_trust_lacks_set_source_identity_refuses_a_session_that_carries_one(world):
    """AWS: in role chaining, sts:SetSourceIdentity is required in the target role's trust policy."""
    client, role = world
    first = role(DEV, "first", trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"], statements=[ASSUME_ANY])
    second = role(DEV, "legacy", trust_actions="sts:AssumeRole", statements=[])
    dana = _as(
        client(DEV, "sts").assume_role(RoleArn=first, RoleSessionName="s1", SourceIdentity="dana")["Credentials"]
    )
    with pytest.raises(ClientError) as refused:
        client(dana, "sts").assume_role(RoleArn=second, RoleSessionName="s1")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_malformed_source_identity_is_a_validation_error(world):
    client, role = world
    first = role(DEV, "first", trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"], statements=[])
    for bad in ("aws:dana", "dana smith"):
        with pytest.raises(ClientError) as refused:
            client(DEV, "sts").assume_role(RoleArn=first, RoleSessionName="s1", SourceIdentity=bad)
        assert refused.value.response["Error"]["Code"] == "ValidationError"


def test_cloudtrail_lookup_events_names_who_started_a_pipeline_execution(world):
    client, role = world
    login = role(
        DEV,
        "person",
        trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"],
        statements=[{"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}],
    )
    execution_role = role(DEV, "runner", trust_actions="sts:AssumeRole", statements=[])
    answer = client(DEV, "sts").assume_role(RoleArn=login, RoleSessionName="dana-laptop", SourceIdentity="dana")
    dana = _as(answer["Credentials"])
    sm = client(dana, "sagemaker")
    iam = client(DEV, "iam")
    iam.put_role_policy(
        RoleName="person",
        PolicyName="pass",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}]}
        ),
    )
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": []}
    sm.create_pipeline(PipelineName="p", PipelineDefinition=json.dumps(definition), RoleArn=execution_role)
    before = time.time() - 1
    execution = sm.start_pipeline_execution(PipelineName="p")["PipelineExecutionArn"]

    trail = client(DEV, "cloudtrail")
    found = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "StartPipelineExecution"}],
        StartTime=before,
    )["Events"]
    assert [e["EventName"] for e in found] == ["StartPipelineExecution"]
    summary = found[0]
    assert summary["EventSource"] == "sagemaker.amazonaws.com" and summary["Username"] == "dana-laptop"
    record = json.loads(summary["CloudTrailEvent"])
    assert record["responseElements"] == {"pipelineExecutionArn": execution}
    assert record["requestParameters"]["pipelineName"] == "p"
    identity = record["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"] == f"arn:aws:sts::{DEV}:assumed-role/person/dana-laptop"
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == login
    assert identity["sessionContext"]["sourceIdentity"] == "dana"
    assert record["recipientAccountId"] == DEV and record["eventType"] == "AwsApiCall"

    # the AssumeRole that set it is recorded with the source identity among its request parameters
    assumed = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "AssumeRole"}], StartTime=before - 60
    )["Events"]
    params = [json.loads(e["CloudTrailEvent"])["requestParameters"] for e in assumed]
    assert {"roleArn": login, "roleSessionName": "dana-laptop", "sourceIdentity": "dana"}.items() <= params[-1].items()
    # another account's trail does not see it; more than one lookup attribute is refused
    assert not client(REGISTRY, "cloudtrail").lookup_events(StartTime=before)["Events"]
    with pytest.raises(ClientError):
        trail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "AssumeRole"},
                {"AttributeKey": "Username", "AttributeValue": "x"},
            ]
        )


def test_cloudtrail_stamps_records_with_the_sandbox_clock_as_executions(world):
    """After `sandbox tick` an execution's StartPipelineExecution record carries the execution's own time, so
    separation of duties (which looks the record up around the execution's CreationTime) still finds it."""
    from sandbox import client as sandbox_client

    client, role = world
    login = role(
        DEV,
        "ticker",
        trust_actions=["sts:AssumeRole", "sts:SetSourceIdentity"],
        statements=[
            {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
        ],
    )
    execution_role = role(DEV, "ticked-runner", trust_actions="sts:AssumeRole", statements=[])
    answer = client(DEV, "sts").assume_role(RoleArn=login, RoleSessionName="dana-later", SourceIdentity="dana")
    sm = client(_as(answer["Credentials"]), "sagemaker")
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": []}
    sm.create_pipeline(PipelineName="later", PipelineDefinition=json.dumps(definition), RoleArn=execution_role)
    sandbox_client.call("tick", {"by": "2d"})
    arn = sm.start_pipeline_execution(PipelineName="later")["PipelineExecutionArn"]
    created = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["CreationTime"]

    found = client(DEV, "cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "StartPipelineExecution"}],
        StartTime=created.timestamp() - 60,
        EndTime=created.timestamp() + 60,
    )["Events"]
    assert [json.loads(e["CloudTrailEvent"])["responseElements"]["pipelineExecutionArn"] for e in found] == [arn]
    assert abs(found[0]["EventTime"].timestamp() - created.timestamp()) < 5
