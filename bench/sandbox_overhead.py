"""What the sandbox's AWS fidelity and durability cost: one sequence of ~200 API calls
(s3/kms/sagemaker/iam/sts) run against plain moto (no patches, no enforcement, state in memory only)
and against the sandbox (IAM enforcement, resource, key and trust policies, and every write journaled
and fsync'd before its reply), one run each, both servers on 127.0.0.1 started and stopped here.

    .venv/bin/python bench/sandbox_overhead.py [--iterations 17]

Prints per-call times for each server, per service and for writes (journaled) vs reads, and the
ratio sandbox / plain moto (goal: <= 1.3x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REGION = "us-east-1"
ROLE = "bench-pipeline-role"
BUCKET = "bench-model-artifacts"
GROUP = "bench-models"
GOAL = 1.3
# calls that change state: the sandbox journals (and fsyncs) these before answering
WRITES = {"put_object", "create_model_package", "assume_role"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_plain_moto():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("plain moto server did not start")


def client(service, endpoint, creds):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, config=Config(retries={"max_attempts": 1}), **creds
    )


def setup(endpoint, admin_creds, bucket_policy=True):
    """As the account's admin: a pipeline role, a KMS key, an encrypted bucket with a TLS-only /
    encrypted-puts-only policy, a model package group with a resource policy. Not timed."""
    account = client("sts", endpoint, admin_creds).get_caller_identity()["Account"]
    role_arn = f"arn:aws:iam::{account}:role/{ROLE}"
    iam = client("iam", endpoint, admin_creds)
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
    kms = client("kms", endpoint, admin_creds)
    key_arn = kms.create_key(
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Root",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        "Sid": "Pipeline",
                        "Effect": "Allow",
                        "Principal": {"AWS": role_arn},
                        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                        "Resource": "*",
                        "Condition": {"StringEquals": {"kms:CallerAccount": account}},
                    },
                ],
            }
        )
    )["KeyMetadata"]["Arn"]
    iam.put_role_policy(
        RoleName=ROLE,
        PolicyName="pipeline",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject"],
                        "Resource": f"arn:aws:s3:::{BUCKET}/models/*",
                    },
                    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
                    {
                        "Effect": "Allow",
                        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                        "Resource": key_arn,
                    },
                    {
                        "Effect": "Allow",
                        "Action": [
                            "sagemaker:CreateModelPackage",
                            "sagemaker:DescribeModelPackage",
                            "sagemaker:ListModelPackages",
                        ],
                        "Resource": [
                            f"arn:aws:sagemaker:{REGION}:{account}:model-package-group/{GROUP}",
                            f"arn:aws:sagemaker:{REGION}:{account}:model-package/{GROUP}/*",
                        ],
                    },
                    {"Effect": "Allow", "Action": "iam:GetRole", "Resource": role_arn},
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn},
                ],
            }
        ),
    )
    s3 = client("s3", endpoint, admin_creds)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]
        },
    )
    if bucket_policy:
        s3.put_bucket_policy(
            Bucket=BUCKET,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "TlsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                        {
                            "Sid": "EncryptedPutsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:PutObject",
                            "Resource": f"arn:aws:s3:::{BUCKET}/*",
                            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
                        },
                    ],
                }
            ),
        )
    sm = client("sagemaker", endpoint, admin_creds)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    try:
        sm.put_model_package_group_policy(
            ModelPackageGroupName=GROUP,
            ResourcePolicy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": role_arn},
                            "Action": "sagemaker:*ModelPackage*",
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )
    except Exception:  # plain moto does not implement group policies
        pass
    creds = client("sts", endpoint, admin_creds).assume_role(RoleArn=role_arn, RoleSessionName="bench")["Credentials"]
    role_creds = {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }
    return role_arn, key_arn, role_creds


def sequence(endpoint, role_arn, key_arn, creds, i):
    """One iteration: 12 calls as the pipeline role, each (service, callable)."""
    s3, kms, sm, iam, sts = (client(s, endpoint, creds) for s in ("s3", "kms", "sagemaker", "iam", "sts"))
    key = f"models/{i}/model.tar.gz"
    state = {}
    return [
        ("sts", lambda: sts.get_caller_identity()),
        (
            "s3",
            lambda: s3.put_object(
                Bucket=BUCKET, Key=key, Body=b"w" * 1024, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn
            ),
        ),
        ("s3", lambda: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()),
        ("s3", lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="models/")),
        ("kms", lambda: state.update(blob=kms.encrypt(KeyId=key_arn, Plaintext=b"secret")["CiphertextBlob"])),
        ("kms", lambda: kms.decrypt(CiphertextBlob=state["blob"])),
        ("kms", lambda: kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")),
        (
            "sagemaker",
            lambda: state.update(
                arn=sm.create_model_package(ModelPackageGroupName=GROUP, CustomerMetadataProperties={"i": str(i)})[
                    "ModelPackageArn"
                ]
            ),
        ),
        ("sagemaker", lambda: sm.list_model_packages(ModelPackageGroupName=GROUP, MaxResults=10)),
        ("sagemaker", lambda: sm.describe_model_package(ModelPackageName=state["arn"])),
        ("iam", lambda: iam.get_role(RoleName=ROLE)),
        ("sts", lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName=f"bench-{i}")),
    ], (s3, kms, sm, iam, sts)


def run_interleaved(servers, iterations):
    """Each call on every server in turn, so machine load (a shared 2-core box) hits both alike."""
    prepared = {
        name: setup(endpoint, creds, bucket_policy) for name, (endpoint, creds, bucket_policy) in servers.items()
    }
    timings = {name: defaultdict(list) for name in servers}
    kinds = {name: defaultdict(list) for name in servers}
    for i in range(iterations + 1):  # iteration 0 warms connections and imports, not counted
        sequences = {name: sequence(servers[name][0], *prepared[name], i)[0] for name in servers}
        for position in range(len(next(iter(sequences.values())))):
            for name, calls in sequences.items():
                service, call = calls[position]
                started = time.perf_counter()
                call()
                if i:
                    elapsed = time.perf_counter() - started
                    timings[name][service].append(elapsed)
                    kinds[name]["writes" if _operation(call) in WRITES else "reads"].append(elapsed)
    return timings, kinds


def _operation(call) -> str:
    """The boto3 operation a sequence entry calls (its lambda's code names it)."""
    names = set(call.__code__.co_names)
    return next(iter(names & WRITES), "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=17, help="12 calls each (default 17: 204 calls)")
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="sandbox-bench-")
    os.environ["MLOPS_SANDBOX_HOME"] = home  # a private sandbox: the user's own stays untouched
    from sandbox import client as sandbox_client

    plain_proc, plain_endpoint = start_plain_moto()
    try:
        status = sandbox_client.up({"bench": "555555555555"})
        sandbox_creds = next(a["credentials"] for a in status["accounts"] if a["account_id"] == "555555555555")
        plain_creds = {
            "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
        }
        timings, kinds = run_interleaved(
            {"plain": (plain_endpoint, plain_creds, False), "sandbox": (status["endpoint"], sandbox_creds, True)},
            args.iterations,
        )
    finally:
        plain_proc.terminate()
        plain_proc.wait(10)
        sandbox_client.down(save=False)
        shutil.rmtree(home, ignore_errors=True)  # its journal holds every byte written
    plain, sandbox = timings["plain"], timings["sandbox"]

    def per_call(t):
        return statistics.mean(t) * 1000

    total_plain = [x for v in plain.values() for x in v]
    total_sandbox = [x for v in sandbox.values() for x in v]
    print(
        f"{len(total_plain)} calls per server ({args.iterations} x 12, as one role with identity, bucket, key "
        f"and group policies; calls alternate between the servers; plain moto gets no bucket policy: it "
        f"answers 403 to every object request under a TLS-only Deny, as it cannot evaluate aws:SecureTransport)"
    )
    print(f"{'service':<10} {'calls':>5} {'plain moto ms/call':>19} {'sandbox ms/call':>16} {'ratio':>6}")
    for service in sorted(plain):
        p, s = per_call(plain[service]), per_call(sandbox[service])
        print(f"{service:<10} {len(plain[service]):>5} {p:>19.2f} {s:>16.2f} {s / p:>5.2f}x")
    for kind in ("writes", "reads"):
        p, s = per_call(kinds["plain"][kind]), per_call(kinds["sandbox"][kind])
        print(f"{kind:<10} {len(kinds['plain'][kind]):>5} {p:>19.2f} {s:>16.2f} {s / p:>5.2f}x")
    p, s = per_call(total_plain), per_call(total_sandbox)
    print(f"{'all':<10} {len(total_plain):>5} {p:>19.2f} {s:>16.2f} {s / p:>5.2f}x")
    mp, ms = statistics.median(total_plain) * 1000, statistics.median(total_sandbox) * 1000
    print(
        f"median ms/call: plain {mp:.2f}, sandbox {ms:.2f} ({ms / mp:.2f}x); goal: mean ratio <= {GOAL:.2f}x -> "
        f"{'met' if s / p <= GOAL else 'NOT met'} (writes: journaled and fsync'd before each reply)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
