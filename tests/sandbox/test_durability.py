"""The sandbox never loses an acknowledged write: a mixed write workload from several threads, each
acting through an assumed role (S3 puts in three accounts, one of them into another account's bucket,
SageMaker model packages, SNS publishes, KMS key tags), while the server is killed (SIGKILL) or
stopped (SIGTERM) at random points and restarted. After every restart each write that was
acknowledged is there, byte for byte, and a write that was not acknowledged is either all there or
not there at all.

    MLOPS_DURABILITY_CYCLES=100 pytest tests/sandbox/test_durability.py   # the long run

The default run is bounded (DEFAULT_CYCLES kills, a few seconds of writes each).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import threading
import time
import urllib.request
import zipfile

import boto3
import pytest
from botocore.config import Config

DEFAULT_CYCLES = 4
ACCOUNTS = {"dev": "111111111111", "prod": "222222222222", "registry": "333333333333"}
REGION = "us-east-1"
ROLE = "durability-writer"
GROUP = "durability-models"
CONFIG = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20)


def _bucket(label):
    return f"durability-{label}"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(home))
    yield home
    from sandbox import client

    client.down(save=False)


def _admin(status, label, service):
    creds = next(a["credentials"] for a in status["accounts"] if a["account_id"] == ACCOUNTS[label])
    return boto3.client(service, endpoint_url=status["endpoint"], region_name=REGION, config=CONFIG, **creds)


def _setup(status) -> dict:
    """Roles, buckets, a key and a topic per account, the registry's group and bucket policy; then
    one assumed-role session per account (acknowledged writes themselves: they must survive)."""
    world = {"keys": {}, "topics": {}, "roles": {}}
    for label, account in ACCOUNTS.items():
        iam = _admin(status, label, "iam")
        iam.create_role(
            RoleName=ROLE,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        key_arn = _admin(status, label, "kms").create_key(Description=f"durability {label}")["KeyMetadata"]["Arn"]
        topic_arn = _admin(status, label, "sns").create_topic(Name="durability")["TopicArn"]
        _admin(status, label, "s3").create_bucket(Bucket=_bucket(label))
        resources = [f"arn:aws:s3:::{_bucket(label)}/*", key_arn, topic_arn]
        if label == "dev":
            resources.append(f"arn:aws:s3:::{_bucket('registry')}/*")
        if label == "registry":
            resources += [
                f"arn:aws:sagemaker:{REGION}:{account}:model-package-group/{GROUP}",
                f"arn:aws:sagemaker:{REGION}:{account}:model-package/{GROUP}/*",
            ]
        iam.put_role_policy(
            RoleName=ROLE,
            PolicyName="writes",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "s3:PutObject",
                                "s3:GetObject",
                                "kms:TagResource",
                                "sns:Publish",
                                "sagemaker:CreateModelPackage",
                            ],
                            "Resource": resources,
                        }
                    ],
                }
            ),
        )
        world["keys"][label], world["topics"][label] = key_arn, topic_arn
    _admin(status, "registry", "sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    dev_role = f"arn:aws:iam::{ACCOUNTS['dev']}:role/{ROLE}"
    _admin(status, "registry", "s3").put_bucket_policy(
        Bucket=_bucket("registry"),
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DevWrites",
                        "Effect": "Allow",
                        "Principal": {"AWS": dev_role},
                        "Action": ["s3:PutObject", "s3:GetObject"],
                        "Resource": f"arn:aws:s3:::{_bucket('registry')}/*",
                    }
                ],
            }
        ),
    )
    for label, account in ACCOUNTS.items():
        creds = _admin(status, label, "sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName=f"writer-{label}"
        )["Credentials"]
        world["roles"][label] = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
    return world


class Ledger:
    """What each writer was told: acknowledged writes, and writes whose outcome it never learnt."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked: list[dict] = []
        self.unknown: list[dict] = []
        self.counter = 0

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


def _role_client(world, endpoint, label, service):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=CONFIG, **world["roles"][label])


