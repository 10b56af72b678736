"""CLI start-up cost: median wall time of each command's --help vs. `import sagemaker`, and the time
from `sandbox up` to the first answered API call. Prints figures and ratios measured in this run."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def median_seconds(argv: list[str], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def sandbox_first_call() -> float:
    import boto3

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MLOPS_SANDBOX_HOME": home}
        start = time.perf_counter()
        subprocess.run([str(BIN / "sandbox"), "up", "--output", "json"], env=env, check=True, stdout=subprocess.PIPE)
        os.environ["MLOPS_SANDBOX_HOME"] = home
        from sandbox import client

        status = client.running()
        creds = status["accounts"][0]["credentials"]
        boto3.client("sts", endpoint_url=status["endpoint"], region_name="us-east-1", **creds).get_caller_identity()
        elapsed = time.perf_counter() - start
        client.down(save=False)
    return elapsed


def main() -> int:
    sdk = median_seconds([sys.executable, "-c", "import sagemaker"], runs=3)
    print(f"python -c 'import sagemaker'      {sdk:6.3f} s (median of 3)")
    worst = 0.0
    for command in ("run-pipeline", "promote", "bootstrap-account", "sandbox"):
        seconds = median_seconds([str(BIN / command), "--help"])
        worst = max(worst, seconds)
        print(f"{command + ' --help':<34}{seconds:6.3f} s   {sdk / seconds:5.1f}x faster than import sagemaker")
    print(
        f"slowest --help {worst:.3f} s (goal < 0.300 s): {'met' if worst < 0.3 else 'MISSED'}; "
        f"ratio {sdk / worst:.1f}x (goal >= 10x): {'met' if sdk / worst >= 10 else 'MISSED'}"
    )
    first = sandbox_first_call()
    print(f"sandbox up -> first answered call {first:6.3f} s (goal < 2 s): {'met' if first < 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
