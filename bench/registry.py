"""Registry bench: a group with 1,000 versions, and 150 unchanged pipelines, on a private sandbox.

Prints, for `promote status`, `promote lineage` (oldest and newest), `promote approve` (the newest,
the whole separation-of-duties check included) and the inference Lambda's latest-approved lookup
(nothing pinned, and a pin): wall time and API calls, each next to raw boto3 calls measured in the
same run (one full paginated ListModelPackages, one full Search, one DescribeModelPackage per version:
what the old status cost at least). Then run-pipeline's upsert of 150 unchanged pipelines: reads and
writes per pipeline, and its wall time against 150 raw DescribePipeline calls. `promote status` is also
timed as a command (a new process: interpreter, imports, sign-in), which is what a person waits for.

    .venv/bin/python bench/registry.py [--versions 1000] [--pipelines 150]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(fn):
    """(seconds, result, calls) of one run of fn, counting every API call botocore dispatches."""
    from tests.promote.many_versions import ApiCalls

    with ApiCalls() as calls:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    return seconds, result, calls


def _pages(call, key, **kwargs) -> int:
    count, token = 0, None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        count += len(page[key])
        token = page.get("NextToken")
        if not token:
            return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--pipelines", type=int, default=150)
    args = parser.parse_args(argv)

    os.environ["MLOPS_SANDBOX_HOME"] = tempfile.mkdtemp(prefix="bench-registry-")
    os.environ.pop("MLOPS_SANDBOX_CREDENTIALS", None)
    from mlops_core.config import list_environments, load_environment
    from sandbox import client

    accounts = {}
    for name in list_environments(REPO / "environments"):
        accounts.update(load_environment(name, env_dir=REPO / "environments").sandbox_accounts)
    client.up(accounts)
    try:
        return _bench(load_environment("prod", env_dir=REPO / "environments"), args.versions, args.pipelines)
    finally:
        client.down(save=False)
        shutil.rmtree(os.environ["MLOPS_SANDBOX_HOME"], ignore_errors=True)  # its journal holds every byte written


def _bench(prod, versions: int, pipelines: int) -> int:
    from iam.bootstrap import bootstrap
    from mlops_core.session import Sessions
    from promote import pins, registry
    from promote.registry import package_arn
    from tests.iam.conftest import trust_account_root_too
    from tests.pipelines.test_latest_approved import load_handler
    from tests.promote.many_versions import ManyVersions, status_of

    started = time.perf_counter()
    ManyVersions(prod, versions)
    bootstrap(prod, "prod", apply=True, sessions=Sessions(prod))
    admin = Sessions(prod)
    trust_account_root_too(admin, prod.role_arn("lambda"))
    lambda_sm = admin.client(
        "sagemaker", admin.assume(prod.role_arn("lambda"), purpose="bench", source=admin.in_account(prod.account_id))
    )
    seeded = time.perf_counter() - started
    handler = load_handler()
    group_arn, name = prod.model_package_group_arn, prod.model_package_group_arn.rsplit("/", 1)[1]

    # raw boto3, as the approver, same run
    sm = registry.Registry(prod, Sessions(prod, identity="dave")).sagemaker
    sm.describe_model_package(ModelPackageName=package_arn(prod, 1))  # warm the client
    raw = {
        "ListModelPackages, all pages": timed(
            lambda: _pages(
                sm.list_model_packages, "ModelPackageSummaryList", ModelPackageGroupName=group_arn, MaxResults=100
            )
        ),
        "Search, all pages": timed(
            lambda: _pages(
                sm.search,
                "Results",
                Resource="ModelPackage",
                MaxResults=100,
                SearchExpression={"Filters": [{"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": name}]},
            )
        ),
        "DescribeModelPackage x1": timed(lambda: sm.describe_model_package(ModelPackageName=package_arn(prod, 1))),
        f"DescribeModelPackage x{versions}": timed(
            lambda: [sm.describe_model_package(ModelPackageName=package_arn(prod, v)) for v in range(1, versions + 1)]
        ),
    }
    list_all = raw["ListModelPackages, all pages"][0]

    def served():
        package = handler.latest_approved_package(lambda_sm, group_arn, "prod")
        return handler.outputs_for(package)["model_version"]

    pinned = max(v for v in range(1, versions // 2 + 1) if status_of(v) == "Approved")
    ours = {
        "promote status": timed(lambda: pins.status(prod, Sessions(prod, identity="dave"))),
        "promote lineage (oldest)": timed(lambda: pins.lineage(prod, Sessions(prod, identity="dave"), 1)),
        f"promote lineage (v{versions})": timed(lambda: pins.lineage(prod, Sessions(prod, identity="dave"), versions)),
        "latest approved (no pin)": timed(served),
        f"promote pin v{pinned}": timed(lambda: pins.pin(prod, Sessions(prod, identity="alex"), pinned, "bench")),
        "latest approved (pinned)": timed(served),
        "promote unpin": timed(lambda: pins.unpin(prod, Sessions(prod, identity="alex"), "bench")),
        f"promote approve v{versions}": timed(
            lambda: registry.decide(prod, Sessions(prod, identity="bob"), versions, "approve", "bench")
        ),
    }
    rows = ours["promote status"][1]
    assert len(rows) == versions and rows[0]["version"] == versions and rows[-1]["version"] == 1

    cli_start = time.perf_counter()
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "promote"), "status", "--env", "prod"],
        capture_output=True,
        text=True,
        env={**os.environ, "MLOPS_AS": "dave", "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    cli_seconds = time.perf_counter() - cli_start
    assert shown.returncode == 0, shown.stderr

    print(
        f"registry bench: {versions} versions in one group (seeded in {seeded:.1f}s), sandbox server on "
        f"loopback, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'operation':<34} {'wall s':>8} {'calls':>6} {'x list all':>10}  calls by operation")
    for label, (seconds, _result, calls) in {**raw, **ours}.items():
        by_op = ", ".join(f"{k} {v}" for k, v in sorted(calls.calls.items()))
        print(f"{label:<34} {seconds:>8.2f} {calls.total:>6} {seconds / list_all:>10.2f}  {by_op}")
    print(f"{'promote status (command)':<34} {cli_seconds:>8.2f} {'':>6} {cli_seconds / list_all:>10.2f}  new process")
    _bench_upsert(prod, pipelines)
    return 0


def _bench_upsert(prod, pipelines: int) -> None:
    from mlops_core.session import Sessions
    from pipelines.upsert import upsert
    from tests.pipelines.upsert_helpers import CallCounter, make_specs

    sessions = Sessions(prod)
    projects = []
    for n in range(-(-pipelines // 3)):
        env = replace(prod, pipelines={k: f"bench{n:03d}-{k}" for k in prod.pipelines})
        specs = make_specs(env)
        for spec in specs.values():
            spec.lambda_functions, spec.uploads = [], []
        projects.append((env, specs))
    counter = CallCounter().attach(sessions.workload())
    clients: dict = {}
    for env, specs in projects:
        upsert(env, specs, sessions, build={"build": "bench-1"}, clients=clients)
    counter.reset()
    start = time.perf_counter()
    plans = [
        p
        for env, specs in projects
        for p in upsert(env, specs, sessions, build={"build": "bench-2"}, clients=clients).plans
    ]
    seconds = time.perf_counter() - start
    unchanged = sum(p.action == "unchanged" for p in plans)
    reads, writes = len(counter.reads), len(counter.writes)
    names = [p.name for p in plans]
    sm = clients["sagemaker"]
    raw_start = time.perf_counter()
    for name in names:
        sm.describe_pipeline(PipelineName=name)
    raw = time.perf_counter() - raw_start
    print(
        f"upsert of {len(plans)} pipelines, second run: {unchanged} unchanged, {reads / len(plans):.2f} reads and "
        f"{writes / len(plans):.2f} writes per pipeline, {seconds:.2f}s; {len(names)} raw DescribePipeline calls "
        f"one by one {raw:.2f}s (ratio {seconds / raw:.2f}: ours overlaps the reads)"
    )


if __name__ == "__main__":
    sys.exit(main())
