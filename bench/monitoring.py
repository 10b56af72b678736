"""Bench: the drift check's false-alarm rate, its detection rate, and its speed, all measured in this run.

Data: the built-in breast-cancer training part with missing values injected at realistic rates (a few
percent in a third of the features, marked `?`) and a categorical column added. Preprocess writes the
baseline from its training split, as the train pipeline does. Then:
- false alarms: clean batches drawn with replacement from the whole training file (so missing values
  come at the training rate), at 50, 200 and 10,000 rows (and a few at 1M rows): the share of batches
  with any violation, against the goal of at most 1% per batch;
- detection at 200 rows: one random feature shifted by one baseline standard deviation; completeness
  of one random feature halved; a new category making up 10% of the categorical column;
- wall time of the drift check script on a 1M-row CSV, against today's implementation (the script at
  commit REFERENCE_COMMIT, taken from git) and pandas reading the same file, best of two each;
- the same batch as 4 objects checked by 1 instance and by 2 (two processes at once, each with its own
  resourceconfig.json and half the objects, then the merge): wall time of each, and whether the merged
  files equal the single instance's.

    python bench/monitoring.py [--draws 1000] [--rows-1m 1000000] [--skip-timing]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "pipelines" / "steps"
# The drift check before the statistical tests (fixed thresholds): what "today" means for the timing.
REFERENCE_COMMIT = "09845f1"
# Share of missing values injected per feature (the rest stay complete): 10 of 30 features.
MISSING_RATES = (0.005, 0.01, 0.01, 0.02, 0.02, 0.03, 0.03, 0.04, 0.05, 0.05)
CATEGORY = "referral"
CATEGORIES = {"gp": 0.45, "screening": 0.30, "specialist": 0.15, "emergency": 0.07, "other": 0.03}
CATEGORY_MISSING = 0.02
SEED = 20240601


def training_data(path: Path) -> None:
    """The built-in training CSV with missing values and a categorical column, as a user might bring it."""
    import io

    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(REPO))
    from pipelines.datasets import TARGET, builtin_csv

    frame = pd.read_csv(io.BytesIO(builtin_csv("breast-cancer")))
    rng = np.random.default_rng(SEED)
    features = [c for c in frame.columns if c != TARGET]
    chosen = rng.choice(len(features), size=len(MISSING_RATES), replace=False)
    text = frame.astype(object)
    for j, rate in zip(chosen, MISSING_RATES):
        rows = rng.random(len(frame)) < rate
        text.loc[rows, features[j]] = "?"
    referral = rng.choice(list(CATEGORIES), size=len(frame), p=list(CATEGORIES.values())).astype(object)
    referral[rng.random(len(frame)) < CATEGORY_MISSING] = "?"
    text.insert(len(features), CATEGORY, referral)
    text.to_csv(path, index=False)


def preprocess(data: Path, out: Path) -> None:
    argv = [sys.executable, str(STEPS / "preprocess.py"), "--input", str(data), "--categorical", CATEGORY]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(out / d)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def load_checker():
    sys.path.insert(0, str(STEPS))
    import drift_check

    return drift_check


def batch_frame(data: Path, baseline: dict):
    """The training file without its target, parsed exactly as the drift check parses a batch."""
    import pandas as pd

    kinds = load_checker().feature_kinds(baseline)
    frame = pd.read_csv(
        data,
        na_values=["?"],
        keep_default_na=True,
        skipinitialspace=True,
        dtype={n: str for n, k in kinds.items() if k == "string"},
    )
    return frame[[f["name"] for f in baseline["features"]]]


def check(checker, batch, baseline, constraints, significance) -> list:
    stats, columns, rows = checker.frame_statistics([batch], baseline)
    violations, _ = checker.violations_for(baseline, constraints, stats, columns, rows, significance)
    return violations


def false_alarm_rate(checker, frame, baseline, constraints, rows, draws, significance, rng) -> tuple[float, dict]:
    alarms, kinds = 0, {}
    for _ in range(draws):
        batch = frame.iloc[rng.integers(0, len(frame), size=rows)].reset_index(drop=True)
        violations = check(checker, batch, baseline, constraints, significance)
        alarms += bool(violations)
        for v in violations:
            kinds[v["constraint_check_type"]] = kinds.get(v["constraint_check_type"], 0) + 1
    return alarms / draws, kinds


def detection_rate(checker, frame, baseline, constraints, change, rows, draws, significance, rng) -> float:
    import numpy as np

    numeric = [f for f in baseline["features"] if f["inferred_type"] != "String"]
    caught = 0
    for _ in range(draws):
        batch = frame.iloc[rng.integers(0, len(frame), size=rows)].reset_index(drop=True)
        if change == "shift":
            feature = numeric[rng.integers(len(numeric))]
            name = feature["name"]
            batch[name] = batch[name] + feature["numerical_statistics"]["std_dev"]
            expected = {name}
        elif change == "completeness":
            name = baseline["features"][rng.integers(len(baseline["features"]))]["name"]
            present = np.flatnonzero(batch[name].notna().to_numpy())
            # Half of the present values go missing: completeness halves.
            drop = rng.choice(present, size=len(present) - len(present) // 2, replace=False)
            batch.loc[drop, name] = np.nan
            expected = {name}
        else:
            rows_changed = rng.choice(rows, size=round(0.1 * rows), replace=False)
            batch.loc[rows_changed, CATEGORY] = "self-referral"
            expected = {CATEGORY}
        flagged = {v["feature_name"] for v in check(checker, batch, baseline, constraints, significance)}
        caught += bool(expected & flagged)
    return caught / draws


def best_of(runs: int, argv: list) -> tuple[float, float]:
    """Best wall seconds and best CPU seconds of `runs` runs of a program (CPU is steadier on a busy machine)."""
    import resource

    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return min(walls), min(cpus)


def reference_implementation(directory: Path) -> bool:
    """Today's drift check (and the tabular module it imports) from git, or False without git history."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("drift_check.py", "tabular.py"):
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{REFERENCE_COMMIT}:pipelines/steps/{name}"],
            capture_output=True,
            check=False,
        )
        if shown.returncode != 0:
            return False
        (directory / name).write_bytes(shown.stdout)
    return True


