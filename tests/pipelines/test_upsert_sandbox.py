"""Upsert against the sandbox: what gets written, and what an unchanged pipeline costs."""

import json

import pytest

from pipelines.upsert import lambda_code_sha256, upsert
from tests.pipelines.upsert_helpers import CallCounter, make_specs

BUILD_1 = {"git-commit": "aaaa111", "build": "jenkins-mlops-1"}
BUILD_2 = {"git-commit": "bbbb222", "build": "jenkins-mlops-2"}


def _tags(sm, arn):
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def test_create_then_unchanged_costs_one_read_per_pipeline_and_no_write(prod_workload, prod_env):
    counter = CallCounter().attach(prod_workload.workload())
    first = upsert(prod_env, make_specs(prod_env), prod_workload, build=BUILD_1)
    assert [p.action for p in first.plans] == ["create"] * 3

    sm = prod_workload.client("sagemaker")
    train = sm.describe_pipeline(PipelineName="mlops-demo-train")
    assert json.loads(train["PipelineDefinition"])["Parameters"][0]["DefaultValue"] == 0.9
    assert train["RoleArn"] == prod_env.role_arn("execution")
    assert _tags(sm, train["PipelineArn"]) == {
        "project": "mlops-demo",
        "environment": "prod",
        "git-commit": "aaaa111",
        "build": "jenkins-mlops-1",
    }
    code_uri = json.loads(train["PipelineDefinition"])["Steps"][0]["Arguments"]["AppSpecification"][
        "ContainerEntrypoint"
    ][1]
    bucket, key = code_uri[5:].split("/", 1)
    head = prod_workload.client("s3").head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    fn = prod_workload.client("lambda").get_function_configuration(FunctionName="mlops-demo-latest-approved")
    assert fn["Role"] == prod_env.role_arn("lambda")

    counter.reset()
    second = upsert(prod_env, make_specs(prod_env), prod_workload, build=BUILD_2)
    assert [p.action for p in second.plans] == ["unchanged"] * 3
    assert counter.calls == [("sagemaker", "DescribePipeline")] * 3
    assert counter.writes == []
    # an unchanged pipeline keeps the build that last changed it
    assert _tags(sm, train["PipelineArn"])["build"] == "jenkins-mlops-1"


def test_changed_definition_and_lambda_code_are_updated_with_the_new_build_tags(prod_workload, prod_env):
    upsert(prod_env, make_specs(prod_env), prod_workload, build=BUILD_1)
    changed = make_specs(prod_env, threshold="0.95", lambda_source="def handler(e, c):\n    return {'v': 2}\n")
    result = upsert(prod_env, changed, prod_workload, build=BUILD_2)

    assert [p.action for p in result.plans] == ["update"] * 3
    assert result.plans[0].changes == ("parameter AucThreshold: 0.9 -> 0.95",)
    sm = prod_workload.client("sagemaker")
    train = sm.describe_pipeline(PipelineName="mlops-demo-train")
    assert json.loads(train["PipelineDefinition"])["Parameters"][0]["DefaultValue"] == 0.95
    tags = sm.list_tags(ResourceArn=train["PipelineArn"])["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [
        ("build", "jenkins-mlops-2"),
        ("environment", "prod"),
        ("git-commit", "bbbb222"),
        ("project", "mlops-demo"),
    ]
    fn = prod_workload.client("lambda").get_function_configuration(FunctionName="mlops-demo-latest-approved")
    assert fn["CodeSha256"] == lambda_code_sha256(changed["inference"].lambda_functions[0].zip_bytes)
    # and converged: the next run is a no-op
    assert {p.action for p in upsert(prod_env, changed, prod_workload, build=BUILD_2).plans} == {"unchanged"}


def test_start_passes_only_each_pipelines_own_parameters(prod_workload, prod_env):
    result = upsert(
        prod_env, make_specs(prod_env), prod_workload, build=BUILD_1, start=True, params={"AucThreshold": "0.95"}
    )
    assert len(result.executions) == 3
    sm = prod_workload.client("sagemaker")
    execution = result.executions[0]["execution_arn"]
    assert sm.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineArn"].endswith("/mlops-demo-train")
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)["PipelineParameters"]
    assert {"Name": "AucThreshold", "Value": "0.95"} in params


def test_unknown_parameter_fails_before_anything_is_written(prod_workload, prod_env):
    from mlops_core.errors import ConfigError

    counter = CallCounter().attach(prod_workload.workload())
    with pytest.raises(ConfigError, match="--param: 'Threshold' is not a parameter of mlops-demo-train"):
        upsert(prod_env, make_specs(prod_env), prod_workload, start=True, params={"Threshold": "1"})
    assert counter.calls == []


def test_150_unchanged_pipelines_cost_one_read_each_and_no_write(prod_workload, prod_env):
    """run-pipeline for 50 projects' pipelines (as bench/promotion.py deploys them), the second time:
    one DescribePipeline each, nothing written, however many pipelines the account holds."""
    from dataclasses import replace

    projects = []
    for n in range(50):
        env = replace(prod_env, pipelines={k: f"p{n:02d}-{k}" for k in prod_env.pipelines})
        specs = make_specs(env)
        for spec in specs.values():  # code and Lambda add nothing to what an unchanged pipeline reads
            spec.lambda_functions, spec.uploads = [], []
        projects.append((env, specs))
    counter = CallCounter().attach(prod_workload.workload())
    clients: dict = {}
    for env, specs in projects:
        upsert(env, specs, prod_workload, build=BUILD_1, clients=clients)

    counter.reset()
    plans = [
        p for env, specs in projects for p in upsert(env, specs, prod_workload, build=BUILD_2, clients=clients).plans
    ]
    assert [p.action for p in plans] == ["unchanged"] * 150
    assert counter.calls == [("sagemaker", "DescribePipeline")] * 150
    assert counter.writes == []