def _writer(world, endpoint, ledger: Ledger, stop: threading.Event, seed: int):
    rng = random.Random(seed)
    clients = {}

    def client(label, service):
        if (label, service) not in clients:
            clients[label, service] = _role_client(world, endpoint, label, service)
        return clients[label, service]

    while not stop.is_set():
        n = ledger.next_id()
        kind = rng.choice(["s3", "s3", "s3-cross", "package", "sns", "kms-tag"])
        label = rng.choice(list(ACCOUNTS))
        value = f"{n}-{rng.getrandbits(64):016x}"
        write = {"kind": kind, "n": n, "label": label, "value": value}
        try:
            if kind == "s3":
                client(label, "s3").put_object(Bucket=_bucket(label), Key=f"w/{n}", Body=value.encode() * 8)
            elif kind == "s3-cross":
                write["label"] = "dev"
                client("dev", "s3").put_object(Bucket=_bucket("registry"), Key=f"from-dev/{n}", Body=value.encode())
            elif kind == "package":
                write["label"] = "registry"
                client("registry", "sagemaker").create_model_package(
                    ModelPackageGroupName=GROUP,
                    ModelApprovalStatus="PendingManualApproval",
                    ModelPackageDescription=value,  # listed in the summaries: no describe per version
                    InferenceSpecification={
                        "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1"}],
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedResponseMIMETypes": ["text/csv"],
                    },
                )
            elif kind == "sns":
                client(label, "sns").publish(TopicArn=world["topics"][label], Message=value)
            else:
                client(label, "kms").tag_resource(
                    KeyId=world["keys"][label], Tags=[{"TagKey": f"w{n}", "TagValue": value}]
                )
        except Exception:
            with ledger.lock:
                ledger.unknown.append(write)
            return  # the server is going away: this writer is done for the cycle
        with ledger.lock:
            ledger.acked.append(write)


def _observed(status, world) -> dict:
    """Everything the writes could have left, read back through the APIs (and the authenticated
    /moto-api for SNS's sent messages, which no AWS API lists)."""
    seen = {"s3": {}, "s3-cross": {}, "package": {}, "sns": set(), "kms-tag": {}}
    for label in ACCOUNTS:
        s3 = _admin(status, label, "s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=_bucket(label)):
            for obj in page.get("Contents", []):
                kind = "s3-cross" if obj["Key"].startswith("from-dev/") else "s3"
                seen[kind][obj["Key"].split("/", 1)[1]] = obj["ETag"].strip('"')
        tags = _admin(status, label, "kms").list_resource_tags(KeyId=world["keys"][label], Limit=1000)["Tags"]
        seen["kms-tag"].update({t["TagKey"][1:]: t["TagValue"] for t in tags})
    sm = _admin(status, "registry", "sagemaker")
    for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=GROUP):
        for summary in page["ModelPackageSummaryList"]:
            seen["package"][summary.get("ModelPackageDescription")] = summary["ModelApprovalStatus"]
    token = json.loads((_home() / "secrets.json").read_text())["control_token"]
    request = urllib.request.Request(status["endpoint"] + "/moto-api/data.json", headers={"X-Sandbox-Token": token})
    with urllib.request.urlopen(request, timeout=30) as resp:
        data = json.loads(resp.read())
    seen["sns"] = _sent_messages_from(data)
    return seen


