"""The instances of one N-instance job, as SageMaker runs them: hosts algo-1 .. algo-N, each with its own
/opt/ml, its share of a ShardedByS3Key input, and /opt/ml/config/resourceconfig.json naming itself and
its peers (https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html#byoc-config).
The instances run at once, one process each; the job fails when any of them fails."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

CPUS_VARIABLE = "MLOPS_SANDBOX_INSTANCE_CPUS"


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


def thread_limit(count: int, environment: dict, cores: Sequence[int] | None = None) -> dict:
    """Environment for one of `count` instances sharing this machine: each gets its share of the cores for
    its OpenMP/BLAS/Arrow threads (xgboost, numpy, pyarrow), as each instance has its own CPUs on AWS;
    without it N processes each spinning up all-core thread pools on the same cores run slower than one. An
    instance given its own cores (`cores`, see instance_cores) sizes its pools to them. A job that sets
    OMP_NUM_THREADS itself keeps its value; one instance without its own cores keeps the machine."""
    if "OMP_NUM_THREADS" in environment:
        return {}
    if cores is not None:
        return {"OMP_NUM_THREADS": str(len(cores))}
    if count == 1:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count))}


def cpus_per_instance() -> int | None:
    """How many of this machine's cores one instance may use (MLOPS_SANDBOX_INSTANCE_CPUS), or None: every
    instance shares all of them (the default). On AWS an instance brings its own vCPUs, so a job's second
    instance adds capacity; on one machine it adds capacity only if each instance is held to its own cores,
    which this setting does (each instance's process pinned to that many cores, the least busy ones, as a
    container runtime's CPU set does). A 1-vCPU instance model on a 2-core machine: set it to 1."""
    value = os.environ.get(CPUS_VARIABLE, "").strip()
    if value in ("", "0"):
        return None
    if not value.isdigit():
        raise ValueError(f"{value!r} is not a whole number of cores (0 or unset: share them all)")
    return int(value)


class _Cores:
    """Which of this machine's cores the running instances hold: a new instance takes the least busy ones,
    so two concurrent single-core instances on two cores get one core each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._load: dict[int, int] = {}

    def take(self, wanted: int) -> list[int]:
        with self._lock:
            available = sorted(os.sched_getaffinity(0))
            chosen = sorted(sorted(available, key=lambda core: (self._load.get(core, 0), core))[:wanted])
            for core in chosen:
                self._load[core] = self._load.get(core, 0) + 1
            return chosen

    def give_back(self, cores: Sequence[int]) -> None:
        with self._lock:
            for core in cores:
                self._load[core] -= 1


_CORES = _Cores()


@contextmanager
def instance_cores() -> Iterator[list[int] | None]:
    """The cores one instance runs on while it runs (None: all of them, the default)."""
    wanted = cpus_per_instance()
    if wanted is None:
        yield None
        return
    cores = _CORES.take(wanted)
    try:
        yield cores
    finally:
        _CORES.give_back(cores)


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
