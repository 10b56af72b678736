"""Pipeline executions through real boto3 against the sandbox: the definition really runs, with the
status lifecycle, step list, stop, retry and failure reasons SageMaker reports."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.sandbox.pipeline_account import BUCKET, EXECUTION_POLICY, ROLE_ARN, ROLE_NAME, processing_step

DOUBLE = """
import argparse, json, pathlib
p = argparse.ArgumentParser(); p.add_argument('--input'); p.add_argument('--output'); a = p.parse_args()
n = int(pathlib.Path(a.input, 'n.txt').read_text())
pathlib.Path(a.output, 'report.json').write_text(json.dumps({'metrics': {'value': n * 2}}))
print('doubled', n)
"""

SLEEP = """
import sys, time, pathlib
time.sleep(float(sys.argv[1])); pathlib.Path(sys.argv[2], 'done.txt').write_text(str(time.time()))
"""


def gated_pipeline(code):
    """Double a number, then a Condition on the reported value: at least Threshold, or Fail."""
    return {
        "Parameters": [{"Name": "Threshold", "Type": "Integer", "DefaultValue": 40}],
        "Steps": [
            processing_step(
                "Double",
                code,
                "double.py",
                inputs=[("data", f"s3://{BUCKET}/data")],
                outputs=[
                    (
                        "report",
                        {
                            "Std:Join": {
                                "On": "/",
                                "Values": [f"s3://{BUCKET}/runs", {"Get": "Execution.PipelineExecutionId"}, "report"],
                            }
                        },
                    )
                ],
                arguments=["--input", "/opt/ml/processing/input/data", "--output", "/opt/ml/processing/output/report"],
                property_files=[{"PropertyFileName": "Report", "OutputName": "report", "FilePath": "report.json"}],
            ),
            {
                "Name": "CheckValue",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "GreaterThanOrEqualTo",
                            "LeftValue": {
                                "Std:JsonGet": {
                                    "PropertyFile": {"Get": "Steps.Double.PropertyFiles.Report"},
                                    "Path": "metrics.value",
                                }
                            },
                            "RightValue": {"Get": "Parameters.Threshold"},
                        }
                    ],
                    "IfSteps": [],
                    "ElseSteps": [
                        {
                            "Name": "ValueTooSmall",
                            "Type": "Fail",
                            "Arguments": {
                                "ErrorMessage": {
                                    "Std:Join": {
                                        "On": " ",
                                        "Values": [
                                            "value",
                                            {
                                                "Std:JsonGet": {
                                                    "PropertyFile": {"Get": "Steps.Double.PropertyFiles.Report"},
                                                    "Path": "metrics.value",
                                                }
                                            },
                                            "is below the threshold",
                                            {"Get": "Parameters.Threshold"},
                                        ],
                                    }
                                }
                            },
                        }
                    ],
                },
            },
        ],
    }


@pytest.fixture
def double(account):
    account.put("data/n.txt", "21")
    return account.put_script("double.py", DOUBLE)


def test_processing_output_lands_in_s3_and_the_condition_passes(account, double):
    arn = account.start("gated", gated_pipeline(double))
    assert (
        account.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        == "Executing"
    )
    described = account.wait(arn)
    assert described["PipelineExecutionStatus"] == "Succeeded"
    assert "FailureReason" not in described
    execution_id = arn.rsplit("/", 1)[1]
    report = json.loads(account.read(f"s3://{BUCKET}/runs/{execution_id}/report/report.json"))
    assert report == {"metrics": {"value": 42}}
    steps = account.steps(arn)
    assert set(steps) == {"Double", "CheckValue"}  # the Else branch never ran
    assert steps["Double"]["StepStatus"] == "Succeeded"
    job_arn = steps["Double"]["Metadata"]["ProcessingJob"]["Arn"]
    assert f":processing-job/pipelines-{execution_id}-double-" in job_arn
    assert steps["CheckValue"]["Metadata"]["Condition"]["Outcome"] == "True"


def test_a_parameter_override_sends_the_execution_to_the_fail_step_with_its_message(account, double):
    described, steps = account.run("gated", gated_pipeline(double), params={"Threshold": 50})
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Step failure: One or multiple steps failed."
    assert steps["CheckValue"]["Metadata"]["Condition"]["Outcome"] == "False"
    assert steps["ValueTooSmall"]["StepStatus"] == "Failed"
    assert steps["ValueTooSmall"]["FailureReason"] == "value 42 is below the threshold 50"
    assert steps["ValueTooSmall"]["Metadata"]["Fail"]["ErrorMessage"] == "value 42 is below the threshold 50"


def test_start_with_an_undefined_parameter_is_refused(account, double):
    with pytest.raises(ClientError, match="Treshold is not defined by the pipeline"):
        account.start("gated", gated_pipeline(double), params={"Treshold": 50})


def test_a_script_error_fails_its_step_with_the_last_line_and_skips_dependants(account):
    code = account.put_script("boom.py", "raise SystemExit('DataDriftDetected: 3 features drifted')")
    definition = {
        "Steps": [
            processing_step("Check", code, "boom.py"),
            processing_step("After", code, "boom.py", depends_on=["Check"]),
        ]
    }
    described, steps = account.run("boom", definition)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert set(steps) == {"Check"}
    assert "DataDriftDetected: 3 features drifted" in steps["Check"]["FailureReason"]
    assert steps["Check"]["FailureReason"].startswith("AlgorithmError: ")


def test_a_property_path_to_a_missing_output_fails_the_step_that_reads_it(account, double):
    definition = gated_pipeline(double)
    definition["Steps"].append(
        processing_step(
            "UsesWrongOutput",
            double,
            "double.py",
            inputs=[("data", {"Get": "Steps.Double.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"})],
        )
    )
    described, steps = account.run("wrong-ref", definition)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert "no item named 'evaluation'" in steps["UsesWrongOutput"]["FailureReason"]


def test_independent_steps_run_concurrently_and_dependants_wait(account):
    code = account.put_script("sleep.py", SLEEP)
    out = [("out", f"s3://{BUCKET}/sleep")]
    definition = {
        "Steps": [
            processing_step("A", code, "sleep.py", arguments=["1.0", "/opt/ml/processing/output/out"], outputs=out),
            processing_step("B", code, "sleep.py", arguments=["1.0", "/opt/ml/processing/output/out"], outputs=out),
            processing_step(
                "C",
                code,
                "sleep.py",
                arguments=["0", "/opt/ml/processing/output/out"],
                outputs=out,
                depends_on=["A", "B"],
            ),
        ]
    }
    described, steps = account.run("parallel", definition)
    assert described["PipelineExecutionStatus"] == "Succeeded"
    a, b, c = steps["A"], steps["B"], steps["C"]
    assert a["StartTime"] < b["EndTime"] and b["StartTime"] < a["EndTime"], "A and B did not overlap"
    assert c["StartTime"] >= max(a["EndTime"], b["EndTime"])


def test_stop_ends_the_running_step_and_the_execution_as_stopped(account):
    code = account.put_script("sleep.py", SLEEP)
    definition = {
        "Steps": [
            processing_step(
                "Long",
                code,
                "sleep.py",
                arguments=["60", "/opt/ml/processing/output/out"],
                outputs=[("out", f"s3://{BUCKET}/sleep")],
            ),
            processing_step(
                "Next",
                code,
                "sleep.py",
                arguments=["0", "/opt/ml/processing/output/out"],
                outputs=[("out", f"s3://{BUCKET}/sleep")],
                depends_on=["Long"],
            ),
        ]
    }
    arn = account.start("stoppable", definition)
    sm = account.client("sagemaker")
    deadline = time.monotonic() + 20
    while not account.steps(arn) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] in (
        "Stopping",
        "Stopped",
    )
    described = account.wait(arn, timeout=20)
    assert described["PipelineExecutionStatus"] == "Stopped"
    assert time.monotonic() - started < 10
    assert {n: s["StepStatus"] for n, s in account.steps(arn).items()} == {"Long": "Stopped"}
    with pytest.raises(ClientError, match="cannot be stopped"):
        sm.stop_pipeline_execution(PipelineExecutionArn=arn)


def test_retry_reruns_the_failed_step_and_keeps_what_succeeded(account, double):
    flaky = account.put_script(
        "needs_flag.py",
        """
