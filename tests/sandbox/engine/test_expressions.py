"""The definition language on its own: what each expression a SageMaker SDK 2.x definition contains
evaluates to, and the one-line reason when it cannot."""

import pytest

from sandbox.engine.expressions import Context, EvaluationError, condition, evaluate, references, resolve_parameters


@pytest.fixture
def ctx():
    return Context(
        parameters={"Threshold": 0.9, "Bucket": "b", "Count": 3},
        execution={"PipelineExecutionId": "abc123", "PipelineExecutionArn": "arn:x/execution/abc123"},
        steps={
            "Preprocess": {
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                        {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test"}},
                    ]
                },
                "PropertyFiles": {"Evaluation": {"metrics": {"auc": {"value": 0.93}}, "list": [1, 2]}},
            },
            "Train": {
                "ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"},
                "FinalMetricDataList": [{"MetricName": "validation:auc", "Value": 0.95}],
            },
            "Tune": {"TrainingJobSummaries": [{"TrainingJobName": "best"}, {"TrainingJobName": "second"}]},
            "Resolve": {"OutputParameters": {"ModelDataUrl": "s3://r/m.tar.gz"}},
        },
    )


def test_parameters_and_execution_variables(ctx):
    assert evaluate({"Get": "Parameters.Threshold"}, ctx) == 0.9
    assert evaluate({"Get": "Execution.PipelineExecutionId"}, ctx) == "abc123"


def test_property_paths_by_output_name_index_and_dict_key(ctx):
    assert (
        evaluate({"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}, ctx)
        == "s3://b/test"
    )
    assert evaluate({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, ctx) == "s3://b/model.tar.gz"
    assert evaluate({"Get": "Steps.Train.FinalMetricDataList['validation:auc'].Value"}, ctx) == 0.95
    assert evaluate({"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"}, ctx) == "best"
    assert evaluate({"Get": "Steps.Resolve.OutputParameters['ModelDataUrl']"}, ctx) == "s3://r/m.tar.gz"


def test_join_renders_numbers_and_nested_expressions(ctx):
    expr = {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                {"Get": "Parameters.Bucket"},
                {"Get": "Parameters.Count"},
                {"Get": "Execution.PipelineExecutionId"},
            ],
        }
    }
    assert evaluate(expr, ctx) == "s3://b/3/abc123"


def test_json_get_on_a_property_file(ctx):
    expr = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.Evaluation"},
            "Path": "metrics.auc.value",
        }
    }
    assert evaluate(expr, ctx) == 0.93
    assert evaluate({"Std:JsonGet": {"PropertyFile": "Evaluation", "Path": "list[1]"}}, ctx) == 2


def test_json_get_on_an_s3_uri_reads_through_the_callback(ctx):
    ctx.read_s3 = lambda uri: b'{"drift": {"score": 0.4}}' if uri == "s3://b/test" else b"{}"
    expr = {
        "Std:JsonGet": {
            "S3Uri": {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"},
            "Path": "drift.score",
        }
    }
    assert evaluate(expr, ctx) == 0.4


@pytest.mark.parametrize(
    "expr, message",
    [
        ({"Get": "Parameters.Missing"}, "Parameters.Missing is not a parameter"),
        ({"Get": "Steps.Nope.ModelArtifacts"}, "step 'Nope' has no properties"),
        (
            {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri"},
            "no item named 'validation'",
        ),
        (
            {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.Evaluation"},
                    "Path": "metrics.f1",
                }
            },
            "'f1' not found",
        ),
        ({"Get": "Steps.Tune.TrainingJobSummaries[5].TrainingJobName"}, "index [5] out of range"),
    ],
)
def test_a_wrong_reference_names_what_is_missing(ctx, expr, message):
    with pytest.raises(EvaluationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evaluate(expr, ctx)


@pytest.mark.parametrize(
    "cond, expected",
    [
        (
            {
                "Type": "GreaterThanOrEqualTo",
                "LeftValue": {"Std:JsonGet": {"PropertyFile": "Evaluation", "Path": "metrics.auc.value"}},
                "RightValue": {"Get": "Parameters.Threshold"},
            },
            True,
        ),
        ({"Type": "GreaterThan", "LeftValue": 0.9, "RightValue": {"Get": "Parameters.Threshold"}}, False),
        ({"Type": "LessThan", "LeftValue": "0.5", "RightValue": 0.9}, True),
        ({"Type": "LessThanOrEqualTo", "LeftValue": 0.9, "RightValue": 0.9}, True),
        ({"Type": "Equals", "LeftValue": {"Get": "Parameters.Bucket"}, "RightValue": "b"}, True),
        ({"Type": "In", "QueryValue": {"Get": "Parameters.Count"}, "Values": [1, 2, 3]}, True),
        ({"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": 1}}, False),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "Equals", "LeftValue": 1, "RightValue": 2},
                    {"Type": "Equals", "LeftValue": 2, "RightValue": 2},
                ],
            },
            True,
        ),
    ],
)
def test_conditions(ctx, cond, expected):
    assert condition(cond, ctx) is expected


def test_parameter_overrides_are_typed_and_unknown_ones_refused():
    declared = [
        {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.9},
        {"Name": "Epochs", "Type": "Integer", "DefaultValue": 5},
        {"Name": "Register", "Type": "Boolean", "DefaultValue": True},
        {"Name": "Input", "Type": "String"},
    ]
    values = resolve_parameters(declared, [{"Name": "Epochs", "Value": "7"}, {"Name": "Input", "Value": "s3://x"}])
    assert values == {"Threshold": 0.9, "Epochs": 7, "Register": True, "Input": "s3://x"}
    with pytest.raises(EvaluationError, match="Typo is not defined"):
        resolve_parameters(declared, [{"Name": "Typo", "Value": "1"}, {"Name": "Input", "Value": "x"}])
    with pytest.raises(EvaluationError, match="without a value or default: Input"):
        resolve_parameters(declared, [])
    with pytest.raises(EvaluationError, match="'many' is not a valid Integer"):
        resolve_parameters(declared, [{"Name": "Epochs", "Value": "many"}, {"Name": "Input", "Value": "x"}])


def test_references_are_the_data_dependencies():
    args = {
        "A": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
        "B": [{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "x"}}],
        "C": {"Get": "Parameters.X"},
    }
    assert references(args) == {"Train", "Eval"}
