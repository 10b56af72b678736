"""Running a check on several Processing instances, as SageMaker Processing runs them: with a
`ShardedByS3Key` input each instance sees only its share of the batch's objects under its local input path
(none at all when there are fewer objects than instances), and learns who it is from
/opt/ml/config/resourceconfig.json, `{"current_host": "algo-1", "hosts": ["algo-1", "algo-2", ...]}`.
https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html#byoc-config
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html

Each instance writes the mergeable statistics of its objects, one record per object, to
`<dir>/<current_host>.json` (a partial); a merge reads every partial, checks that each host of the job
delivered one and that no object was seen twice, and orders the objects by name. A single-instance run
makes the same per-object records in memory, so the merged result is the single-instance result: the same
integers, and floats summed in the same order (per object, then across objects by name).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tabular import DataError, write_json

RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
# Where a test (or a local run) points at another resourceconfig.json; SageMaker's training toolkit sets a
# variable of this name to the document itself, which is accepted too.
RESOURCE_CONFIG_ENV = "SM_RESOURCE_CONFIG"
FORMAT = 1


def default_resource_config() -> str:
    return os.environ.get(RESOURCE_CONFIG_ENV) or RESOURCE_CONFIG


def add_arguments(parser, partial: str, merged: str) -> None:
    """The three options every sharded check takes: --shard-output, --merge-partials, --resource-config.
    `partial` says what one instance writes, `merged` what the merge run decides on."""
    parser.add_argument(
        "--shard-output",
        default="",
        help=f"one instance of several: write {partial} to DIR/<current_host>.json, decide nothing",
    )
    parser.add_argument("--merge-partials", default="", help=f"decide on {merged} every instance wrote to DIR")
    parser.add_argument(
        "--resource-config",
        default=default_resource_config(),
        help="SageMaker's resourceconfig.json (current_host, hosts); absent: one instance, algo-1",
    )


def check_arguments(parser, args) -> None:
    if args.shard_output and args.merge_partials:
        parser.error("--shard-output and --merge-partials are two different runs: give one")


def resource_config(source: str) -> tuple[str, list]:
    """(current_host, hosts) from resourceconfig.json (a path, or the JSON document itself); a single
    `algo-1` when the file is absent, as on one instance outside SageMaker."""
    text = source.strip()
    if not text.startswith("{"):
        path = Path(source)
        if not path.exists():
            return "algo-1", ["algo-1"]
        text = path.read_text()
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"resource config {source}: not valid JSON ({exc.msg})") from None
    current, hosts = config.get("current_host") if isinstance(config, dict) else None, None
    if isinstance(config, dict):
        hosts = config.get("hosts")
    if not isinstance(current, str) or not isinstance(hosts, list) or current not in hosts:
        raise DataError(f"resource config {source}: needs current_host among hosts, got {text[:120]}")
    return current, [str(h) for h in hosts]


def input_objects(path: str, shard: bool) -> list:
    """The batch's objects as (name, file), by name: `path` itself, or every file under the channel
    directory but metadata (names starting with `_` or `.`, like a `_SUCCESS` marker). Every other object
    is data, whatever its name: an instance sees only its share, so no rule may depend on the others.
    An instance of a sharded job may hold none; a whole batch may not."""
    p = Path(path)
    if p.is_file():
        return [(p.name, p)]
    if not p.is_dir():
        if shard:
            return []
        raise DataError(f"input {path} does not exist")
    files = sorted(
        f
        for f in p.rglob("*")
        if f.is_file() and not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)
    )
    if not files and not shard:
        raise DataError(f"input directory {path} holds no file")
    # By name as text, the order a merge puts every instance's objects in (a Path sorts "a/b" before "a-c").
    return sorted(((f.relative_to(p).as_posix(), f) for f in files), key=lambda found: found[0])


def fingerprint(*parts) -> str:
    """What a partial depends on besides its data (baseline, contract, options): a merge refuses partials
    computed under anything else."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def write_partial(directory: str, host: tuple, kind: str, digest: str, objects: list) -> Path:
    """`objects` as this host's partial, `<directory>/<current_host>.json`; `host` is resource_config()'s."""
    current, hosts = host
    document = {"kind": kind, "format": FORMAT, "host": current, "hosts": hosts, "fingerprint": digest}
    return write_json(directory, f"{current}.json", {**document, "objects": objects})


def read_partials(directory: str, kind: str, digest: str) -> list:
    """Every object record of the partials in `directory`, by object name, after checking they make one
    whole batch: each host of the job delivered its partial, computed with the same inputs, and no object
    is in two partials (an input replicated to every instance instead of sharded)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise DataError(f"partials directory {directory} does not exist")
    paths = sorted(f for f in folder.rglob("*.json") if not f.name.startswith(("_", ".")))
    if not paths:
        raise DataError(f"partials directory {directory} holds no partial (<host>.json)")
    hosts: set = set()
    delivered: dict = {}
    owner: dict = {}
    objects: list = []
    for path in paths:
        try:
            partial = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"partial {path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(partial, dict) or partial.get("kind") != kind or partial.get("format") != FORMAT:
            found = partial.get("kind") if isinstance(partial, dict) else type(partial).__name__
            raise DataError(f"partial {path.name} is not a {kind} partial (format {FORMAT}): kind {found!r}")
        if partial["fingerprint"] != digest:
            raise DataError(
                f"partial {path.name} was computed with another baseline, contract or options than this merge"
            )
        host = partial["host"]
        if hosts and set(partial["hosts"]) != hosts:
            raise DataError(
                f"partial {path.name} comes from a job on hosts {', '.join(partial['hosts'])}, not from the job on "
                f"{', '.join(sorted(hosts))} the other partials come from"
            )
        if host in delivered:
            raise DataError(f"partials {delivered[host]} and {path.name} both come from host {host}")
        delivered[host] = path.name
        hosts.update(partial["hosts"])
        for record in partial["objects"]:
            if record["name"] in owner:
                raise DataError(
                    f"object {record['name']} is in the partials of {owner[record['name']]} and {host}: the input "
                    "was replicated to every instance, not sharded by S3 key"
                )
            owner[record["name"]] = host
            objects.append(record)
    missing = sorted(hosts - set(delivered))
    if missing:
        raise DataError(
            f"no partial from host(s) {', '.join(missing)} in {directory} (the job ran on {', '.join(sorted(hosts))})"
        )
    return sorted(objects, key=lambda r: r["name"])
