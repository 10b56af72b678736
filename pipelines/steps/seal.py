"""Seal step: copy what a version will point at (model.tar.gz, evaluation.json, the baseline's
statistics.json and constraints.json) into the registry bucket's sealed/ prefix, write-once, and record
each file's sha256 for the Register step.

Each put carries `If-None-Match: *`: S3 refuses it when the key exists (412), and the registry bucket's
policy denies any put under sealed/ without that header to the workload roles, so once sealed, no
workload principal can change these bytes. SageMaker's own uploads (training and processing outputs)
cannot send the header, hence this step writes the copies itself.

    python pipelines/steps/seal.py --model out/model --evaluation out/evaluation --baseline out/baseline \
        --destination s3://registry-bucket/sealed/dev/train/RUN --kms-key-id alias/key --output out/sealed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tabular import DataError, run_or_fail, sha256_file, write_json

REPORT = "sealed.json"
# name in the report -> (input directory argument, file name)
ARTEFACTS = {
    "model": ("model", "model.tar.gz"),
    "evaluation": ("evaluation", "evaluation.json"),
    "statistics": ("baseline", "statistics.json"),
    "constraints": ("baseline", "constraints.json"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--model", default="/opt/ml/processing/model", help="directory holding model.tar.gz")
    p.add_argument("--evaluation", default="/opt/ml/processing/evaluation", help="directory holding evaluation.json")
    p.add_argument("--baseline", default="/opt/ml/processing/baseline", help="statistics.json and constraints.json")
    p.add_argument("--destination", required=True, help="s3://bucket/prefix the sealed copies go under")
    p.add_argument("--kms-key-id", required=True, help="KMS key (id, ARN or alias) of this account")
    p.add_argument("--output", default="/opt/ml/processing/sealed")
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    return p.parse_args(argv)


def _put_once(s3, bucket: str, key: str, path: Path, sha256: str, key_arn: str) -> None:
    """A write-once put; a key that already holds the same bytes (a retried step) is not an error."""
    from botocore.exceptions import ClientError

    try:
        with open(path, "rb") as body:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
            raise DataError(f"cannot seal s3://{bucket}/{key}: {exc}") from None
        existing = hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
        if existing != sha256:
            raise DataError(
                f"s3://{bucket}/{key} is already sealed with other bytes (sha256 {existing}, ours {sha256})"
            ) from None


def run(args) -> dict:
    import boto3

    if not args.destination.startswith("s3://"):
        raise DataError(f"--destination '{args.destination}' is not an s3:// URI")
    bucket, _, prefix = args.destination[len("s3://") :].partition("/")
    s3, kms = boto3.client("s3"), boto3.client("kms")
    # by ARN, as AWS advises for objects other accounts read: the object then names the key itself
    key_arn = kms.describe_key(KeyId=args.kms_key_id)["KeyMetadata"]["Arn"]
    sealed = {}
    for name, (directory_arg, filename) in ARTEFACTS.items():
        path = Path(getattr(args, directory_arg)) / filename
        if not path.is_file():
            raise DataError(f"no {filename} in {getattr(args, directory_arg)} to seal")
        digest = sha256_file(path)
        key = f"{prefix.rstrip('/')}/{filename}"
        _put_once(s3, bucket, key, path, digest, key_arn)
        sealed[name] = {"s3_uri": f"s3://{bucket}/{key}", "sha256": digest}
    write_json(args.output, REPORT, sealed)
    return sealed


def main(argv=None) -> int:
    args = parse_args(argv)
    sealed = run_or_fail(run, args)
    print(json.dumps({name: entry["s3_uri"] for name, entry in sealed.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
