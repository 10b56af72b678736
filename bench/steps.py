"""Bench: the pipeline step scripts on synthetic data (30 numeric features, binary target).

Prints wall time and peak memory (max RSS of a fresh process per step) for preprocess + train +
evaluate at 100k and 1M rows, the drift check at 100k and 1M batch rows (goal: memory flat as rows
grow: it reads in chunks), and batch prediction through the inference handler against raw xgboost
predict on the same 1M-row matrix (goal: within 2x). Every figure is measured in this run.

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
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        work = Path(tmp)
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
    print(f"\nbench wall time {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