def timing(work: Path, frame, baseline_dir: Path, rows: int) -> None:
    import numpy as np

    big = work / "batch-1m.csv"
    rng = np.random.default_rng(SEED + 1)
    # A realistic 1M-row batch: training rows resampled, written with the `?` missing marker.
    frame.iloc[rng.integers(0, len(frame), size=rows)].to_csv(big, index=False, na_rep="?")
    common = ["--input", str(big), "--baseline-statistics", str(baseline_dir), "--baseline-constraints"]
    common += [str(baseline_dir)]
    new = best_of(2, [sys.executable, str(STEPS / "drift_check.py"), *common, "--output", str(work / "new")])
    new_summary = json.loads((work / "new" / "drift_check.json").read_text())
    read = best_of(
        2,
        [
            sys.executable,
            "-c",
            (
                "import sys, pandas as pd\n"
                "for chunk in pd.read_csv(sys.argv[1], na_values=['?'], chunksize=50000, dtype={sys.argv[2]: str}):\n"
                "    pass\n"
            ),
            str(big),
            CATEGORY,
        ],
    )
    scale = 1_000_000 / rows
    print(f"\ndrift check on a clean {rows:,}-row CSV (best of 2; seconds per 1M rows: wall, CPU)")
    print(f"  {'pandas chunked read of the same CSV (the floor)':<52} {read[0] * scale:6.2f} {read[1] * scale:6.2f}")
    print(
        f"  {'this drift check':<52} {new[0] * scale:6.2f} {new[1] * scale:6.2f}"
        f"   {new_summary['violation_count']} violation(s), {new_summary['tests']} tests"
    )
    reference = work / "reference"
    if reference_implementation(reference):
        old = best_of(
            2,
            [sys.executable, str(reference / "drift_check.py"), *common, "--output", str(work / "old")],
        )
        old_summary = json.loads((work / "old" / "drift_check.json").read_text())
        print(
            f"  {f'today: the drift check at {REFERENCE_COMMIT} (fixed thresholds)':<52} {old[0] * scale:6.2f} "
            f"{old[1] * scale:6.2f}   {old_summary['violation_count']} violation(s)"
        )
        verdict = "ok" if new[0] <= 1.2 * old[0] else "SLOWER than the 1.2x goal"
        print(f"  this / today: wall {new[0] / old[0]:.2f}x (goal <= 1.2x: {verdict}), CPU {new[1] / old[1]:.2f}x")
    else:
        print(f"  today's drift check: not measured (no git history with commit {REFERENCE_COMMIT})")
    sharded_timing(work, big, common[2:], rows)


