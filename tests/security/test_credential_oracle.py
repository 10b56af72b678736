"""The sandbox is not a credential oracle (issue: governance, attempt "state dump and reset endpoints").

Before: anyone on the machine could GET /moto-api/data.json (every access key and session token, the
approver's included), POST /moto-api/reset or /_sandbox/reset (every account wiped), and guess each
account's admin keys (AKIA<account id>SBX0). Now each endpoint answers 403 without the control token of
the sandbox home, nothing changes, and the admin keys are random per home.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import boto3
import pytest

ATTEMPTS = [
    ("GET", "/moto-api/data.json"),
    ("POST", "/moto-api/reset"),
    ("POST", "/_sandbox/reset"),
    ("GET", "/_sandbox/status"),
]


def _call(url: str, method: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("method, path", ATTEMPTS, ids=[p for _, p in ATTEMPTS])
def test_state_dump_and_reset_endpoints_refuse_a_caller_without_the_home_token(sandbox, method, path):
    dev = next(a for a in sandbox["accounts"] if a["label"] == "dev")
    s3 = boto3.client("s3", endpoint_url=sandbox["endpoint"], region_name="us-east-1", **dev["credentials"])
    s3.create_bucket(Bucket="survives-the-attempt")
    code, body = _call(sandbox["endpoint"] + path, method)
    assert code == 403
    assert b"AKIA" not in body and b"SessionToken" not in body
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["survives-the-attempt"]


def test_admin_keys_cannot_be_derived_from_the_account_id(sandbox):
    for account in sandbox["accounts"]:
        creds = account["credentials"]
        assert account["account_id"] not in creds["aws_access_key_id"] + creds["aws_secret_access_key"]
        assert creds["aws_access_key_id"] != f"AKIA{account['account_id']}SBX0"
