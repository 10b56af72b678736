"""What the Jenkins `withAWS(role:, roleAccount:, externalId:)` step does, for the stub DSL: assume the
role with the agent's own credentials (AWS_* in the environment) and print the credentials as JSON."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role-arn", required=True)
    parser.add_argument("--session-name", required=True)
    parser.add_argument("--external-id")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from sandbox import client

    status = client.running()
    if status is None:
        print("no sandbox is running", file=sys.stderr)
        return 1
    sts = boto3.client(
        "sts", endpoint_url=status["endpoint"], region_name=args.region, config=Config(retries={"max_attempts": 1})
    )
    kwargs = {"RoleArn": args.role_arn, "RoleSessionName": args.session_name[:64]}
    if args.external_id:
        kwargs["ExternalId"] = args.external_id
    try:
        credentials = sts.assume_role(**kwargs)["Credentials"]
    except (ClientError, ValueError) as exc:
        print(f"AssumeRole {args.role_arn} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: credentials[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
