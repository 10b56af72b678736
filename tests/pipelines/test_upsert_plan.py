"""The upsert planner on its own: pure data in, create/update/unchanged out, no AWS at all."""

import json

from pipelines.upsert import desired_pipelines, normalise_definition, plan
from tests.pipelines.upsert_helpers import make_specs


def _deployed_as_aws_returns_it(desired, **overrides):
    """A DescribePipeline answer for what `desired` would have written, re-serialised differently."""
    definition = json.loads(desired.spec.definition)
    definition["Parameters"].reverse()
    return {
        "PipelineName": desired.name,
        "PipelineDefinition": json.dumps(definition, indent=4),
        "RoleArn": desired.role_arn,
        "PipelineDescription": desired.description,
        **overrides,
    }


def test_absent_pipelines_are_created(prod_env):
    desired = desired_pipelines(prod_env, make_specs(prod_env))
    result = plan(desired, {d.name: None for d in desired})
    assert [(p.key, p.action) for p in result] == [("train", "create"), ("hpo", "create"), ("inference", "create")]


def test_same_definition_serialised_differently_is_unchanged(prod_env):
    desired = desired_pipelines(prod_env, make_specs(prod_env))
    deployed = {d.name: _deployed_as_aws_returns_it(d) for d in desired}
    assert {p.action for p in plan(desired, deployed)} == {"unchanged"}


def test_changed_parameter_default_and_step_are_named(prod_env):
    old = desired_pipelines(prod_env, make_specs(prod_env))
    new = desired_pipelines(prod_env, make_specs(prod_env, threshold="0.95", code=b"print('v2')"))
    deployed = {d.name: _deployed_as_aws_returns_it(d) for d in old}
    train = plan(new, deployed)[0]
    assert train.action == "update"
    assert train.changes == ("parameter AucThreshold: 0.9 -> 0.95", "step Preprocess changed")


def test_new_tag_or_role_is_an_update(prod_env):
    desired = desired_pipelines(prod_env, make_specs(prod_env))
    deployed = {d.name: _deployed_as_aws_returns_it(d) for d in desired}
    tagged = desired_pipelines(prod_env, make_specs(prod_env), {"cost-centre": "ml-42"})
    assert {p.changes for p in plan(tagged, deployed)} == {("tags or description",)}
    deployed["mlops-demo-train"]["RoleArn"] = "arn:aws:iam::222222222222:role/someone-else"
    assert plan(desired, deployed)[0].changes == (
        "role arn:aws:iam::222222222222:role/someone-else -> "
        "arn:aws:iam::222222222222:role/mlops-demo-sagemaker-execution",
    )


def test_pipeline_written_by_someone_else_is_updated_not_trusted(prod_env):
    """A pipeline with the same definition but no fingerprint (e.g. written by the SDK) gets ours."""
    desired = desired_pipelines(prod_env, make_specs(prod_env))
    deployed = {d.name: _deployed_as_aws_returns_it(d, PipelineDescription="") for d in desired}
    assert {p.action for p in plan(desired, deployed)} == {"update"}


def test_build_tags_do_not_make_a_change(prod_env, monkeypatch):
    """A new Jenkins build of the same code must be a no-op: build tags are not in the fingerprint."""
    monkeypatch.setenv("BUILD_TAG", "jenkins-1")
    first = desired_pipelines(prod_env, make_specs(prod_env))
    monkeypatch.setenv("BUILD_TAG", "jenkins-2")
    second = desired_pipelines(prod_env, make_specs(prod_env))
    assert [d.description for d in first] == [d.description for d in second]


def test_normalisation_ignores_key_order_and_parameter_order():
    a = '{"Version": "2020-12-01", "Parameters": [{"Name": "B"}, {"Name": "A"}], "Steps": []}'
    b = '{"Steps": [], "Parameters": [{"Name": "A"}, {"Name": "B"}], "Version": "2020-12-01"}'
    assert normalise_definition(a) == normalise_definition(b)


def test_provenance_parameter_defaults_are_not_a_change(prod_env):
    """GitCommit/BuildId defaults differ on every build; the pipeline they describe does not."""

    def with_provenance(commit):
        specs = make_specs(prod_env)
        for spec in specs.values():
            definition = json.loads(spec.definition)
            definition["Parameters"].append({"Name": "GitCommit", "Type": "String", "DefaultValue": commit})
            spec.definition = json.dumps(definition)
        return desired_pipelines(prod_env, specs)

    old, new = with_provenance("aaaa111"), with_provenance("bbbb222")
    deployed = {d.name: _deployed_as_aws_returns_it(d) for d in old}
    assert {p.action for p in plan(new, deployed)} == {"unchanged"}
