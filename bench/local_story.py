"""The README's story on the sandbox, timed: wall time of each stage and of the whole, the train
pipeline's execution time, and the share of the whole spent starting Python and importing.

Runs `sandbox demo` in a private sandbox home with PYTHONPROFILEIMPORTTIME=1, so every Python
process (each CLI command, the sandbox server, the step zygote) reports its imports; the share is
their summed top-level import time plus one interpreter start per process, over the story's wall time.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
STAGE = re.compile(r"^(ok(?: \(exit \d+, as expected\))?|FAILED \(\d+\)|FAILED)\s+([\d.]+)s  (.+)$")
IMPORT = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
EXECUTION = re.compile(r"^execution (\w+) in (\d+)s: (arn:\S+)")


def interpreter_start() -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def top_level_imports(text: str) -> tuple[float, int]:
    """Seconds of top-level imports (cumulative) and the number of processes that reported any."""
    total_us, processes = 0, 0
    for line in text.splitlines():
        if line.startswith("import time: self [us]"):
            processes += 1
            continue
        m = IMPORT.match(line)
        if m and m.group(3) == "":
            total_us += int(m.group(2))
    return total_us / 1e6, processes


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MLOPS_SANDBOX_HOME": home, "PYTHONPROFILEIMPORTTIME": "1"}
        start = time.perf_counter()
        result = subprocess.run([str(BIN / "sandbox"), "demo"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        server_log = (
            (Path(home) / "server.log").read_text(errors="replace") if (Path(home) / "server.log").exists() else ""
        )
        subprocess.run(
            [str(BIN / "sandbox"), "down", "--discard"], env={**env, "PYTHONPROFILEIMPORTTIME": ""}, capture_output=True
        )
    output = result.stdout + "\n" + result.stderr
    stages = [(m.group(3), float(m.group(2)), m.group(1)) for m in map(STAGE.match, result.stdout.splitlines()) if m]
    if result.returncode != 0 or not stages:
        print(output[-3000:])
        print(f"the story failed (exit {result.returncode}); no figures")
        return 1

    print(f"{'stage':<88} {'seconds':>8}")
    for title, seconds, outcome in stages:
        print(f"{title[:88]:<88} {seconds:8.1f}" + ("" if outcome.startswith("ok") else f"  {outcome}"))
    executions = [
        (m.group(3).split("/")[-3], m.group(1), int(m.group(2)))
        for m in map(EXECUTION.match, result.stdout.splitlines())
        if m
    ]
    print()
    for pipeline, status, seconds in executions:
        print(f"pipeline execution {pipeline:<24} {status:<10} {seconds:4d} s")

    cli_imports, cli_processes = top_level_imports(output)
    server_imports, server_processes = top_level_imports(server_log)
    boot = interpreter_start()
    processes = cli_processes + server_processes
    overhead = cli_imports + server_imports + processes * boot
    print()
    print(f"whole story                       {wall:7.1f} s (goal < 90 s): {'met' if wall < 90 else 'MISSED'}")
    train = [s for p, status, s in executions if p.endswith("-train")]
    if train:
        print(
            f"train pipeline execution (dev)    {train[0]:7d} s (goal < 20 s): {'met' if train[0] < 20 else 'MISSED'}"
        )
    print(f"python processes                  {processes:7d}  ({cli_processes} commands, {server_processes} sandbox)")
    print(f"interpreter start                 {boot * 1000:7.1f} ms each")
    print(f"imports: commands {cli_imports:6.1f} s, sandbox {server_imports:6.1f} s")
    print(
        f"start-up + imports                {overhead:7.1f} s = {overhead / wall:5.1%} of the story; "
        f"actual work {wall - overhead:6.1f} s = {(wall - overhead) / wall:5.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
