"""Account bootstrap on the sandbox: wall time and API calls (reads / writes) to bootstrap dev, prod and
the registry from scratch, then the no-op re-run. Prints figures and ratios measured in this run.
Goals: both runs together under 10 s, zero writes on the re-run."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ACCOUNTS = (("dev", "dev"), ("prod", "prod"), ("registry", "prod"))


def bootstrap_all(envs, sessions) -> dict:
    from iam.bootstrap import bootstrap

    out = {}
    for kind, env_name in ACCOUNTS:
        start = time.perf_counter()
        result = bootstrap(envs[env_name], kind, apply=True, sessions=sessions[env_name])
        out[kind] = (time.perf_counter() - start, result.reads, result.writes)
    return out


def show(label: str, run: dict) -> tuple[float, int, int]:
    total = tuple(sum(x) for x in zip(*run.values()))
    parts = ", ".join(f"{k} {t:.2f} s ({r} reads, {w} writes)" for k, (t, r, w) in run.items())
    print(f"{label:<22} {total[0]:6.2f} s  {total[1]:3d} reads  {total[2]:3d} writes   [{parts}]")
    return total


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        os.environ["MLOPS_SANDBOX_HOME"] = home
        from mlops_core.config import load_environment
        from mlops_core.session import Sessions
        from sandbox import client

        envs = {name: load_environment(name, env_dir=REPO / "environments") for name in ("dev", "prod")}
        accounts = {}
        for env in envs.values():
            accounts.update(env.sandbox_accounts)
        start = time.perf_counter()
        client.up(accounts)
        print(f"sandbox up: {time.perf_counter() - start:.2f} s (not counted below)")
        try:
            sessions = {name: Sessions(env) for name, env in envs.items()}
            first = show("bootstrap from scratch", bootstrap_all(envs, sessions))
            second = show("no-op re-run", bootstrap_all(envs, sessions))
        finally:
            client.down(save=False)
    total = first[0] + second[0]
    print(
        f"total {total:.2f} s (goal < 10 s: {'met' if total < 10 else 'MISSED'}); "
        f"re-run writes {second[2]} (goal 0: {'met' if second[2] == 0 else 'MISSED'})"
    )
    print(
        f"re-run / first run: time {second[0] / first[0]:.2f}x, "
        f"calls {(second[1] + second[2]) / (first[1] + first[2]):.2f}x; "
        f"per call {1000 * first[0] / (first[1] + first[2]):.1f} ms first run, "
        f"{1000 * second[0] / max(1, second[1]):.1f} ms re-run"
    )
    return 0 if second[2] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
