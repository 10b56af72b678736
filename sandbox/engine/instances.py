"""The instances of one N-instance job, as SageMaker runs them: hosts algo-1 .. algo-N, each with its own
/opt/ml, its share of a ShardedByS3Key input, and /opt/ml/config/resourceconfig.json naming itself and
its peers (https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html#byoc-config).
The instances run at once, one process each; the job fails when any of them fails."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def host_names(count: int) -> list[str]:
    return [f"algo-{k}" for k in range(1, count + 1)]


def instance_count(resources: dict | None, default: int = 1) -> int:
    """InstanceCount of a job's ClusterConfig / TransformResources (a parameter arrives as text)."""
    value = (resources or {}).get("InstanceCount", default)
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"InstanceCount {value!r} is not a whole number") from None
    if not 1 <= count <= 100:
        raise ValueError(f"InstanceCount {count} is not between 1 and 100")
    return count


def thread_limit(count: int, environment: dict) -> dict:
    """Environment for one of `count` instances sharing this machine: each gets its share of the cores for
    its OpenMP/BLAS threads (xgboost, numpy), as each instance has its own CPUs on AWS; without it N
    processes each spinning up all-core thread pools on the same cores run slower than one. A job that sets
    OMP_NUM_THREADS itself keeps its value; one instance keeps the machine."""
    if count == 1 or "OMP_NUM_THREADS" in environment:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count))}


def shard(objects: Sequence[Any], count: int) -> list[list[Any]]:
    """ShardedByS3Key: each object goes to exactly one instance, object i (in key order) to instance
    i mod N, so each gets about 1/N of the objects; with fewer objects than instances the last ones get
    none ("some nodes won't get any data",
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html). Which object lands
    where is not documented by AWS; this order is the sandbox's."""
    ordered = sorted(objects)
    return [ordered[k::count] for k in range(count)]


def resource_config(host: str, hosts: Sequence[str]) -> dict:
    return {"current_host": host, "hosts": list(hosts)}


def run_all(run: Callable[[str], Any], hosts: Sequence[str]) -> list:
    """run(host) for every host at once (threads, each driving its instance's process); waits for all of
    them, then raises the first failure in host order, as a job fails when any of its instances does."""
    if len(hosts) == 1:
        return [run(hosts[0])]
    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="instance") as pool:
        futures = [pool.submit(run, host) for host in hosts]
        results, failure = [], None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # every instance has ended: report the first that failed
                failure = failure or exc
                results.append(None)
    if failure is not None:
        raise failure
    return results