import boto3, sys
boto3.client('s3').head_object(Bucket=sys.argv[1], Key='flag')  # fails until the flag exists
print('flag found')
""",
    )
    definition = gated_pipeline(double)
    definition["Steps"].append(
        processing_step("NeedsFlag", flaky, "needs_flag.py", arguments=[BUCKET], depends_on=["Double"])
    )
    described, steps = account.run("retryable", definition)
    arn = described["PipelineExecutionArn"]
    assert described["PipelineExecutionStatus"] == "Failed"
    first_double = steps["Double"]["Metadata"]["ProcessingJob"]["Arn"]
    account.put("flag", "1")
    sm = account.client("sagemaker")
    assert sm.retry_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionArn"] == arn
    assert account.wait(arn)["PipelineExecutionStatus"] == "Succeeded"
    steps = account.steps(arn)
    assert steps["NeedsFlag"]["StepStatus"] == "Succeeded"
    assert steps["Double"]["Metadata"]["ProcessingJob"]["Arn"] == first_double  # not run again
    with pytest.raises(ClientError, match="only a Failed execution can be retried"):
        sm.retry_pipeline_execution(PipelineExecutionArn=arn)


def test_pipelines_are_addressed_by_arn_too(account, double):
    arn = account.start("by-arn", gated_pipeline(double))
    account.wait(arn)
    sm = account.client("sagemaker")
    pipeline_arn = sm.describe_pipeline(PipelineName="by-arn")["PipelineArn"]
    assert sm.describe_pipeline(PipelineName=pipeline_arn)["PipelineName"] == "by-arn"
    second = sm.start_pipeline_execution(PipelineName=pipeline_arn)["PipelineExecutionArn"]
    account.wait(second)
    summaries = sm.list_pipeline_executions(PipelineName=pipeline_arn)["PipelineExecutionSummaries"]
    assert [s["PipelineExecutionArn"] for s in summaries] == [second, arn]  # newest first, as AWS lists
    assert all(s["PipelineExecutionStatus"] == "Succeeded" for s in summaries)


def test_an_unsupported_step_type_fails_the_execution_naming_it(account):
    described, steps = account.run("emr", {"Steps": [{"Name": "Cluster", "Type": "EMR", "Arguments": {}}]})
    assert described["PipelineExecutionStatus"] == "Failed"
    assert "step type 'EMR' is not supported" in described["FailureReason"]
    assert steps == {}


def test_the_step_acts_as_the_execution_role_so_a_missing_permission_fails_it(account, double):
    account.client("iam").put_role_policy(
        RoleName=ROLE_NAME,
        PolicyName="engine-test",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["sagemaker:CreateProcessingJob"], "Resource": "*"},
                    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE_ARN},
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
                    },
                ],
            }
        ),
    )  # no s3:PutObject
    described, steps = account.run("no-put", gated_pipeline(double))
    assert described["PipelineExecutionStatus"] == "Failed"
    reason = steps["Double"]["FailureReason"]
    assert "AccessDenied" in reason and "PutObject" in reason


def test_a_role_that_does_not_trust_sagemaker_fails_the_step(account, double):
    iam = account.client("iam")
    iam.create_role(
        RoleName="trusts-lambda",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    role = ROLE_ARN.replace(ROLE_NAME, "trusts-lambda")
    described, steps = account.run("bad-trust", gated_pipeline(double), role_arn=role)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert "sagemaker.amazonaws.com is not trusted by" in steps["Double"]["FailureReason"]


def test_executions_survive_a_restart_and_one_cut_short_says_so(tmp_path, monkeypatch):
    """`sandbox down` / `up` keeps executions, their steps and the event deliveries; an execution that
    was running when the server stopped ends Failed with that reason instead of running forever."""
    from sandbox import client
    from tests.conftest import run_cli
    from tests.sandbox.pipeline_account import EXECUTION_POLICY, ROLE_NAME, TRUST_SAGEMAKER, PipelineAccount

    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path / "home"))
    try:
        account = PipelineAccount(client.up({"dev": "111111111111"}))
        account.client("s3").create_bucket(Bucket=BUCKET)
        iam = account.client("iam")
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_SAGEMAKER))
        iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="t", PolicyDocument=json.dumps(EXECUTION_POLICY))
        code = account.put_script("sleep.py", SLEEP)
        quick = account.start(
            "quick",
            {
                "Steps": [
                    {
                        "Name": "Noop",
                        "Type": "Condition",
                        "Arguments": {"Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}]},
                    }
                ]
            },
        )
        account.wait(quick)
        long = account.start(
            "long",
            {
                "Steps": [
                    processing_step(
                        "Sleep",
                        code,
                        "sleep.py",
                        arguments=["60", "/opt/ml/processing/output/out"],
                        outputs=[("out", f"s3://{BUCKET}/sleep")],
                    )
                ]
            },
        )
        assert run_cli("sandbox", "down").returncode == 0
        account = PipelineAccount(client.up({"dev": "111111111111"}))
        sm = account.client("sagemaker")
        assert sm.describe_pipeline_execution(PipelineExecutionArn=quick)["PipelineExecutionStatus"] == "Succeeded"
        assert account.steps(quick)["Noop"]["Metadata"]["Condition"]["Outcome"] == "True"
        cut = sm.describe_pipeline_execution(PipelineExecutionArn=long)
        assert cut["PipelineExecutionStatus"] == "Failed"
        assert cut["FailureReason"] == "the sandbox server stopped while this execution ran"
    finally:
        client.down(save=False)


def test_an_input_the_role_may_not_read_fails_the_step_before_it_runs(account, double):
    """Each instance downloads its inputs as the execution role: an object the role may not get (no
    s3:GetObject on it), or one encrypted under a KMS key the role may not decrypt with, fails the step with
    S3's AccessDenied and the script never runs, as a Processing job on AWS fails with ClientError when it
    cannot download an input (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html: reading an SSE-KMS
    object needs kms:Decrypt)."""
    key = account.client("kms").create_key(Description="inputs")["KeyMetadata"]["Arn"]
    account.client("s3").put_object(
        Bucket=BUCKET, Key="data/n.txt", Body=b"21", ServerSideEncryption="aws:kms", SSEKMSKeyId=key
    )
    described, steps = account.run("no-decrypt", gated_pipeline(double))
    assert described["PipelineExecutionStatus"] == "Failed"
    reason = steps["Double"]["FailureReason"]
    assert "AccessDenied" in reason and "GetObject" in reason, reason  # the role may get the object: the key refused

    account.put("data/n.txt", "21")  # readable again: now take s3:GetObject on data/ away
    policy = json.loads(json.dumps(EXECUTION_POLICY))
    policy["Statement"][0]["Resource"] = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/code/*"]
    policy["Statement"].append(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/runs/*"}
    )
    account.client("iam").put_role_policy(
        RoleName=ROLE_NAME, PolicyName="engine-test", PolicyDocument=json.dumps(policy)
    )
    described, steps = account.run("no-get", gated_pipeline(double))
    assert described["PipelineExecutionStatus"] == "Failed"
    reason = steps["Double"]["FailureReason"]
    assert "AccessDenied" in reason and "GetObject" in reason, reason
    assert not account.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount")


HASHES = """
import hashlib, json, pathlib, sys
source, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(source.iterdir())}
(out / 'digests.json').write_text(json.dumps(digests))
"""


def test_a_job_sees_its_inputs_byte_for_byte_small_and_large(account):
    """What an instance downloads is the object, byte for byte: a small one moto keeps in memory, a large
    one it keeps on disk (the engine copies the latter file to file once S3 has authorised the GetObject),
    an empty one, and after the large one is overwritten, the new bytes."""
    import hashlib
    import os

    bodies = {"small.bin": os.urandom(1000), "large.bin": os.urandom(6 * 1024 * 1024 + 3), "empty.bin": b""}
    for name, body in bodies.items():
        account.put(f"sizes/input/{name}", body)
    step = processing_step(
        "Hash",
        account.put_script("hashes.py", HASHES),
        "hashes.py",
        inputs=[("data", f"s3://{BUCKET}/sizes/input")],
        outputs=[("digests", f"s3://{BUCKET}/sizes/out")],
        arguments=["/opt/ml/processing/input/data", "/opt/ml/processing/output/digests"],
    )
    for attempt in range(2):
        described, steps = account.run(f"input-sizes-{attempt}", {"Steps": [step]})
        assert described["PipelineExecutionStatus"] == "Succeeded", steps
        seen = json.loads(account.read(f"s3://{BUCKET}/sizes/out/digests.json"))
        assert seen == {name: hashlib.sha256(body).hexdigest() for name, body in bodies.items()}
        bodies["large.bin"] = os.urandom(7 * 1024 * 1024)  # replaced: the next run must see these bytes
        account.put("sizes/input/large.bin", bodies["large.bin"])
