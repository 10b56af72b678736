"""Training, Tuning, Model, Transform, RegisterModel and Lambda steps on hand-written minimal
definitions shaped like the SageMaker SDK 2.x writes them (contract 2), run against the sandbox."""

import io
import json
import tarfile

import pytest

from tests.sandbox.pipeline_account import BUCKET, ROLE_ARN

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"

# A "model" that predicts a fixed fraction of each input value: enough to see the artefact flow.
TRAIN = """
import argparse, json, os, pathlib
p = argparse.ArgumentParser()
p.add_argument('--scale', type=float, default=1.0)
a = p.parse_args()
rows = pathlib.Path(os.environ['SM_CHANNEL_TRAIN'], 'train.csv').read_text().split()
hps = json.loads(os.environ['SM_HPS'])
assert hps['scale'] == a.scale, (hps, a.scale)
pathlib.Path(os.environ['SM_MODEL_DIR'], 'model.json').write_text(json.dumps({'scale': a.scale, 'rows': len(rows)}))
print(f"[0]\\ttrain-auc:0.99\\tvalidation-auc:{min(a.scale / 10, 0.99):.4f}")
"""

SERVE = """
import json, os
def model_fn(model_dir):
    return json.load(open(os.path.join(model_dir, 'model.json')))
def input_fn(body, content_type):
    assert content_type == 'text/csv', content_type
    return [float(x) for x in body.split()]
def predict_fn(data, model):
    return [x * model['scale'] for x in data]
def output_fn(prediction, accept):
    return '\\n'.join(f'{p:g}' for p in prediction)
"""


def sourcedir(account):
    return account.put_sourcedir("code/sourcedir.tar.gz", {"train.py": TRAIN, "serve.py": SERVE})


def training_args(code_uri, scale="2"):
    return {
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:auc", "Regex": "validation-auc:([0-9\\.]+)"}],
        },
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.m5.large"},
        "RoleArn": ROLE_ARN,
        "InputDataConfig": [
            {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/csv",
                "ChannelName": "train",
            }
        ],
        "HyperParameters": {
            "scale": scale,
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(code_uri),
            "sagemaker_container_log_level": "20",
            "sagemaker_region": '"us-east-1"',
        },
    }


