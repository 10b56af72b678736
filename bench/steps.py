"""Bench: the pipeline step scripts on synthetic data (30 numeric features, binary target).

Prints wall time and peak memory (max RSS of a fresh process per step) for preprocess + train +
evaluate at 100k and 1M rows, the drift check at 100k and 1M batch rows (goal: memory flat as rows
grow: it reads in chunks), and batch prediction through the inference handler against raw xgboost
predict on the same 1M-row matrix (goal: within 2x). Then, on the sandbox, a 2-instance drift check
(shards + merge) and a 2-instance transform against 1 instance on the same objects (goal: >= 1.6x on 2
cores, equal results). Every figure is measured in this run.

    python bench/steps.py [--rows 100000,1000000] [--batch-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "pipelines" / "steps"
FEATURES = 30


def synthetic(path: Path, rows: int, seed: int, with_target: bool, shift: float = 0.0) -> None:
    """A CSV like the user would bring: header, 30 numeric features, a 0/1 target from a noisy linear score."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(7).normal(size=FEATURES)
    written = 0
    with open(path, "w") as handle:
        while written < rows:
            n = min(250_000, rows - written)
            x = rng.normal(size=(n, FEATURES)).astype(np.float32) + shift
            columns = [f"feature_{i:02d}" for i in range(FEATURES)]
            if with_target:
                score = x @ weights + rng.normal(scale=2.0, size=n)
                x = np.column_stack([x, (score > 0)])
                columns.append("target")
            if written == 0:
                handle.write(",".join(columns) + "\n")
            # numpy's writer: several times faster than DataFrame.to_csv on this machine
            np.savetxt(handle, x, delimiter=",", fmt=["%.5f"] * FEATURES + (["%d"] if with_target else []))
            written += n


def child(script: str, argv: list[str], report: str) -> None:
    """Run one step script as its own process and report its wall time and peak RSS."""
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).parent))
    started = time.perf_counter()
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code or 0
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(report).write_text(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_mib": peak_rss_mib(),
                "exit": code,
            }
        )
    )


