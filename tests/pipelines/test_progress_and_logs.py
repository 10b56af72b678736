"""Following an execution and reading its logs through plain DescribePipelineExecution,
ListPipelineExecutionSteps and CloudWatch Logs, as `run-pipeline --wait` and `run-pipeline logs` do."""

import io

import pytest

from pipelines.progress import follow_execution
from tests.conftest import run_cli
from tests.sandbox.pipeline_account import processing_step

PREPARE = "print('reading batch'); print('rows: 120')"
DRIFT = """
import sys
for i in range(30):
    print(f'feature_{i}: ok')
print('feature_31: mean shifted by 4.2 sd', flush=True)
sys.exit('DataDriftDetected: 1 of 32 features drifted beyond 0.25')
"""


@pytest.fixture
def drifted(account):
    prepare = account.put_script("prepare.py", PREPARE)
    drift = account.put_script("drift.py", DRIFT)
    definition = {
        "Steps": [
            processing_step("Prepare", prepare, "prepare.py"),
            processing_step("DriftCheck", drift, "drift.py", depends_on=["Prepare"]),
        ]
    }
    return account.start("inference", definition)


def test_follow_prints_step_changes_and_on_failure_the_reason_and_last_log_lines(account, drifted):
    out = io.StringIO()
    status = follow_execution(
        account.client("sagemaker"), drifted, out=out, poll=0.2, logs_client=account.client("logs"), tail=5
    )
    text = out.getvalue()
    assert status == "Failed"
    assert "Prepare" in text and "Succeeded" in text
    assert "step DriftCheck failed: AlgorithmError: DataDriftDetected: 1 of 32 features drifted beyond 0.25" in text
    tail = [line for line in text.splitlines() if line.startswith("  | ")]
    assert len(tail) == 5
    assert tail[-2] == "  | feature_31: mean shifted by 4.2 sd"
    assert "feature_0: ok" not in text  # only the last lines


def test_follow_a_green_execution_ends_with_its_summary(account):
    ok = account.put_script("prepare.py", PREPARE)
    arn = account.start("quick", {"Steps": [processing_step("Prepare", ok, "prepare.py")]})
    out = io.StringIO()
    assert follow_execution(account.client("sagemaker"), arn, out=out, poll=0.2) == "Succeeded"
    summary = out.getvalue().split("\n\n", 1)[1]
    assert "STEP" in summary and "Prepare" in summary and "ProcessingJob: pipelines-" in summary
    assert "execution Succeeded in " in summary and arn in summary


def test_run_pipeline_logs_shows_each_step_or_one(account, drifted):
    account.wait(drifted)
    result = run_cli("run-pipeline", "logs", drifted, "--env", "dev")
    assert result.returncode == 0, result.stderr
    assert "== Prepare (Succeeded)  /aws/sagemaker/ProcessingJobs/pipelines-" in result.stdout
    assert "rows: 120" in result.stdout and "DataDriftDetected" in result.stdout

    one = run_cli("run-pipeline", "logs", drifted, "--env", "dev", "--step", "DriftCheck")
    assert "rows: 120" not in one.stdout and "feature_31: mean shifted" in one.stdout

    wrong = run_cli("run-pipeline", "logs", drifted, "--env", "dev", "--step", "Drift")
    assert wrong.returncode == 2
    assert "no step named 'Drift' (steps: Prepare, DriftCheck)" in wrong.stderr


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_table_redraws_in_place(account):
    pause = account.put_script("pause.py", "import time; time.sleep(1)")
    arn = account.start(
        "paused",
        {
            "Steps": [
                processing_step("Pause", pause, "pause.py"),
                {
                    "Name": "Gate",
                    "Type": "Condition",
                    "DependsOn": ["Pause"],
                    "Arguments": {"Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 2}]},
                },
            ]
        },
    )
    out = Terminal()
    assert follow_execution(account.client("sagemaker"), arn, out=out, poll=0.1) == "Succeeded"
    text = out.getvalue()
    frames = text.count("\nexecution: ")
    assert frames > 2 and text.count("F\x1b[J") == frames - 1  # every frame after the first rewinds
    assert "outcome False" in text.rsplit("STEP", 1)[1] and "execution Succeeded in" in text


def test_a_job_on_sixty_instances_shows_every_instance_log(account):
    """DescribeLogStreams answers at most 50 streams a page (as AWS does): a Processing job on 60
    instances writes one stream each, and every one of them is read."""
    from pipelines.logs import _job_streams

    logs = account.client("logs")
    group = "/aws/sagemaker/ProcessingJobs"
    logs.create_log_group(logGroupName=group)
    for n in range(1, 61):
        logs.create_log_stream(logGroupName=group, logStreamName=f"drift-check-job/algo-{n}-1700000000")
    assert len(logs.describe_log_streams(logGroupName=group)["logStreams"]) == 50
    streams = _job_streams(logs, group, "drift-check-job", "abc123")
    assert streams == sorted(f"drift-check-job/algo-{n}-1700000000" for n in range(1, 61))
