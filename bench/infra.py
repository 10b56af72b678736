"""`promote infra` on the sandbox: wall time of the first apply of mlops-infra/ (cold working directory),
the no-op re-run, a plan alone and the destroy, split per terraform command. Prints figures and ratios
measured in this run. Goal: the no-op re-run applies nothing and takes under half the first apply."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed_run(mode, env, sessions, timings):
    from promote.infra import run_infra

    timings.clear()
    start = time.perf_counter()
    # as `promote infra` runs in text mode (outputs are read only for --output json)
    result = run_infra(env, mode, sessions=sessions, echo=lambda _line: None, want_outputs=False)
    return time.perf_counter() - start, result


def show(label, seconds, timings, result):
    parts = ", ".join(f"{cmd} {t:.2f} s" for cmd, t in timings.items())
    changes = "changes" if result.has_changes else "no changes"
    print(f"{label:<24} {seconds:6.2f} s  {changes:<10} applied={result.applied!s:<5}  [{parts}]")


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        os.environ["MLOPS_SANDBOX_HOME"] = str(Path(home) / "sandbox")
        os.environ["MLOPS_TERRAFORM_WORKDIR"] = str(Path(home) / "terraform-work")
        from iam.bootstrap import bootstrap
        from mlops_core.config import load_environment
        from mlops_core.session import Sessions
        from promote.terraform import TerraformCli
        from sandbox import client
        from sandbox import terraform as sandbox_terraform

        timings = defaultdict(float)
        original_run = TerraformCli.run

        def run(self, command, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original_run(self, command, *args, **kwargs)
            finally:
                timings[command] += time.perf_counter() - start

        TerraformCli.run = run

        env = load_environment("prod", env_dir=REPO / "environments")
        mirror_ready = (sandbox_terraform.mirror_dir() / sandbox_terraform.PROVIDER_ADDRESS).exists()
        start = time.perf_counter()
        sandbox_terraform.ensure_provider_mirror()
        print(
            f"provider mirror: {time.perf_counter() - start:.2f} s "
            f"({'already unpacked' if mirror_ready else 'unpacked from the PyPI zip'}; not counted below)"
        )
        client.up(env.sandbox_accounts)
        try:
            sessions = Sessions(env)
            for kind in ("registry", "prod"):
                bootstrap(env, kind, apply=True, sessions=sessions)
            first_s, first = timed_run("apply", env, sessions, timings)
            show("first apply (cold dir)", first_s, timings, first)
            noop_s, noop = timed_run("apply", env, sessions, timings)
            show("no-op re-run", noop_s, timings, noop)
            plan_s, plan = timed_run("plan", env, sessions, timings)
            show("plan only", plan_s, timings, plan)
            destroy_s, destroy = timed_run("destroy", env, sessions, timings)
            show("destroy", destroy_s, timings, destroy)
        finally:
            TerraformCli.run = original_run
            client.down(save=False)
    resources = first.plan_text.count(" will be created")
    print(f"resources: {resources}; first apply {first_s / max(resources, 1) * 1000:.0f} ms per resource")
    ratio = noop_s / first_s
    ok = (not noop.applied) and ratio < 0.5
    print(
        f"no-op re-run / first apply: {ratio:.2f}x (goal < 0.5x, nothing applied: "
        f"{'met' if ok else 'MISSED'}); plan only / first apply: {plan_s / first_s:.2f}x; "
        f"destroy / first apply: {destroy_s / first_s:.2f}x"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