def peak_rss_mib() -> float:
    """This process's own peak RSS. Not ru_maxrss: Linux carries the forking parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(script: str, *argv: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as report:
        path = report.name
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(STEPS / script), path, "--", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    data = json.loads(Path(path).read_text()) if Path(path).stat().st_size else {}
    os.unlink(path)
    if result.returncode != 0 or data.get("exit"):
        raise SystemExit(f"{script} failed: {result.stderr.strip().splitlines()[-1:]}")
    return data


def train_chain(work: Path, rows: int) -> dict:
    data = work / f"train-{rows}.csv"
    synthetic(data, rows, seed=1, with_target=True)
    out = work / f"run-{rows}"
    args = ["--input", str(data), "--target", "target"]
    for d in ("train", "validation", "test", "baseline", "report"):
        args += [f"--{d}-dir", str(out / d)]
    figures = {"preprocess": run_step("preprocess.py", *args)}
    figures["train"] = run_step(
        "train.py",
        "--train",
        str(out / "train"),
        "--validation",
        str(out / "validation"),
        "--model-dir",
        str(out / "model"),
    )
    figures["evaluate"] = run_step(
        "evaluate.py", "--model", str(out / "model"), "--test", str(out / "test"), "--output", str(out / "evaluation")
    )
    figures["auc"] = json.loads((out / "evaluation" / "evaluation.json").read_text())["binary_classification_metrics"][
        "auc"
    ]["value"]
    figures["out"] = out
    return figures


def prediction_compare(model_dir: Path, batch: Path, report: str) -> None:
    """In one process: the handler on the CSV body vs raw predict on the matrix the handler built."""
    import numpy as np
    import xgboost as xgb

    sys.path.insert(0, str(STEPS))
    import inference

    model = inference.model_fn(str(model_dir))
    body = batch.read_bytes()
    timings = {}
    started = time.perf_counter()
    frame = inference.input_fn(body, "text/csv")
    timings["parse_csv"] = time.perf_counter() - started
    predict_runs = []
    for _ in range(3):  # best of three, like the raw reference below
        started = time.perf_counter()
        prediction = inference.predict_fn(frame, model)
        predict_runs.append(time.perf_counter() - started)
    timings["predict_fn"] = min(predict_runs)
    started = time.perf_counter()
    text = inference.output_fn(prediction, "text/csv")
    timings["format_output"] = time.perf_counter() - started
    timings["handler_total"] = timings["parse_csv"] + timings["predict_fn"] + timings["format_output"]

    matrix = model.transform.matrix(frame)
    dmatrix_runs, inplace_runs = [], []
    for _ in range(3):  # best of three: the reference should not be penalised by noise
        started = time.perf_counter()
        values = model.booster.predict(xgb.DMatrix(matrix, feature_names=model.transform.encoded_columns))
        dmatrix_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.booster.inplace_predict(matrix, validate_features=False)
        inplace_runs.append(time.perf_counter() - started)
    timings["raw_predict_dmatrix"] = min(dmatrix_runs)
    timings["raw_predict_inplace"] = min(inplace_runs)
    # The reference is the faster of the two ways to call xgboost on the ready matrix.
    timings["raw_predict"] = min(timings["raw_predict_dmatrix"], timings["raw_predict_inplace"])
    assert np.allclose(values, prediction[0], atol=1e-6), "the handler must predict what raw xgboost predicts"
    timings["rows"] = len(values)
    timings["output_mib"] = len(text) / 2**20
    Path(report).write_text(json.dumps(timings))


# ---- scale-out on the sandbox: N Processing / Transform instances vs 1, same data -------------------
INSTANCE_BUCKET = "bench-instances"
INSTANCE_ROLE = "bench-instances-execution"


def _instances_account(status: dict, account_id: str):
    """A bucket and an execution role SageMaker may assume, in the sandbox account `account_id`."""
    account = next(a for a in status["accounts"] if a["account_id"] == account_id)
    import boto3
    from botocore.config import Config

    session = boto3.Session(region_name="us-east-1", **account["credentials"])

    def make(service):
        return session.client(service, endpoint_url=status["endpoint"], config=Config(retries={"max_attempts": 1}))

    role_arn = f"arn:aws:iam::{account['account_id']}:role/{INSTANCE_ROLE}"
    make("s3").create_bucket(Bucket=INSTANCE_BUCKET)
    iam = make("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName=INSTANCE_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{INSTANCE_BUCKET}", f"arn:aws:s3:::{INSTANCE_BUCKET}/*"],
            },
            {"Effect": "Allow", "Action": ["sagemaker:Create*", "sagemaker:Describe*"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arn},
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
        ],
    }
    iam.put_role_policy(RoleName=INSTANCE_ROLE, PolicyName="bench", PolicyDocument=json.dumps(policy))
    return make, role_arn


def _processing(name, role_arn, count, inputs, outputs, arguments):
    """A drift-check Processing step as the SDK writes it; `inputs`: (name, uri, local path, distribution)."""
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count, "VolumeSizeInGB": 30}
            },
            "AppSpecification": {
                "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/drift_check.py"],
                "ContainerArguments": arguments,
            },
            "RoleArn": role_arn,
            "ProcessingInputs": [
                {
                    "InputName": n,
                    "S3Input": {
                        "S3Uri": uri,
                        "LocalPath": local,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": distribution,
                    },
                }
                for n, uri, local, distribution in inputs
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {"OutputName": n, "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"}}
                    for n, uri, local in outputs
                ]
            },
        },
    }


def _drift_definition(role_arn: str, count: int, run: str) -> dict:
    """The drift check as pipelines/definitions.py builds it: one step, or N sharded instances + a merge."""
    s3 = f"s3://{INSTANCE_BUCKET}"
    common = [
        ("code", f"{s3}/code/", "/opt/ml/processing/input/code", "FullyReplicated"),
        ("statistics", f"{s3}/baseline/", "/opt/ml/processing/baseline/statistics", "FullyReplicated"),
        ("constraints", f"{s3}/baseline/", "/opt/ml/processing/baseline/constraints", "FullyReplicated"),
    ]
    batch = (
        "batch",
        f"{s3}/batch/",
        "/opt/ml/processing/input/data",
        "ShardedByS3Key" if count > 1 else "FullyReplicated",
    )
    options = [
        "--baseline-statistics",
        "/opt/ml/processing/baseline/statistics",
        "--baseline-constraints",
        "/opt/ml/processing/baseline/constraints",
        "--output",
        "/opt/ml/processing/output",
        "--failure-file",
        "/opt/ml/output/message",
    ]
    result = [("drift", f"{s3}/{run}/drift/", "/opt/ml/processing/output")]
    if count == 1:
        data = ["--input", "/opt/ml/processing/input/data"]
        return {"Steps": [_processing("Drift", role_arn, 1, [common[0], batch, *common[1:]], result, data + options)]}
    shards = _processing(
        "Drift",
        role_arn,
        count,
        [common[0], batch, *common[1:]],
        [("partials", f"{s3}/{run}/partials/", "/opt/ml/processing/partials")],
        [
            "--input",
            "/opt/ml/processing/input/data",
            *options,
            "--shard-output",
            "/opt/ml/processing/partials",
            "--resource-config",
            "/opt/ml/config/resourceconfig.json",
        ],
    )
    partials = (
        "partials",
        {"Get": "Steps.Drift.ProcessingOutputConfig.Outputs['partials'].S3Output.S3Uri"},
        "/opt/ml/processing/input/partials",
        "FullyReplicated",
    )
    merge = _processing(
        "DriftMerge",
        role_arn,
        1,
        [*common, partials],
        result,
        ["--merge-partials", "/opt/ml/processing/input/partials", *options],
    )
    return {"Steps": [shards, merge]}


def _transform_definition(count: int, run: str) -> dict:
    return {
        "Steps": [
            {
                "Name": "Transform",
                "Type": "Transform",
                "Arguments": {
                    "ModelName": "bench-instances-model",
                    "BatchStrategy": "MultiRecord",
                    "MaxPayloadInMB": 6,
                    "TransformInput": {
                        "DataSource": {
                            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{INSTANCE_BUCKET}/batch/"}
                        },
                        "ContentType": "text/csv",
                        "SplitType": "Line",
                    },
                    "TransformOutput": {
                        "S3OutputPath": f"s3://{INSTANCE_BUCKET}/{run}/predictions",
                        "Accept": "text/csv",
                        "AssembleWith": "Line",
                    },
                    "TransformResources": {"InstanceCount": count, "InstanceType": "ml.m5.large"},
                },
            }
        ]
    }


def _execute(sm, name: str, definition: dict, role_arn: str) -> float:
    """Create and run a pipeline once; its wall time from start to a terminal status."""
    body = json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": [], **definition})
    sm.create_pipeline(PipelineName=name, PipelineDefinition=body, RoleArn=role_arn)
    started = time.perf_counter()
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    while (status := sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]) in (
        "Executing",
        "Stopping",
    ):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if status != "Succeeded":
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        raise SystemExit(f"{name}: {status}: {[s.get('FailureReason') for s in steps if s.get('FailureReason')]}")
    return elapsed


def sandbox_instances(work: Path, baseline: Path, model_dir: Path, rows: int, objects: int, count: int) -> None:
    """A `count`-instance drift check (shards + merge) and transform on the sandbox against 1 instance, same
    data (`rows` batch rows as `objects` S3 objects): wall time of each pipeline execution, the ratio, and
    whether the results are equal (drift_check.json; every .out line for line)."""
    import io
    import tarfile

    os.environ["MLOPS_SANDBOX_HOME"] = tempfile.mkdtemp(prefix="bench-instances-")
    from sandbox import client

    print(f"\nscale-out on the sandbox: {count} instances vs 1, {rows} batch rows in {objects} objects")
    batch = work / "instances-batch.csv"
    synthetic(batch, rows, seed=3, with_target=False, shift=0.3)
    lines = batch.read_bytes().split(b"\n")
    header, body = lines[0] + b"\n", [line + b"\n" for line in lines[1:] if line]
    per = -(-len(body) // objects)
    status = client.up({"bench": "111111111111"})
    try:
        make, role_arn = _instances_account(status, "111111111111")
        s3, sm = make("s3"), make("sagemaker")
        for k in range(objects):
            part = header + b"".join(body[k * per : (k + 1) * per])
            s3.put_object(Bucket=INSTANCE_BUCKET, Key=f"batch/part-{k:02d}.csv", Body=part)
        for path in sorted(baseline.iterdir()):
            s3.put_object(Bucket=INSTANCE_BUCKET, Key=f"baseline/{path.name}", Body=path.read_bytes())
        for path in sorted(STEPS.glob("*.py")):
            s3.put_object(Bucket=INSTANCE_BUCKET, Key=f"code/{path.name}", Body=path.read_bytes())

        def tarball(paths) -> bytes:
            raw = io.BytesIO()
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for p in paths:
                    tar.add(p, arcname=p.name)
            return raw.getvalue()

        s3.put_object(Bucket=INSTANCE_BUCKET, Key="model/model.tar.gz", Body=tarball(sorted(model_dir.iterdir())))
        s3.put_object(Bucket=INSTANCE_BUCKET, Key="model/sourcedir.tar.gz", Body=tarball(sorted(STEPS.glob("*.py"))))
        sm.create_model(
            ModelName="bench-instances-model",
            ExecutionRoleArn=role_arn,
            PrimaryContainer={
                "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                "ModelDataUrl": f"s3://{INSTANCE_BUCKET}/model/model.tar.gz",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{INSTANCE_BUCKET}/model/sourcedir.tar.gz",
                },
            },
        )
        # warm-up: the step zygote imports the libraries once per server; neither side should pay for it
        _execute(sm, "warm-up", _drift_definition(role_arn, 1, "warm-up"), role_arn)

        def read(key: str) -> bytes:
            return s3.get_object(Bucket=INSTANCE_BUCKET, Key=key)["Body"].read()

        print(f"  {'job':<10}{'1 instance s':>14}{f'{count} instances s':>16}{'speed-up':>10}  equal results")
        one = _execute(sm, "drift-1", _drift_definition(role_arn, 1, "drift-1"), role_arn)
        many = _execute(sm, f"drift-{count}", _drift_definition(role_arn, count, f"drift-{count}"), role_arn)
        results = [json.loads(read(f"drift-{n}/drift/drift_check.json")) for n in (1, count)]
        verdict = f"{results[0]['violation_count']} violation(s)"
        print(f"  {'drift':<10}{one:>14.2f}{many:>16.2f}{one / many:>9.2f}x  {results[0] == results[1]} ({verdict})")
        one = _execute(sm, "transform-1", _transform_definition(1, "transform-1"), role_arn)
        many = _execute(sm, f"transform-{count}", _transform_definition(count, f"transform-{count}"), role_arn)
        same = all(
            read(f"transform-1/predictions/part-{k:02d}.csv.out").splitlines()
            == read(f"transform-{count}/predictions/part-{k:02d}.csv.out").splitlines()
            for k in range(objects)
        )
        print(f"  {'transform':<10}{one:>14.2f}{many:>16.2f}{one / many:>9.2f}x  {same} (every .out line for line)")
        print(f"  (goal: >= 1.6x with {count} instances on {os.cpu_count()} cores; wall times include the merge step)")
    finally:
        client.down(save=False)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[5:], sys.argv[3])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--predict":
        prediction_compare(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="training sizes (comma-separated)")
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--instances", type=int, default=2, help="sandbox scale-out figures: N instances vs 1 (0: skip them)"
    )
    parser.add_argument("--instance-rows", type=int, default=400_000, help="batch rows for the scale-out figures")
    parser.add_argument("--instance-objects", type=int, default=8, help="S3 objects the scale-out batch is cut in")
    parser.add_argument(
        "--only-instances", action="store_true", help="only the scale-out figures (model and baseline at 100k rows)"
    )
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        work = Path(tmp)
        if args.only_instances:  # a model and a baseline are all the scale-out figures need
            out = train_chain(work, 100_000)["out"]
            sandbox_instances(
                work, out / "baseline", out / "model", args.instance_rows, args.instance_objects, max(args.instances, 2)
            )
            return 0
        print(f"steps bench: {FEATURES} numeric features, {os.cpu_count()} cores")
        print("(wall seconds depend on what else the machine runs; CPU seconds less so)")
        print(f"{'rows':>9}  {'step':<10} {'seconds':>8} {'cpu s':>7} {'peak MiB':>9}")
        chains = {}
        for rows in sizes:
            chains[rows] = figures = train_chain(work, rows)
            for step in ("preprocess", "train", "evaluate"):
                f = figures[step]
                print(f"{rows:>9}  {step:<10} {f['seconds']:>8.2f} {f['cpu_seconds']:>7.2f} {f['peak_mib']:>9.0f}")
            chain_seconds = sum(figures[s]["seconds"] for s in ("preprocess", "train", "evaluate"))
            print(f"{rows:>9}  {'total':<10} {chain_seconds:>8.2f}            (test AUC {figures['auc']:.4f})")
        small, large = min(sizes), max(sizes)
        baseline = chains[large]["out"] / "baseline"
        model_dir = chains[large]["out"] / "model"

        print("\ndrift check (chunked read; batch shifted by 0.3 sd so every feature drifts)")
        drift = {}
        for rows in sorted({small, args.batch_rows}):
            batch = work / f"batch-{rows}.csv"
            synthetic(batch, rows, seed=2, with_target=False, shift=0.3)
            drift[rows] = run_step(
                "drift_check.py",
                "--input",
                str(batch),
                "--baseline-statistics",
                str(baseline),
                "--baseline-constraints",
                str(baseline),
                "--output",
                str(work / f"drift-{rows}"),
                "--drift-threshold",
                "0.1",
            )
            flagged = json.loads((work / f"drift-{rows}" / "drift_check.json").read_text())["violation_count"]
            d = drift[rows]
            print(
                f"{rows:>9}  {'drift':<10} {d['seconds']:>8.2f} {d['cpu_seconds']:>7.2f} {d['peak_mib']:>9.0f}"
                f"   {flagged} violation(s)"
            )
        lo, hi = min(drift), max(drift)
        print(
            f"  memory ratio {hi // lo}x rows: {drift[hi]['peak_mib'] / drift[lo]['peak_mib']:.2f}x peak RSS "
            f"(flat = close to 1); time ratio {drift[hi]['seconds'] / drift[lo]['seconds']:.1f}x"
        )

        print(f"\nbatch prediction on {args.batch_rows} rows (inference handler vs raw xgboost predict)")
        report = work / "predict.json"
        batch = work / f"batch-{args.batch_rows}.csv"
        subprocess.run([sys.executable, __file__, "--predict", str(model_dir), str(batch), str(report)], check=True)
        p = json.loads(report.read_text())
        for key in (
            "parse_csv",
            "predict_fn",
            "format_output",
            "handler_total",
            "raw_predict_dmatrix",
            "raw_predict_inplace",
        ):
            print(f"  {key:<20} {p[key]:>7.2f} s")
        print(f"  ratio predict_fn / raw predict:        {p['predict_fn'] / p['raw_predict']:.2f}x  (goal <= 2x)")
        print(
            f"  ratio whole handler / raw predict:     {p['handler_total'] / p['raw_predict']:.2f}x  "
            "(includes CSV parsing and formatting)"
        )
        if args.instances > 1:
            sandbox_instances(work, baseline, model_dir, args.instance_rows, args.instance_objects, args.instances)
    print(f"\nbench wall time {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
