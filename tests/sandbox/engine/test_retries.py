"""Step retry policies as SageMaker Pipelines applies them, driven by faults injected with `sandbox fault`,
and `run-pipeline retry` resuming a failed execution from its failed step.

AWS: https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html (exception types;
MaxAttempts retries, the first after IntervalSeconds, each next one BackoffRate times longer),
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionStep.html (AttemptCount),
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_RetryPipelineExecution.html.
Differs: AWS retries Step.SERVICE_FAULT/THROTTLING a few times even without a policy; the sandbox retries
only what a policy names. AWS shows only AttemptCount; the sandbox also keeps each attempt
(`sandbox attempts`)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.conftest import run_cli
from tests.sandbox.engine.test_step_types import sourcedir, training_args
from tests.sandbox.pipeline_account import processing_step

SERVICE = ["Step.SERVICE_FAULT", "Step.THROTTLING"]
JOBS = ["SageMaker.RESOURCE_LIMIT", "SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR"]


def fault(pipeline, step, error, times):
    result = run_cli(
        "sandbox", "fault", "--pipeline", pipeline, "--step", step, "--error", error, "--times", str(times)
    )
    assert result.returncode == 0, result.stderr


def pending_faults():
    result = run_cli("sandbox", "fault", "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def attempts(arn, step):
    result = run_cli("sandbox", "attempts", arn, "--output", "json")
    assert result.returncode == 0, result.stderr
    return next(s for s in json.loads(result.stdout)["steps"] if s["StepName"] == step)["Attempts"]


def _gap(earlier: dict, later: dict) -> float:
    return (datetime.fromisoformat(later["StartTime"]) - datetime.fromisoformat(earlier["EndTime"])).total_seconds()


@pytest.fixture
def train(account):
    account.put("train/train.csv", "1\n2\n3\n")
    return {"Name": "Train", "Type": "Training", "Arguments": training_args(sourcedir(account))}


def test_injected_double_throttle_on_train_succeeds_on_the_third_attempt_with_the_intervals_recorded(account, train):
    train["RetryPolicies"] = [{"ExceptionType": SERVICE, "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2}]
    fault("retry-throttle", "Train", "ThrottlingException", 2)
    arn = account.start("retry-throttle", {"Parameters": [], "Steps": [train]})
    described = account.wait(arn)
    step = account.steps(arn)["Train"]
    assert described["PipelineExecutionStatus"] == "Succeeded"
    assert step["StepStatus"] == "Succeeded" and step["AttemptCount"] == 3
    assert step["Metadata"]["TrainingJob"]["Arn"]
    tries = attempts(arn, "Train")
    assert [t["StepStatus"] for t in tries] == ["Failed", "Failed", "Succeeded"]
    for t in tries[:2]:
        assert t["ExceptionType"] == "Step.THROTTLING"
        assert t["FailureReason"] == (
            "ClientError: An error occurred (ThrottlingException) when calling the CreateTrainingJob operation: "
            "Rate exceeded"
        )
    assert [t.get("RetryAfterSeconds") for t in tries] == [1.0, 2.0, None]  # IntervalSeconds, then x BackoffRate
    assert _gap(tries[0], tries[1]) >= 1.0 and _gap(tries[1], tries[2]) >= 2.0
    assert pending_faults() == []  # a fault is cleared once used


@pytest.mark.parametrize(
    "error, times, policies, attempts_made, status",
    [
        # more throttles than MaxAttempts: the first attempt and two retries, then the step fails
        ("ThrottlingException", 3, [{"ExceptionType": SERVICE, "IntervalSeconds": 1, "MaxAttempts": 2}], 3, "Failed"),
        # a capacity error is a job failure: only a policy naming SageMaker.CAPACITY_ERROR retries it
        ("CapacityError", 1, [{"ExceptionType": SERVICE, "IntervalSeconds": 1, "MaxAttempts": 5}], 1, "Failed"),
        ("CapacityError", 1, [{"ExceptionType": JOBS, "IntervalSeconds": 1, "MaxAttempts": 1}], 2, "Succeeded"),
        # an error no exception type covers is never retried
        ("ValidationException", 1, [{"ExceptionType": SERVICE + JOBS, "MaxAttempts": 5}], 1, "Failed"),
    ],
)
def test_only_the_exception_types_a_policy_names_are_retried_at_most_max_attempts_times(
    account, error, times, policies, attempts_made, status
):
    script = account.put_script("ok.py", "print('ok')\n")
    step = processing_step("Work", script.rsplit("/", 1)[0] + "/", "ok.py")
    step["RetryPolicies"] = policies
    fault("retry-kinds", "Work", error, times)
    described, steps = account.run("retry-kinds", {"Parameters": [], "Steps": [step]})
    assert steps["Work"]["AttemptCount"] == attempts_made
    assert described["PipelineExecutionStatus"] == status
    if status == "Failed":
        assert error in steps["Work"]["FailureReason"]


def test_sandbox_fault_rejects_bad_input_in_one_line():
    result = run_cli("sandbox", "fault", "--pipeline", "p", "--step", "S", "--times", "0")
    assert result.returncode == 2 and result.stderr.strip() == "error: --times: 0 is not a whole number of at least 1"
    result = run_cli("sandbox", "fault", "--pipeline", "p")
    assert (
        result.returncode == 2 and result.stderr.strip() == "error: --pipeline/--step: give both --pipeline and --step"
    )


def test_run_pipeline_retry_finishes_a_failed_execution_from_its_failed_step(account, dev_env):
    first = account.put_script("first.py", "print('first ran')\n")
    second = account.put_script("second.py", "print('second ran')\n")
    steps = [
        processing_step("First", first.rsplit("/", 1)[0] + "/", "first.py"),
        processing_step("Second", second.rsplit("/", 1)[0] + "/", "second.py", depends_on=["First"]),
    ]
    pipeline = dev_env.pipelines["train"]  # the dev environment's account is the engine tests' account
    fault(pipeline, "Second", "ValidationException", 1)  # no policy: the execution fails
    arn = account.start(pipeline, {"Parameters": [], "Steps": steps})
    assert account.wait(arn)["PipelineExecutionStatus"] == "Failed"
    before = account.steps(arn)
    assert before["Second"]["StepStatus"] == "Failed"

    result = run_cli("run-pipeline", "retry", "--env", "dev", "--pipeline", "train", "--output", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"execution_arn": arn, "failed_steps": ["Second"], "status": "Succeeded"}
    after = account.steps(arn)
    assert after["Second"]["StepStatus"] == "Succeeded"
    assert after["First"]["StartTime"] == before["First"]["StartTime"]  # not run again

    again = run_cli("run-pipeline", "retry", "--env", "dev", arn)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].endswith(f"{arn} is Succeeded: only a Failed execution can be retried")


def test_the_pipelines_parallelism_configuration_bounds_the_steps_running_at_once(account):
    """ParallelismConfiguration given at CreatePipeline applies to every execution that does not override
    it (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ParallelismConfiguration.html)."""
    script = "import sys, time\ntime.sleep(float(sys.argv[1]))\n"
    code = account.put_script("nap.py", script).rsplit("/", 1)[0] + "/"
    steps = [processing_step(name, code, "nap.py", arguments=["1.0"]) for name in ("A", "B")]
    body = json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": [], "Steps": steps})
    sm = account.client("sagemaker")
    sm.create_pipeline(
        PipelineName="one-at-a-time",
        PipelineDefinition=body,
        RoleArn=steps[0]["Arguments"]["RoleArn"],
        ParallelismConfiguration={"MaxParallelExecutionSteps": 1},
    )
    arn = sm.start_pipeline_execution(PipelineName="one-at-a-time")["PipelineExecutionArn"]
    assert account.wait(arn)["PipelineExecutionStatus"] == "Succeeded"
    a, b = (account.steps(arn)[n] for n in ("A", "B"))
    first, second = sorted((a, b), key=lambda s: s["StartTime"])
    assert second["StartTime"] >= first["EndTime"], "two steps ran at once under MaxParallelExecutionSteps=1"
