"""Operating loop: reading a dataset of parts, and how fast an arrival starts a pipeline.

1. Preprocess (the real step script) on N rows (default 1,000,000) as one CSV file and as the same rows
   in 10 parts: wall time and peak RSS of each, each in its own process, against pandas.read_csv of the
   single file measured in the same run (goal: parts within 1.2x of one file; memory flat).
2. On the sandbox: the delay from a delivery marker's upload (PutObject returned) to the execution it
   starts being visible (S3 event -> EventBridge rule -> arrival function -> StartPipelineExecution),
   median and worst of several deliveries (goal: under 2 s).

    python bench/dataloop.py [--rows N] [--deliveries K]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "pipelines" / "steps"
FEATURES = 12

_MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {steps!r})
{setup}
started = time.perf_counter()
{body}
print(json.dumps({{"seconds": time.perf_counter() - started,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _measure(setup: str, body: str) -> dict:
    """Wall time of `body` (after `setup`, the imports) and the process's peak RSS."""
    code = _MEASURE.format(steps=str(STEPS), setup=setup, body=body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_data(directory: Path, rows: int, parts: int) -> tuple[Path, Path]:
    """One CSV of `rows` rows and the same rows split into `parts` files under a folder."""
    import numpy as np

    rng = np.random.default_rng(7)
    header = ",".join([*(f"f{i}" for i in range(FEATURES)), "diagnosis"]) + "\n"
    single, folder = directory / "all.csv", directory / "parts"
    folder.mkdir()
    per_part = -(-rows // parts)
    with open(single, "w") as whole:
        whole.write(header)
        for p in range(parts):
            n = min(per_part, rows - p * per_part)
            features = rng.normal(10, 3, size=(n, FEATURES)).round(4)
            labels = (features[:, 0] + rng.normal(0, 2, n) > 10).astype(int)
            buffer = io.StringIO()
            np.savetxt(buffer, np.column_stack([features, labels]), delimiter=",", fmt=["%.4f"] * FEATURES + ["%d"])
            text = buffer.getvalue()
            whole.write(text)
            (folder / f"part-{p:04d}.csv").write_text(header + text)
    return single, folder


def preprocess_argv(source: Path, out: Path) -> list[str]:
    argv = ["--input", str(source), "--failure-file", str(out / "message")]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(out / d)]
    return argv


def bench_parts(rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dataloop-") as tmp:
        tmp = Path(tmp)
        single, folder = write_data(tmp, rows, 10)
        raw = _measure("import pandas as pd", f"pd.read_csv({str(single)!r})")
        results = {"raw read_csv": raw}
        for name, source in (("preprocess, 1 file", single), ("preprocess, 10 parts", folder)):
            out = tmp / name.replace(" ", "_").replace(",", "")
            setup = "import pandas, sklearn.model_selection, preprocess"
            results[name] = _measure(setup, f"preprocess.main({preprocess_argv(source, out)!r})")
            report = json.loads((out / "report" / "preprocess.json").read_text())
            results[name]["rows"] = report["dataset"]["rows"]
            results[name]["parts"] = len(report["dataset"]["parts"])
        return results


# -- the arrival delay on the sandbox ---------------------------------------------------------------
QUICK = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "DeliveryUri", "Type": "String", "DefaultValue": "none"}],
    "Steps": [
        {
            "Name": "Noop",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [{"Type": "Equals", "LeftValue": "a", "RightValue": "b"}],
                "IfSteps": [],
                "ElseSteps": [],
            },
        }
    ],
}