def _sent_messages_from(data) -> set:
    """moto's data.json nests SNS topics per account/region; find every sent message whatever the shape."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "sent_notifications" and isinstance(value, list):
                    for sent in value:
                        found.add(sent[1] if isinstance(sent, (list, tuple)) and len(sent) > 1 else str(sent))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found


def _home():
    from sandbox.client import home

    return home()


def _etag(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def _check(ledger: Ledger, seen: dict) -> int:
    """Every acknowledged write is there exactly; an unacknowledged one is there exactly or absent."""
    problems = []

    def present(write):
        kind, n, value = write["kind"], str(write["n"]), write["value"]
        if kind == "s3":
            got = seen["s3"].get(n)
            return None if got is None else got == _etag(value.encode() * 8)
        if kind == "s3-cross":
            got = seen["s3-cross"].get(n)
            return None if got is None else got == _etag(value.encode())
        if kind == "package":
            got = seen["package"].get(value)
            return None if got is None else got == "PendingManualApproval"
        if kind == "sns":
            return True if value in seen["sns"] else None
        got = seen["kms-tag"].get(n)
        return None if got is None else got == value

    for write in ledger.acked:
        if present(write) is not True:
            problems.append(f"acknowledged write lost or altered: {write}")
    for write in ledger.unknown:
        if present(write) is False:
            problems.append(f"unacknowledged write half there: {write}")
    assert not problems, "\n".join(problems[:20])
    return len(ledger.acked)


def _wait_gone(pid, timeout=30):
    from sandbox.client import _pid_alive

    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGUSR1)  # the server dumps every thread's stack into its log
        time.sleep(1)
        log = (_home() / "server.log").read_text(errors="replace")
        stacks = log[log.rfind("Thread 0x") - 4000 :] if "Thread 0x" in log else log[-3000:]
        raise AssertionError(f"server {pid} still runs {timeout}s after the signal:\n{stacks}")


def test_acknowledged_writes_survive_sigkill_and_sigterm(home):
    from sandbox import client

    cycles = int(os.environ.get("MLOPS_DURABILITY_CYCLES") or DEFAULT_CYCLES)
    rng = random.Random(int(os.environ.get("MLOPS_DURABILITY_SEED") or time.time()))
    status = client.up(ACCOUNTS)
    world = _setup(status)
    ledger = Ledger()
    checked = 0
    started = time.monotonic()
    for cycle in range(cycles):
        stop = threading.Event()
        writers = [
            threading.Thread(target=_writer, args=(world, status["endpoint"], ledger, stop, rng.getrandbits(32)))
            for _ in range(4)
        ]
        for w in writers:
            w.start()
        time.sleep(rng.uniform(0.3, 1.5))
        how = signal.SIGKILL if cycle % 2 == 0 else signal.SIGTERM
        os.kill(status["pid"], how)
        _wait_gone(status["pid"])  # SIGTERM: the server finishes what is in flight, persists, exits
        stop.set()
        for w in writers:
            w.join(30)
        status = client.up(ACCOUNTS)
        checked = _check(ledger, _observed(status, world))
    elapsed = time.monotonic() - started
    print(
        f"\ndurability: {cycles} kill/restart cycles, {checked} acknowledged writes checked after each, "
        f"{len(ledger.unknown)} unacknowledged, {elapsed:.1f}s"
    )
    assert checked > cycles  # the workload did write


def test_sigterm_stops_the_server_after_persisting(home):
    from sandbox import client

    status = client.up(ACCOUNTS)
    s3 = _admin(status, "dev", "s3")
    s3.create_bucket(Bucket="kept-on-sigterm")
    role = _admin(status, "dev", "iam").create_role(
        RoleName="function-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    _admin(status, "dev", "lambda").create_function(
        FunctionName="kept-function",
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    os.kill(status["pid"], signal.SIGTERM)
    _wait_gone(status["pid"], timeout=20)  # it used to save and keep serving
    assert not (home / "server.json").exists()
    assert (home / "state.snap").exists()
    assert b"kept-on-sigterm" not in b"".join(p.read_bytes() for p in home.glob("journal-*.log"))  # compacted
    restarted = client.up(ACCOUNTS)
    assert [b["Name"] for b in _admin(restarted, "dev", "s3").list_buckets()["Buckets"]] == ["kept-on-sigterm"]
    functions = _admin(restarted, "dev", "lambda").list_functions()["Functions"]
    assert [f["FunctionName"] for f in functions] == ["kept-function"]  # moto's Lambda storage pickles too


def test_reset_is_durable_and_empties_the_journal(home):
    from sandbox import client

    status = client.up(ACCOUNTS)
    _admin(status, "prod", "s3").create_bucket(Bucket="before-reset")
    os.kill(status["pid"], signal.SIGKILL)  # the bucket lives only in the journal now
    _wait_gone(status["pid"])
    status = client.up(ACCOUNTS)
    assert [b["Name"] for b in _admin(status, "prod", "s3").list_buckets()["Buckets"]] == ["before-reset"]
    client.reset()
    journal = b"".join(p.read_bytes() for p in home.glob("journal-*.log"))
    assert b"before-reset" not in journal
    os.kill(status["pid"], signal.SIGKILL)
    _wait_gone(status["pid"])
    status = client.up(ACCOUNTS)
    assert _admin(status, "prod", "s3").list_buckets()["Buckets"] == []  # the reset was not undone


def test_a_damaged_journal_is_refused_in_one_line(home):
    from sandbox import client
    from tests.conftest import run_cli

    status = client.up(ACCOUNTS)
    _admin(status, "dev", "s3").create_bucket(Bucket="in-the-journal")
    _admin(status, "dev", "s3").create_bucket(Bucket="also-in-the-journal")
    os.kill(status["pid"], signal.SIGKILL)
    _wait_gone(status["pid"])
    [segment] = sorted(home.glob("journal-*.log"))
    lines = segment.read_bytes().split(b"\n")
    damaged = next(i for i, line in enumerate(lines) if b"/in-the-journal" in line)
    assert any(b"/also-in-the-journal" in line for line in lines[damaged + 1 :])  # mid-file, not a torn tail
    lines[damaged] = lines[damaged].replace(b"/in-the-journal", b"/in-the-journax")
    segment.write_bytes(b"\n".join(lines))
    result = run_cli("sandbox", "up")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert f"{segment.name} line {damaged + 1} is damaged" in line and "sandbox down --discard" in line
    assert run_cli("sandbox", "down", "--discard").returncode == 0
    assert run_cli("sandbox", "up").returncode == 0


def test_metric_datapoints_survive_sigkill_with_their_sandbox_time(home):
    """A datapoint put without Timestamp is stamped with the sandbox clock; after a SIGKILL the replayed
    journal stamps it the same, so a run's metrics still line up with its execution."""
    from datetime import datetime, timedelta

    from sandbox import client

    status = client.up(ACCOUNTS)
    client.call("tick", {"by": "2d"})
    cw = _admin(status, "prod", "cloudwatch")
    metric = {"MetricName": "DriftScore", "Dimensions": [{"Name": "Environment", "Value": "prod"}]}
    cw.put_metric_data(Namespace="MLOps/durability", MetricData=[{**metric, "Value": 0.4}])
    now = datetime.fromisoformat(client.call("clock")["now"].replace("Z", "+00:00"))
    query = {
        "Id": "drift",
        "MetricStat": {"Metric": {"Namespace": "MLOps/durability", **metric}, "Period": 60, "Stat": "Maximum"},
    }
    window = {"StartTime": now - timedelta(minutes=10), "EndTime": now + timedelta(minutes=10)}
    before = cw.get_metric_data(MetricDataQueries=[query], **window)["MetricDataResults"][0]
    os.kill(status["pid"], signal.SIGKILL)  # the datapoint lives only in the journal now
    _wait_gone(status["pid"])
    status = client.up(ACCOUNTS)
    cw = _admin(status, "prod", "cloudwatch")
    after = cw.get_metric_data(MetricDataQueries=[query], **window)["MetricDataResults"][0]
    assert (
        (after["Values"], after["Timestamps"])
        == (before["Values"], before["Timestamps"])
        == ([0.4], before["Timestamps"])
    )
    assert [m["MetricName"] for m in cw.list_metrics(Namespace="MLOps/durability")["Metrics"]] == ["DriftScore"]


