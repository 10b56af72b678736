"""Bench: the pipeline step scripts on synthetic data (30 numeric features, binary target).

One function per figure, each measured in this run, each step in a fresh process (wall, CPU and peak RSS):
- preprocess at 1M and 10M rows against the raw reader (pyarrow.csv.read_csv of the same file), measured
  interleaved (raw, ours, raw): goal peak RSS <= 400 MiB at 10M and wall <= 2x the raw read;
- train and evaluate on the 1M-row splits (the model the handler figure scores with);
- the drift check at 1M and 10M batch rows (wall, peak RSS);
- the inference handler (parse + predict + format) on 1M rows against the raw path (pyarrow.csv read +
  xgboost predict) on the same bytes, alternated in one process: goal <= 1.5x;
- on the sandbox, a 2-instance drift check (shards + merge) and a 2-instance transform against 1 instance
  on the same objects (goal: >= 1.6x on 2 cores, equal results), twice: with every instance sharing all
  the machine's cores (the sandbox's default: one instance already keeps two cores busy with its parse and
  predict threads, so a second one on the same two cores adds little), and with each instance held to one
  core of its own (MLOPS_SANDBOX_INSTANCE_CPUS=1, as each instance on AWS brings its own vCPUs).
The machine is shared: wall ratios are noisy, so CPU-second ratios are printed beside them.
Files above 1M rows repeat the 1M-row file's rows (generating 10M rows of text would take minutes).

    python bench/steps.py [--preprocess-rows 1000000,10000000] [--drift-rows 1000000,10000000]
                          [--model-rows 1000000] [--predict-rows 1000000] [--instances 2] [--instance-cpus 0,1]
                          [--only-instances]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "pipelines" / "steps"
FEATURES = 30


BASE_ROWS = 1_000_000


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
    write_report(report, started, exit=code)


def write_report(report: str, started: float, **extra) -> None:
    """This process's wall time since `started`, its CPU seconds and peak RSS, as JSON in `report`."""
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {"seconds": elapsed, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_mib": peak_rss_mib()}
    Path(report).write_text(json.dumps({**figures, **extra}))


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


def dataset(work: Path, rows: int, with_target: bool) -> Path:
    """The bench's CSV of `rows` rows (training data with a target, or a batch shifted by 0.3 sd); cached.
    Above BASE_ROWS it repeats the rows of the BASE_ROWS file."""
    import numpy as np

    kind = "train" if with_target else "batch"
    path = work / f"{kind}-{rows}.csv"
    if path.exists():
        return path
    if rows <= BASE_ROWS:
        synthetic(path, rows, seed=1 if with_target else 2, with_target=with_target, shift=0.0 if with_target else 0.3)
        return path
    base = dataset(work, BASE_ROWS, with_target).read_bytes()
    header_end = base.index(b"\n") + 1
    body = memoryview(base)[header_end:]
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    with open(path, "wb") as handle:
        handle.write(base[:header_end])
        for _ in range(rows // BASE_ROWS):
            handle.write(body)
        if rows % BASE_ROWS:
            handle.write(body[: int(ends[rows % BASE_ROWS - 1]) + 1])
    return path


def raw_read_child(path: str, report: str) -> None:
    """The reference reader: pyarrow's CSV reader on the whole file, as fast as it goes (all threads)."""
    started = time.perf_counter()
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(path)
    write_report(report, started, rows=table.num_rows)


def raw_read(path: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as report:
        out = report.name
    subprocess.run([sys.executable, __file__, "--raw-read", str(path), out], check=True)
    data = json.loads(Path(out).read_text())
    os.unlink(out)
    return data


def preprocess_args(data: Path, out: Path) -> list:
    args = ["--input", str(data), "--target", "target"]
    for d in ("train", "validation", "test", "baseline", "report"):
        args += [f"--{d}-dir", str(out / d)]
    return args


def figure_preprocess(work: Path, rows: int) -> dict:
    """Preprocess on `rows` rows against the raw reader on the same file, interleaved raw, ours, raw."""
    data = dataset(work, rows, with_target=True)
    out = work / f"run-{rows}"
    first = raw_read(data)
    ours = run_step("preprocess.py", *preprocess_args(data, out))
    second = raw_read(data)
    raw = {k: (first[k] + second[k]) / 2 for k in ("seconds", "cpu_seconds", "peak_mib")}
    return {"rows": rows, "ours": ours, "raw": raw, "raw_runs": [first["seconds"], second["seconds"]], "out": out}


def figure_train_chain(out: Path) -> dict:
    """Train and evaluate on preprocess's splits (the model the handler figure uses)."""
    figures = {
        "train": run_step(
            "train.py",
            "--train",
            str(out / "train"),
            "--validation",
            str(out / "validation"),
            "--model-dir",
            str(out / "model"),
        ),
        "evaluate": run_step(
            "evaluate.py",
            "--model",
            str(out / "model"),
            "--test",
            str(out / "test"),
            "--output",
            str(out / "evaluation"),
        ),
    }
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    figures["auc"] = evaluation["binary_classification_metrics"]["auc"]["value"]
    return figures


def model_and_baseline(work: Path, rows: int) -> Path:
    """Preprocess, train and evaluate on `rows` rows, without the raw reader: the output directory."""
    data = dataset(work, rows, with_target=True)
    out = work / f"run-{rows}"
    run_step("preprocess.py", *preprocess_args(data, out))
    figure_train_chain(out)
    return out


def figure_drift(work: Path, rows: int, baseline: Path) -> dict:
    """The drift check on a batch of `rows` rows shifted by 0.3 sd (every feature drifts)."""
    batch = dataset(work, rows, with_target=False)
    out = work / f"drift-{rows}"
    figures = run_step(
        "drift_check.py",
        "--input", str(batch), "--baseline-statistics", str(baseline), "--baseline-constraints", str(baseline),
        "--output", str(out),
    )  # fmt: skip
    figures["violations"] = json.loads((out / "drift_check.json").read_text())["violation_count"]
    return figures


def figure_handler(model_dir: Path, batch: Path) -> dict:
    """The handler against raw read + predict on the same bytes, alternated in one fresh process."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as report:
        out = report.name
    subprocess.run([sys.executable, __file__, "--predict", str(model_dir), str(batch), out], check=True)
    data = json.loads(Path(out).read_text())
    os.unlink(out)
    return data


def prediction_compare(model_dir: Path, batch: Path, report: str, repeats: int = 3) -> None:
    """Best of `repeats` for each side, alternating: the handler's input_fn + predict_fn + output_fn on the
    body, and the raw path: pyarrow.csv.read_csv of the same body, its columns as a float32 matrix, and
    xgboost's inplace_predict."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    sys.path.insert(0, str(STEPS))
    import inference

    model = inference.model_fn(str(model_dir))
    body = batch.read_bytes()

    def raw_path():
        table = pcsv.read_csv(pa.py_buffer(body))
        matrix = np.column_stack([c.to_numpy() for c in table.columns]).astype(np.float32)
        return model.booster.inplace_predict(matrix, validate_features=False)

    def handler():
        frame = inference.input_fn(body, "text/csv")
        parsed = time.perf_counter()
        prediction = inference.predict_fn(frame, model)
        predicted = time.perf_counter()
        text = inference.output_fn(prediction, "text/csv")
        return prediction, text, parsed, predicted

    timings: dict = {"raw": [], "handler": [], "parse": [], "predict": [], "format": [], "raw_cpu": [], "cpu": []}
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        values = raw_path()
        timings["raw"].append(time.perf_counter() - started)
        timings["raw_cpu"].append(time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        prediction, text, parsed, predicted = handler()
        ended = time.perf_counter()
        timings["handler"].append(ended - started)
        timings["cpu"].append(time.process_time() - cpu)
        timings["parse"].append(parsed - started)
        timings["predict"].append(predicted - parsed)
        timings["format"].append(ended - predicted)
    assert np.allclose(values, prediction[0], atol=1e-6), "the handler must predict what raw xgboost predicts"
    best = {key: min(runs) for key, runs in timings.items()}
    best.update(rows=len(values), output_mib=len(text) / 2**20)
    Path(report).write_text(json.dumps(best))


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
    """Create and run a pipeline once; its wall time from start to a terminal status (the service's times)."""
    body = json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": [], **definition})
    sm.create_pipeline(PipelineName=name, PipelineDefinition=body, RoleArn=role_arn)
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    # polled slowly: on instances held to their own cores every request this loop makes takes CPU from
    # them; the time is the execution's own, from its creation to its last status change
    while (described := sm.describe_pipeline_execution(PipelineExecutionArn=arn))["PipelineExecutionStatus"] in (
        "Executing",
        "Stopping",
    ):
        time.sleep(0.25)
    status = described["PipelineExecutionStatus"]
    elapsed = (described["LastModifiedTime"] - described["CreationTime"]).total_seconds()
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    if status != "Succeeded":
        raise SystemExit(f"{name}: {status}: {[s.get('FailureReason') for s in steps if s.get('FailureReason')]}")
    STEP_SECONDS[name] = {s["StepName"]: (s["EndTime"] - s["StartTime"]).total_seconds() for s in steps}
    return elapsed


STEP_SECONDS: dict = {}  # pipeline name -> {step: seconds from its start to its end}


def sandbox_instances(
    work: Path, baseline: Path, model_dir: Path, rows: int, objects: int, count: int, cpus: int, repeats: int = 2
) -> None:
    """A `count`-instance drift check (shards + merge) and transform on the sandbox against 1 instance, same
    data (`rows` batch rows as `objects` S3 objects): wall time of each pipeline execution (best of
    `repeats`, 1 and N alternated, so a sandbox snapshot landing in one run does not decide the figure), the
    ratio, and whether the results are equal (drift_check.json; every .out line for line). `cpus`: cores per
    instance (MLOPS_SANDBOX_INSTANCE_CPUS; 0: every instance shares all of them, the default)."""
    import io
    import tarfile

    os.environ["MLOPS_SANDBOX_HOME"] = tempfile.mkdtemp(prefix="bench-instances-")
    if cpus:
        os.environ["MLOPS_SANDBOX_INSTANCE_CPUS"] = str(cpus)
    else:
        os.environ.pop("MLOPS_SANDBOX_INSTANCE_CPUS", None)
    from sandbox import client

    held = f"each instance held to {cpus} core(s)" if cpus else "instances share all the machine's cores (default)"
    print(f"\nscale-out on the sandbox: {count} instances vs 1, {rows} batch rows in {objects} objects; {held}")
    batch = work / "instances-batch.csv"
    if not batch.exists():
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
        del lines, body
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

        def best(job: str, definition) -> dict:
            runs: dict = {1: [], count: []}
            for attempt in range(repeats):
                for n in (1, count):
                    run = f"{job}-{n}-{attempt}"
                    runs[n].append(_execute(sm, run, definition(n, run), role_arn))
            return runs

        print(
            f"  {'job':<10}{'1 instance s':>14}{f'{count} instances s':>16}{'speed-up':>10}  equal results  (all runs)"
        )

        def show(job: str, runs: dict, same: bool, what: str) -> None:
            one, many = min(runs[1]), min(runs[count])
            every = " / ".join(f"{a:.1f}:{b:.1f}" for a, b in zip(runs[1], runs[count], strict=True))
            print(f"  {job:<10}{one:>14.2f}{many:>16.2f}{one / many:>9.2f}x  {same} ({what})  ({every})")
            for n in (1, count):  # where the best run's time went: each step, start to end
                best_run = f"{job}-{n}-{runs[n].index(min(runs[n]))}"
                steps = ", ".join(f"{step} {sec:.2f} s" for step, sec in STEP_SECONDS[best_run].items())
                print(f"  {'':<10}{n} instance(s): {steps}")

        runs = best("drift", lambda n, run: _drift_definition(role_arn, n, run))
        last = repeats - 1
        results = [json.loads(read(f"drift-{n}-{last}/drift/drift_check.json")) for n in (1, count)]
        show("drift", runs, results[0] == results[1], f"{results[0]['violation_count']} violation(s)")
        runs = best("transform", lambda n, run: _transform_definition(n, run))
        same = all(
            read(f"transform-1-{last}/predictions/part-{k:02d}.csv.out").splitlines()
            == read(f"transform-{count}-{last}/predictions/part-{k:02d}.csv.out").splitlines()
            for k in range(objects)
        )
        show("transform", runs, same, "every .out line for line")
        print(f"  (goal: >= 1.6x with {count} instances on {os.cpu_count()} cores; wall times include the merge step)")
    finally:
        client.down(save=False)
        os.environ.pop("MLOPS_SANDBOX_INSTANCE_CPUS", None)
        shutil.rmtree(os.environ["MLOPS_SANDBOX_HOME"], ignore_errors=True)  # its journal holds the whole batch


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[5:], sys.argv[3])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-read":
        raw_read_child(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--predict":
        prediction_compare(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preprocess-rows", default="1000000,10000000", help="preprocess sizes (comma-separated)")
    parser.add_argument("--drift-rows", default="1000000,10000000", help="drift-check batch sizes (comma-separated)")
    parser.add_argument("--model-rows", type=int, default=BASE_ROWS, help="training rows of the handler's model")
    parser.add_argument("--predict-rows", type=int, default=BASE_ROWS, help="rows the handler scores")
    parser.add_argument(
        "--instances", type=int, default=2, help="sandbox scale-out figures: N instances vs 1 (0: skip them)"
    )
    parser.add_argument(
        "--instance-rows",
        type=int,
        default=2_000_000,
        help="batch rows for the scale-out figures (each sandbox step costs ~0.3 s whatever its size: listing and "
        "fetching the step scripts and the baseline, starting the process; on a 1M-row batch that is a tenth "
        "of the drift check)",
    )
    parser.add_argument("--instance-objects", type=int, default=8, help="S3 objects the scale-out batch is cut in")
    parser.add_argument(
        "--instance-cpus",
        default="0,1",
        help="cores per instance for the scale-out figures, one figure each (0: instances share all cores)",
    )
    parser.add_argument(
        "--only-instances", action="store_true", help="only the scale-out figures (model and baseline at 100k rows)"
    )
    args = parser.parse_args()
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        work = Path(tmp)
        if args.only_instances:  # a model and a baseline are all the scale-out figures need
            out = model_and_baseline(work, 100_000)
            for cpus in (int(c) for c in args.instance_cpus.split(",")):
                sandbox_instances(
                    work, out / "baseline", out / "model", args.instance_rows, args.instance_objects,
                    max(args.instances, 2), cpus,
                )  # fmt: skip
            return 0
        print(f"steps bench: {FEATURES} numeric features, {os.cpu_count()} cores (wall depends on the machine's load)")

        print("\npreprocess against the raw reader (pyarrow.csv.read_csv), interleaved raw, ours, raw")
        print(f"{'rows':>10}  {'ours s':>7} {'raw s':>13} {'ratio':>6}  {'cpu s':>6} {'raw cpu':>7} {'ratio':>6}  "
              f"{'peak MiB':>8} {'raw MiB':>8}")  # fmt: skip
        runs = {}
        for rows in sorted({int(r) for r in args.preprocess_rows.split(",")} | {args.model_rows}):
            runs[rows] = f = figure_preprocess(work, rows)
            ours, raw = f["ours"], f["raw"]
            print(
                f"{rows:>10}  {ours['seconds']:>7.1f} {raw['seconds']:>6.1f}"
                f" ({'/'.join(f'{s:.0f}' for s in f['raw_runs'])}) {ours['seconds'] / raw['seconds']:>5.2f}x"
                f"  {ours['cpu_seconds']:>6.1f} {raw['cpu_seconds']:>7.1f}"
                f" {ours['cpu_seconds'] / raw['cpu_seconds']:>5.2f}x"
                f"  {ours['peak_mib']:>8.0f} {raw['peak_mib']:>8.0f}"
            )
        print("  goal: peak <= 400 MiB at 10M rows, wall <= 2x the raw reader")

        out = runs[args.model_rows]["out"]
        chain = figure_train_chain(out)
        print(f"\ntrain and evaluate on the {args.model_rows}-row splits (test AUC {chain['auc']:.4f})")
        for step in ("train", "evaluate"):
            f = chain[step]
            print(
                f"  {step:<10} {f['seconds']:>7.1f} s  cpu {f['cpu_seconds']:>6.1f} s  peak {f['peak_mib']:>5.0f} MiB"
            )

        print("\ndrift check (chunked read; batch shifted by 0.3 sd so every feature drifts)")
        for rows in sorted({int(r) for r in args.drift_rows.split(",")}):
            d = figure_drift(work, rows, out / "baseline")
            print(
                f"{rows:>10}  {d['seconds']:>7.1f} s  cpu {d['cpu_seconds']:>6.1f} s  peak {d['peak_mib']:>5.0f} MiB"
                f"   {d['violations']} violation(s)"
            )

        batch = dataset(work, args.predict_rows, with_target=False)
        p = figure_handler(out / "model", batch)
        print(f"\ninference handler on {p['rows']} rows against raw read + predict (best of 3 each, alternated)")
        print(f"  handler {p['handler']:.2f} s (parse {p['parse']:.2f}, predict {p['predict']:.2f}, "
              f"format {p['format']:.2f}); raw {p['raw']:.2f} s")  # fmt: skip
        print(
            f"  ratio handler / raw: {p['handler'] / p['raw']:.2f}x wall, {p['cpu'] / p['raw_cpu']:.2f}x cpu"
            "  (goal <= 1.5x)"
        )
        for cpus in (int(c) for c in args.instance_cpus.split(",")) if args.instances > 1 else ():
            sandbox_instances(
                work, out / "baseline", out / "model", args.instance_rows, args.instance_objects, args.instances, cpus
            )
    print(f"\nbench wall time {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