def _trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def bench_arrival(deliveries: int) -> list[float]:
    os.environ["MLOPS_SANDBOX_HOME"] = tempfile.mkdtemp(prefix="bench-dataloop-home-")
    from mlops_core.config import load_environment
    from mlops_core.session import Sessions
    from pipelines.definitions import ARRIVAL_SOURCE
    from sandbox import client

    env = load_environment("dev", env_dir=REPO / "environments")
    account, region, bucket = env.account_id, env.region, "bench-deliveries"
    delays = []
    try:
        client.up(env.sandbox_accounts)
        sessions = Sessions(env)
        s3, iam, lam, events, sm = (sessions.client(n) for n in ("s3", "iam", "lambda", "events", "sagemaker"))
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        iam.create_role(RoleName="bench-pipeline", AssumeRolePolicyDocument=_trust("sagemaker.amazonaws.com"))
        sm.create_pipeline(
            PipelineName="bench-train",
            RoleArn=f"arn:aws:iam::{account}:role/bench-pipeline",
            PipelineDefinition=json.dumps(QUICK),
        )
        iam.create_role(RoleName="bench-arrival", AssumeRolePolicyDocument=_trust("lambda.amazonaws.com"))
        iam.put_role_policy(
            RoleName="bench-arrival",
            PolicyName="start",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sagemaker:StartPipelineExecution",
                            "Resource": f"arn:aws:sagemaker:{region}:{account}:pipeline/bench-train",
                        }
                    ],
                }
            ),
        )
        raw = io.BytesIO()
        with zipfile.ZipFile(raw, "w") as archive:
            archive.writestr("start_on_arrival.py", ARRIVAL_SOURCE.read_bytes())
        function = lam.create_function(
            FunctionName="bench-start-on-arrival",
            Role=f"arn:aws:iam::{account}:role/bench-arrival",
            Handler="start_on_arrival.handler",
            Runtime="python3.12",
            Code={"ZipFile": raw.getvalue()},
            Timeout=30,  # as pipelines.definitions.arrival_function deploys it
        )["FunctionArn"]
        # what mlops-infra/modules/arrivals creates for a training-delivery trigger
        rule = events.put_rule(
            Name="bench-training-delivery",
            EventPattern=json.dumps(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"wildcard": "training/*/_SUCCESS"}]}},
                }
            ),
        )["RuleArn"]
        events.put_targets(
            Rule="bench-training-delivery",
            Targets=[
                {
                    "Id": "start",
                    "Arn": function,
                    "InputTransformer": {
                        "InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key", "id": "$.id"},
                        "InputTemplate": '{"pipeline": "bench-train", "parameter": "DeliveryUri", "bucket": <bucket>, '
                        '"key": <key>, "event_id": <id>}',
                    },
                }
            ],
        )
        lam.add_permission(
            FunctionName="bench-start-on-arrival",
            StatementId="rule",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule,
        )
        for i in range(deliveries):
            for p in range(3):
                s3.put_object(Bucket=bucket, Key=f"training/delivery-{i}/part-{p}.csv", Body=b"a,b\n1,2\n")
            before = len(sm.list_pipeline_executions(PipelineName="bench-train")["PipelineExecutionSummaries"])
            s3.put_object(Bucket=bucket, Key=f"training/delivery-{i}/_SUCCESS", Body=b"")
            uploaded = time.perf_counter()
            while True:
                runs = sm.list_pipeline_executions(PipelineName="bench-train")["PipelineExecutionSummaries"]
                if len(runs) > before:
                    delays.append(time.perf_counter() - uploaded)
                    break
                if time.perf_counter() - uploaded > 30:
                    raise SystemExit(f"delivery {i}: no execution within 30 s")
                time.sleep(0.02)
        runs = sm.list_pipeline_executions(PipelineName="bench-train")["PipelineExecutionSummaries"]
        if len(runs) != deliveries:
            raise SystemExit(f"{deliveries} deliveries started {len(runs)} executions (expected one each)")
    except SystemExit:
        print(json.dumps(client.call("events", {})["deliveries"][-4:], indent=1), file=sys.stderr)
        raise
    finally:
        client.down(save=False)
        shutil.rmtree(os.environ["MLOPS_SANDBOX_HOME"], ignore_errors=True)  # its journal holds every byte written
    return delays


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=5)
    args = parser.parse_args(argv)

    results = bench_parts(args.rows)
    raw = results["raw read_csv"]
    one, ten = results["preprocess, 1 file"], results["preprocess, 10 parts"]
    print(
        f"dataset of parts ({args.rows:,} rows, {FEATURES} features + target; one process each, {os.cpu_count()} cores)"
    )
    print(f"  {'':<24}{'wall s':>8}{'peak MiB':>10}{'x read_csv time':>17}{'x read_csv RSS':>16}")
    for name, r in results.items():
        print(
            f"  {name:<24}{r['seconds']:8.2f}{r['peak_mib']:10.0f}"
            f"{r['seconds'] / raw['seconds']:17.2f}{r['peak_mib'] / raw['peak_mib']:16.2f}"
        )
    time_ratio, rss_ratio = ten["seconds"] / one["seconds"], ten["peak_mib"] / one["peak_mib"]
    print(
        f"  10 parts vs 1 file: {time_ratio:.2f}x wall time, {rss_ratio:.2f}x peak RSS "
        f"(goal <= 1.2x; rows read {ten['rows']:,} in {ten['parts']} parts vs {one['rows']:,} in {one['parts']})"
    )

    first, *rest = bench_arrival(args.deliveries)
    rest = sorted(rest) or [first]
    print(f"\narrival trigger on the sandbox ({args.deliveries} deliveries of 3 parts + _SUCCESS, one run each)")
    print(
        f"  marker uploaded -> execution started: median {rest[len(rest) // 2]:.2f} s, worst {rest[-1]:.2f} s "
        f"(goal < 2 s); first delivery {first:.2f} s (starts the sandbox's pre-forked Python once per server)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