def model_container(code_uri, model_data):
    return {
        "Image": IMAGE,
        "ModelDataUrl": model_data,
        "Environment": {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_SUBMIT_DIRECTORY": code_uri},
    }


@pytest.fixture
def data(account):
    account.put("train/train.csv", "1\n2\n3\n")
    account.put("batch/part-1.csv", "1\n10\n")
    account.put("batch/part-2.csv", "5\n")
    account.client("sagemaker").create_model_package_group(ModelPackageGroupName="engine-models")


def test_train_model_transform_register(account, data):
    code = sourcedir(account)
    artifacts = {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    definition = {
        "Parameters": [{"Name": "Scale", "Type": "String", "DefaultValue": "2"}],
        "Steps": [
            {"Name": "Train", "Type": "Training", "Arguments": training_args(code, {"Get": "Parameters.Scale"})},
            {
                "Name": "CreateModel",
                "Type": "Model",
                "Arguments": {"ExecutionRoleArn": ROLE_ARN, "PrimaryContainer": model_container(code, artifacts)},
            },
            {
                "Name": "Predict",
                "Type": "Transform",
                "Arguments": {
                    "ModelName": {"Get": "Steps.CreateModel.ModelName"},
                    "TransformInput": {
                        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/batch"}},
                        "ContentType": "text/csv",
                        "SplitType": "Line",
                    },
                    "TransformOutput": {
                        "S3OutputPath": {
                            "Std:Join": {
                                "On": "/",
                                "Values": [f"s3://{BUCKET}/predictions", {"Get": "Execution.PipelineExecutionId"}],
                            }
                        },
                        "Accept": "text/csv",
                        "AssembleWith": "Line",
                    },
                    "TransformResources": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
                },
            },
            {
                "Name": "Register",
                "Type": "RegisterModel",
                "Arguments": {
                    "ModelPackageGroupName": "engine-models",
                    "InferenceSpecification": {
                        "Containers": [model_container(code, artifacts)],
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedResponseMIMETypes": ["text/csv"],
                    },
                    "ModelApprovalStatus": "PendingManualApproval",
                    "CustomerMetadataProperties": {"execution": {"Get": "Execution.PipelineExecutionArn"}},
                },
            },
        ],
    }
    described, steps = account.run("train-serve", definition, params={"Scale": "3"})
    assert described["PipelineExecutionStatus"] == "Succeeded", steps
    arn = described["PipelineExecutionArn"]
    execution_id = arn.rsplit("/", 1)[1]

    job_arn = steps["Train"]["Metadata"]["TrainingJob"]["Arn"]
    keys = [o["Key"] for o in account.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/")["Contents"]]
    assert len(keys) == 1
    job_name = keys[0].split("/")[1]
    assert job_arn.endswith(f":training-job/{job_name.lower()}")  # AWS lower-cases job names in ARNs
    with tarfile.open(fileobj=io.BytesIO(account.read(f"s3://{BUCKET}/{keys[0]}"))) as tar:
        assert json.load(tar.extractfile("model.json")) == {"scale": 3.0, "rows": 3}

    # AssembleWith Line: every response ends with a newline
    # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformOutput.html)
    assert account.read(f"s3://{BUCKET}/predictions/{execution_id}/part-1.csv.out").decode() == "3\n30\n"
    assert account.read(f"s3://{BUCKET}/predictions/{execution_id}/part-2.csv.out").decode() == "15\n"
    assert "TransformJob" in steps["Predict"]["Metadata"]

    package_arn = steps["Register"]["Metadata"]["RegisterModel"]["Arn"]
    package = account.client("sagemaker").describe_model_package(ModelPackageName=package_arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"] == {"execution": arn}
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].endswith(
        f"{job_name}/output/model.tar.gz"
    )
    model_name = steps["CreateModel"]["Metadata"]["Model"]["Arn"].split("/")[-1]
    assert (
        account.client("sagemaker").describe_model(ModelName=model_name)["PrimaryContainer"]["Environment"][
            "SAGEMAKER_PROGRAM"
        ]
        == "serve.py"
    )


def test_tuning_runs_the_candidates_and_ranks_them_by_the_objective(account, data):
    code = sourcedir(account)
    training = training_args(code)
    definition = {
        "Steps": [
            {
                "Name": "Tune",
                "Type": "Tuning",
                "Arguments": {
                    "HyperParameterTuningJobConfig": {
                        "Strategy": "Random",
                        "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1},
                        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
                        "ParameterRanges": {
                            "IntegerParameterRanges": [
                                {"Name": "scale", "MinValue": "1", "MaxValue": "9", "ScalingType": "Auto"}
                            ],
                            "ContinuousParameterRanges": [],
                            "CategoricalParameterRanges": [],
                        },
                    },
                    "TrainingJobDefinition": {
                        **{k: v for k, v in training.items() if k not in ("HyperParameters", "AlgorithmSpecification")},
                        "AlgorithmSpecification": training["AlgorithmSpecification"],
                        "StaticHyperParameters": {k: v for k, v in training["HyperParameters"].items() if k != "scale"},
                    },
                },
            },
            {
                "Name": "BestModel",
                "Type": "Model",
                "Arguments": {
                    "ExecutionRoleArn": ROLE_ARN,
                    "PrimaryContainer": model_container(
                        code,
                        {
                            "Std:Join": {
                                "On": "/",
                                "Values": [
                                    f"s3://{BUCKET}/models",
                                    {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"},
                                    "output/model.tar.gz",
                                ],
                            }
                        },
                    ),
                },
            },
        ]
    }
    described, steps = account.run("tuned", definition)
    assert described["PipelineExecutionStatus"] == "Succeeded", steps
    assert "TuningJob" in steps["Tune"]["Metadata"]
    model_name = steps["BestModel"]["Metadata"]["Model"]["Arn"].split("/")[-1]
    best_uri = account.client("sagemaker").describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
    scales = []
    for key in account.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/")["Contents"]:
        with tarfile.open(fileobj=io.BytesIO(account.read(f"s3://{BUCKET}/{key['Key']}"))) as tar:
            scales.append((json.load(tar.extractfile("model.json"))["scale"], f"s3://{BUCKET}/{key['Key']}"))
    assert len(scales) == 3
    best_scale = next(scale for scale, uri in scales if uri == best_uri)
    assert best_scale == max(scale for scale, _ in scales)  # the highest validation:auc is the highest scale


LATEST = """
import boto3
def handler(event, context):
    keys = boto3.client('s3').list_objects_v2(Bucket=event['bucket'], Prefix='approved/').get('Contents', [])
    if not keys:
        raise LookupError(f"no approved model in {event['group']}")
    return {'ModelDataUrl': f"s3://{event['bucket']}/{keys[-1]['Key']}", 'Count': len(keys)}
"""


def lambda_pipeline(function_arn):
    return {
        "Steps": [
            {
                "Name": "LatestApproved",
                "Type": "Lambda",
                "FunctionArn": function_arn,
                "OutputParameters": [
                    {"OutputName": "ModelDataUrl", "OutputType": "String"},
                    {"OutputName": "Count", "OutputType": "Integer"},
                ],
                "Arguments": {
                    "bucket": BUCKET,
                    "group": "arn:aws:sagemaker:us-east-1:333333333333:model-package-group/g",
                },
            },
            {
                "Name": "Report",
                "Type": "Fail",
                "Arguments": {
                    "ErrorMessage": {
                        "Std:Join": {
                            "On": " ",
                            "Values": ["resolved", {"Get": "Steps.LatestApproved.OutputParameters['ModelDataUrl']"}],
                        }
                    }
                },
            },
        ]
    }


def test_lambda_step_runs_the_handler_as_the_function_role_and_exposes_outputs(account):
    function_arn = account.create_lambda("latest-approved", LATEST)
    account.put("approved/model.tar.gz", b"x")
    _, steps = account.run("lambda-ok", lambda_pipeline(function_arn))
    assert steps["LatestApproved"]["StepStatus"] == "Succeeded"
    outputs = {p["Name"]: p["Value"] for p in steps["LatestApproved"]["Metadata"]["Lambda"]["OutputParameters"]}
    assert outputs == {"ModelDataUrl": f"s3://{BUCKET}/approved/model.tar.gz", "Count": "1"}
    # the next step read the output parameter (the Fail step is only a way to print it)
    assert steps["Report"]["FailureReason"] == f"resolved s3://{BUCKET}/approved/model.tar.gz"
    logs = account.client("logs").filter_log_events(logGroupName="/aws/lambda/latest-approved")["events"]
    assert any(e["message"].startswith("START RequestId") for e in logs)


def test_a_raising_lambda_fails_its_step_with_the_error_message(account):
    function_arn = account.create_lambda("latest-approved", LATEST)
    described, steps = account.run("lambda-none", lambda_pipeline(function_arn))
    assert described["PipelineExecutionStatus"] == "Failed"
    assert (
        steps["LatestApproved"]["FailureReason"]
        == "LookupError: no approved model in arn:aws:sagemaker:us-east-1:333333333333:model-package-group/g"
    )
    assert "Report" not in steps