def test_snapshots_stay_a_fixed_share_of_the_bytes_written(home, monkeypatch):
    """A large state is not re-written every COMPACT_EVERY_BYTES: after a snapshot of a state holding a big
    object, the next snapshot waits until the journal has grown by about that snapshot's size, so a batch
    job writing outputs next to a large input does not pay for a full snapshot every few puts. Everything
    written is still there after a SIGKILL (journal replay over the snapshot)."""
    from sandbox import client

    monkeypatch.setenv("MLOPS_SANDBOX_COMPACT_BYTES", str(1 << 20))  # 1 MiB: the same rule, small objects
    status = client.up(ACCOUNTS)
    s3 = _admin(status, "dev", "s3")
    s3.create_bucket(Bucket="compaction")
    big = os.urandom(6 << 20)
    s3.put_object(Bucket="compaction", Key="input.bin", Body=big)  # journal > 1 MiB: a snapshot of ~6 MiB

    def segments() -> list[str]:
        return sorted(p.name for p in home.glob("journal-*.log"))

    after_big = segments()
    small = {f"out-{k}": os.urandom(512 << 10) for k in range(6)}  # 3 MiB in all: more than 1 MiB, less than 6
    for key, body in small.items():
        s3.put_object(Bucket="compaction", Key=key, Body=body)
    assert segments() == after_big, "a snapshot was taken after 1 MiB although the last one held 6 MiB"
    for k in range(6, 20):  # past the last snapshot's size: the journal is compacted again
        s3.put_object(Bucket="compaction", Key=f"out-{k}", Body=os.urandom(512 << 10))
    assert segments() != after_big

    os.kill(status["pid"], signal.SIGKILL)
    _wait_gone(status["pid"])
    status = client.up(ACCOUNTS)
    s3 = _admin(status, "dev", "s3")
    assert s3.get_object(Bucket="compaction", Key="input.bin")["Body"].read() == big
    for key, body in small.items():
        assert s3.get_object(Bucket="compaction", Key=key)["Body"].read() == body
