"""Sandbox engine: wall time of one train pipeline execution (the real definition, bootstrapped dev and
registry accounts), per step, and the share of it spent starting Python and importing modules
versus doing the step's work. One run; prints figures and ratios measured in it.

Import time comes from the step processes themselves: the bench starts its own sandbox with
PYTHONPROFILEIMPORTTIME=1, which every step subprocess inherits and reports in its log stream.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def bare_interpreter_seconds(runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def import_seconds(lines: list[str]) -> float:
    """Sum of the cumulative time of top-level imports (one leading space in -X importtime output)."""
    total = 0
    for line in lines:
        m = IMPORT_LINE.match(line)
        if m and len(m.group(3)) == 1:
            total += int(m.group(2))
    return total / 1e6


def upsert(sessions, env, spec) -> None:
    s3, sm = sessions.client("s3"), sessions.client("sagemaker")
    for upload in spec.uploads:
        s3.put_object(
            Bucket=upload.bucket,
            Key=upload.key,
            Body=upload.body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=env.kms_key_alias,
        )
    sm.create_pipeline(PipelineName=spec.name, PipelineDefinition=spec.definition, RoleArn=spec.role_arn)


def main() -> int:
    home = tempfile.mkdtemp(prefix="bench-engine-")
    os.environ["MLOPS_SANDBOX_HOME"] = home
    os.environ["PYTHONPROFILEIMPORTTIME"] = "1"  # inherited by the server, hence by every step process
    from mlops_core.config import load_environment
    from sandbox import client

    env = load_environment("dev", env_dir=REPO / "environments")
    try:
        started = time.perf_counter()
        client.up(env.sandbox_accounts)
        os.environ.pop("PYTHONPROFILEIMPORTTIME")
        up = time.perf_counter() - started

        started = time.perf_counter()
        for account in ("dev", "registry"):
            subprocess.run(
                [str(BIN / "bootstrap-account"), "--env", "dev", "--account", account, "--apply"],
                check=True,
                capture_output=True,
                cwd=REPO,
            )
        bootstrap = time.perf_counter() - started

        started = time.perf_counter()
        from pipelines.definitions import build_pipelines

        spec = build_pipelines(env, "train")["train"]
        build = time.perf_counter() - started

        from mlops_core.session import Sessions
        from pipelines.logs import step_logs

        sessions = Sessions(env)
        upsert(sessions, env, spec)
        sm, logs = sessions.client("sagemaker"), sessions.client("logs")

        def execute():
            started = time.perf_counter()
            arn = sm.start_pipeline_execution(PipelineName=spec.name)["PipelineExecutionArn"]
            while sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing":
                time.sleep(0.1)
            status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
            return arn, time.perf_counter() - started, status

        # the first execution also waits for the step zygote to import the libraries (once per server)
        _, first, first_status = execute()
        arn, execution, status = execute()

        bare = bare_interpreter_seconds()
        rows, total_startup = [], 0.0
        for log in step_logs(sm, logs, arn):
            step = next(
                s
                for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
                if s["StepName"] == log.step
            )
            wall = (step["EndTime"] - step["StartTime"]).total_seconds()
            startup = (bare + import_seconds(log.lines)) if log.streams else 0.0
            total_startup += startup
            rows.append((log.step, wall, startup))
    finally:
        client.down(save=False)
        shutil.rmtree(home, ignore_errors=True)  # its journal holds every byte written

    print(f"sandbox engine bench (one run, {os.cpu_count()} cores)")
    print(f"  sandbox up                         {up:6.2f} s")
    print(f"  bootstrap dev + registry (CLI)     {bootstrap:6.2f} s")
    print(f"  build train definition (SDK)       {build:6.2f} s")
    print(f"  train pipeline, first execution    {first:6.2f} s  ({first_status}; includes the step zygote's imports)")
    print(f"  train pipeline execution           {execution:6.2f} s  ({status}; goal < 20 s; the one detailed below)")
    print(f"\n  {'step':<24}{'wall s':>8}{'python start+imports s':>24}{'work s':>9}{'start share':>13}")
    for name, wall, startup in rows:
        share = f"{startup / wall:12.0%}" if wall > 0 and startup else f"{'-':>12}"
        print(f"  {name:<24}{wall:8.2f}{startup:24.2f}{max(wall - startup, 0):9.2f} {share}")
    print(
        f"\n  python start-up + imports: {total_startup:.2f} s of {execution:.2f} s "
        f"({total_startup / execution:.0%}); bare interpreter start {bare * 1000:.0f} ms per process"
    )
    return 0 if status == first_status == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
