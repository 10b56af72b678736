"""`run-pipeline` end to end, as Jenkins runs it: credentials of the Jenkins account, chained through
prod's cross-account-jenkins-role (bootstrapped, least privilege), the real pipeline definitions."""

import json

import pytest

from tests.conftest import REPO
from tests.pipelines.upsert_helpers import CallCounter

JENKINS_ACCOUNT = "444444444444"


@pytest.fixture(scope="module")
def bootstrapped(sandbox_server):
    """A clean sandbox with dev, prod and the registry bootstrapped as an admin would."""
    from iam.bootstrap import bootstrap
    from mlops_core.config import load_environment
    from mlops_core.session import Sessions
    from sandbox import client

    client.reset()
    envs = {name: load_environment(name, env_dir=REPO / "environments") for name in ("dev", "prod")}
    for kind, name in (("dev", "dev"), ("prod", "prod"), ("registry", "prod")):
        bootstrap(envs[name], kind, apply=True, sessions=Sessions(envs[name]))
    return envs


@pytest.fixture(scope="module")
def jenkins_agent(bootstrapped):
    """The Jenkins agent's own role in the Jenkins account (what its instance profile would give it)."""
    import boto3

    from sandbox.client import admin_credentials, running

    prod = bootstrapped["prod"]
    admin = boto3.Session(region_name=prod.region, **admin_credentials(JENKINS_ACCOUNT))
    endpoint = running()["endpoint"]
    iam = admin.client("iam", endpoint_url=endpoint)
    name = prod.jenkins.principal_arn.split("/")[-1]
    iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"AWS": f"arn:aws:iam::{JENKINS_ACCOUNT}:root"},
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName=name,
        PolicyName="deploy",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                        "Resource": prod.role_arn("jenkins"),
                    }
                ],
            }
        ),
    )
    creds = admin.client("sts", endpoint_url=endpoint).assume_role(
        RoleArn=prod.jenkins.principal_arn, RoleSessionName="jenkins-agent"
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


@pytest.fixture
def jenkins(jenkins_agent):
    """What a Jenkins `withAWS` block leaves: the agent's credentials in AWS_* variables, and the build."""
    return {
        "MLOPS_SANDBOX_CREDENTIALS": "env",
        "MLOPS_AS": "jenkins",  # the Jenkinsfile's identity: the deploy role's trust requires one
        **jenkins_agent,
        "BUILD_TAG": "jenkins-mlops-deploy-17",
        "BUILD_URL": "https://jenkins.example.com/job/mlops-deploy/17/",
    }


@pytest.fixture(scope="module")
def prod_specs(bootstrapped):
    from pipelines.definitions import build_pipelines

    return build_pipelines(bootstrapped["prod"])


def test_jenkins_creates_then_a_rerun_is_one_read_per_pipeline_and_no_write(
    bootstrapped, jenkins, prod_specs, monkeypatch
):
    from mlops_core.session import Sessions
    from pipelines.upsert import upsert

    prod = bootstrapped["prod"]
    for key, value in jenkins.items():
        monkeypatch.setenv(key, value)
    chained = Sessions(prod)
    assert chained.caller_account() == JENKINS_ACCOUNT
    first = upsert(prod, prod_specs, chained)
    assert [(p.name, p.action) for p in first.plans] == [
        ("mlops-demo-train", "create"),
        ("mlops-demo-train-hpo", "create"),
        ("mlops-demo-inference", "create"),
        ("mlops-demo-model-quality", "create"),
    ]

    sm = chained.client("sagemaker")
    arn = sm.describe_pipeline(PipelineName="mlops-demo-inference")["PipelineArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags["build"] == "jenkins-mlops-deploy-17" and tags["environment"] == "prod"
    assert tags["build-url"] == "https://jenkins.example.com/job/mlops-deploy/17/"
    assert chained.client("lambda").get_function_configuration(FunctionName="mlops-demo-latest-approved-model")[
        "Role"
    ] == prod.role_arn("lambda")

    counter = CallCounter().attach(chained.workload())
    again = upsert(prod, prod_specs, chained)
    assert [p.action for p in again.plans] == ["unchanged"] * 4, [p.changes for p in again.plans]
    assert counter.calls == [("sagemaker", "DescribePipeline")] * 4


def test_untrusted_jenkins_is_refused_in_one_line_and_nothing_is_written(bootstrapped, jenkins, cli):
    from mlops_core.session import Sessions

    prod = bootstrapped["prod"]
    iam = Sessions(prod).client("iam")
    role = prod.roles.jenkins
    trusted = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    untrusting = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": "arn:aws:iam::555555555555:role/some-other-jenkins"},
                "Condition": {"StringEquals": {"sts:ExternalId": prod.jenkins.external_id}},
            }
        ],
    }
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(untrusting))
    try:
        result = cli("run-pipeline", "--env", "prod", "--pipeline", "train", "--start", env=jenkins)
    finally:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trusted))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot assume arn:aws:iam::222222222222:role/cross-account-jenkins-role: ")
    assert "AccessDenied" in lines[0] or "not authorized" in lines[0]
    executions = Sessions(prod).client("sagemaker").list_pipeline_executions(PipelineName="mlops-demo-train")
    assert executions["PipelineExecutionSummaries"] == []


def test_wait_follows_the_execution_and_fails_when_it_fails(bootstrapped, jenkins, cli):
    """Inference with no approved model in the registry: the Lambda step fails, --wait says so, exit 1."""
    result = cli("run-pipeline", "--env", "prod", "--pipeline", "inference", "--wait", "--output", "json", env=jenkins)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    [execution] = report["executions"]
    assert execution["status"] == "Failed" and execution["name"] == "mlops-demo-inference"
    assert report["plan"] == [
        {"pipeline": "inference", "name": "mlops-demo-inference", "action": "unchanged", "changes": []}
    ]
    assert "following " + execution["execution_arn"] in result.stderr
    assert "no approved model" in result.stderr.lower()
    assert result.stderr.strip().splitlines()[-1] == "error: mlops-demo-inference ended Failed"


def test_a_new_tag_updates_the_pipeline_under_the_jenkins_role(bootstrapped, jenkins, cli):
    """The update path (UpdatePipeline, AddTags over existing keys) with the bootstrap's least privilege.
    Runs last in this module: it changes the identity tags the tests above compare."""
    result = cli("run-pipeline", "--env", "prod", "--pipeline", "train", "--tag", "cost-centre=ml-42", env=jenkins)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  update     mlops-demo-train",
        "             - tags or description",
        "0 created, 1 updated, 0 unchanged",
    ]
    from mlops_core.session import Sessions

    sm = Sessions(bootstrapped["prod"]).client("sagemaker")
    arn = sm.describe_pipeline(PipelineName="mlops-demo-train")["PipelineArn"]
    keys = sorted(t["Key"] for t in sm.list_tags(ResourceArn=arn)["Tags"])
    assert keys == ["build", "build-url", "cost-centre", "environment", "git-commit", "project"]