def sharded_timing(work: Path, big: Path, baseline_args: list, rows: int) -> None:
    """One instance vs two (processes at once, as two Processing instances, then the merge) on the batch
    split into 4 objects; the merged files must equal one instance's."""
    import os

    lines = big.read_text().splitlines()
    header, body = lines[0], lines[1:]
    objects = work / "objects"
    hosts = {"algo-1": work / "algo-1", "algo-2": work / "algo-2"}
    for k in range(4):
        text = "\n".join([header, *body[k * len(body) // 4 : (k + 1) * len(body) // 4]]) + "\n"
        for directory in (objects, hosts[f"algo-{k % 2 + 1}"] / "input"):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"part-{k}.csv").write_text(text)
    script = [sys.executable, str(STEPS / "drift_check.py"), *baseline_args]
    single = best_of(1, [*script, "--input", str(objects), "--output", str(work / "single")])

    started = time.perf_counter()
    running = []
    for host, directory in hosts.items():
        config = directory / "resourceconfig.json"
        config.write_text(json.dumps({"current_host": host, "hosts": list(hosts)}))
        argv = [*script, "--input", str(directory / "input"), "--shard-output", str(work / "partials")]
        env = {**os.environ, "SM_RESOURCE_CONFIG": str(config)}
        running.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL))
    for process in running:
        if process.wait() != 0:
            raise SystemExit("a shard of the drift check failed")
    shards = time.perf_counter() - started
    merge = best_of(1, [*script, "--merge-partials", str(work / "partials"), "--output", str(work / "merged")])
    same = all(
        json.loads((work / "single" / name).read_text()) == json.loads((work / "merged" / name).read_text())
        for name in ("drift_check.json", "constraint_violations.json", "statistics.json")
    )
    scale = 1_000_000 / rows
    load = os.getloadavg()[0]
    print(
        f"\nthe same batch as 4 objects, 1 instance vs 2 (seconds per 1M rows, wall; {os.cpu_count()} cores, "
        f"load average {load:.1f}: a speed-up needs idle cores)"
    )
    print(f"  {'1 instance':<52} {single[0] * scale:6.2f}")
    print(
        f"  {'2 instances at once, then the merge':<52} {(shards + merge[0]) * scale:6.2f}   (merge {merge[0]:.2f} s)"
    )
    print(
        f"  speed-up {single[0] / (shards + merge[0]):.2f}x; merged files equal one instance's: "
        f"{'yes' if same else 'NO'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=1000, help="batches per size and per change")
    parser.add_argument("--draws-1m", type=int, default=3, help="clean 1M-row batches (each costs seconds)")
    parser.add_argument("--rows-1m", type=int, default=1_000_000)
    parser.add_argument("--significance", type=float, default=0.01)
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    import numpy as np

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        work = Path(tmp)
        data = work / "train.csv"
        training_data(data)
        preprocess(data, work / "pre")
        baseline = json.loads((work / "pre" / "baseline" / "statistics.json").read_text())
        constraints = json.loads((work / "pre" / "baseline" / "constraints.json").read_text())
        checker = load_checker()
        frame = batch_frame(data, baseline)
        missing = frame.isna().mean()
        print(
            f"monitoring bench: {len(frame)} training rows, {len(frame.columns)} features "
            f"({(missing > 0).sum()} with missing values, {missing.max():.1%} at most), baseline from "
            f"{baseline['dataset']['item_count']} rows; significance {args.significance} per batch"
        )
        rng = np.random.default_rng(SEED)
        print(f"\nfalse alarms on clean batches (goal <= {args.significance:.0%} of batches)")
        for rows, draws in ((50, args.draws), (200, args.draws), (10_000, args.draws), (args.rows_1m, args.draws_1m)):
            if not draws:
                continue
            rate, kinds = false_alarm_rate(checker, frame, baseline, constraints, rows, draws, args.significance, rng)
            verdict = "ok" if rate <= args.significance else "ABOVE the goal"
            shown = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
            print(f"  {rows:>9,} rows x {draws:>5} batches: {rate:7.2%}  {verdict:<6}  violations: {shown}")
        print("\ndetection at 200 rows (goal >= 99% of batches)")
        for change, what in (
            ("shift", "one feature shifted by 1 sd"),
            ("completeness", "completeness of one feature halved"),
            ("category", "a new category at 10%"),
        )[: 3 if args.draws else 0]:
            rate = detection_rate(
                checker, frame, baseline, constraints, change, 200, args.draws, args.significance, rng
            )
            print(f"  {what:<38} {rate:7.2%}  {'ok' if rate >= 0.99 else 'BELOW the goal'}")
        if not args.skip_timing:
            timing(work, frame, work / "pre" / "baseline", args.rows_1m)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
