"""The sandbox is not a credential oracle: moto's /moto-api/* (data.json lists every access key and
session token, reset wipes every account) and the sandbox's /_sandbox/* control routes answer 403
without the control token of the sandbox home; admin keys are random per home; the home and its
files are private whatever the umask; a planted state file is refused, never loaded."""

from __future__ import annotations

import json
import os
import pickle
import stat
import urllib.error
import urllib.request

import boto3
import pytest

from tests.conftest import run_cli


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(home))
    yield home
    run_cli("sandbox", "down", "--discard")


def _up(home, umask=None):
    env = {"MLOPS_SANDBOX_HOME": str(home)}
    old = os.umask(umask) if umask is not None else None
    try:
        result = run_cli("sandbox", "up", "--output", "json", env=env)
    finally:
        if old is not None:
            os.umask(old)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _call(url, method="GET", token=None):
    headers = {"X-Sandbox-Token": token} if token is not None else {}
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


CONTROL_ROUTES = [
    ("GET", "/moto-api/data.json"),
    ("POST", "/moto-api/reset"),
    ("POST", "/moto-api/reset-auth"),
    ("GET", "/moto-api/"),
    ("POST", "/_sandbox/reset"),
    ("GET", "/_sandbox/status"),
    ("POST", "/_sandbox/shutdown"),
    ("POST", "/_sandbox/accounts"),
]


def test_control_routes_refuse_callers_without_the_home_token(own_home):
    status = _up(own_home)
    dev = next(a for a in status["accounts"] if a["label"] == "dev")
    s3 = boto3.client("s3", endpoint_url=status["endpoint"], region_name="us-east-1", **dev["credentials"])
    s3.create_bucket(Bucket="still-here")
    for method, path in CONTROL_ROUTES:
        for token in (None, "", "guess", dev["credentials"]["aws_secret_access_key"]):
            code, body = _call(status["endpoint"] + path, method, token)
            assert code == 403, (method, path, token, body)
            assert b"AKIA" not in body and b"SessionToken" not in body
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["still-here"]  # nothing was reset
    assert run_cli("sandbox", "status").returncode == 0  # the owner's CLI sends the token


def test_the_owner_reads_moto_api_with_the_token(own_home):
    status = _up(own_home)
    token = json.loads((own_home / "secrets.json").read_text())["control_token"]
    code, body = _call(status["endpoint"] + "/moto-api/data.json", token=token)
    assert code == 200 and json.loads(body)


def test_admin_keys_are_random_per_home_and_unrelated_to_the_account_id(tmp_path, monkeypatch):
    seen = []
    for name in ("one", "two"):
        home = tmp_path / name
        monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(home))
        status = _up(home)
        creds = {a["account_id"]: a["credentials"] for a in status["accounts"]}
        for account_id, c in creds.items():
            assert account_id not in c["aws_access_key_id"] + c["aws_secret_access_key"]
            assert len(c["aws_access_key_id"]) == 20 and len(c["aws_secret_access_key"]) == 40
        seen.append(creds)
        # the keys are the home's: the same after down/up
        run_cli("sandbox", "down")
        again = {a["account_id"]: a["credentials"] for a in _up(home)["accounts"]}
        assert again == creds
        run_cli("sandbox", "down", "--discard")
    assert all(seen[0][a] != seen[1][a] for a in seen[0])


def test_home_is_private_whatever_the_umask_or_existing_mode(own_home):
    own_home.mkdir(mode=0o755)
    os.chmod(own_home, 0o755)
    _up(own_home, umask=0)
    run_cli("sandbox", "down")  # writes the state
    assert stat.S_IMODE(own_home.stat().st_mode) == 0o700
    files = [p for p in own_home.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"secrets.json", "state.snap", "server.log"}
    assert any(p.name.startswith("journal-") for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", ["state.snap", "state.pkl"])
def test_a_planted_state_file_is_refused_in_one_line_and_never_loaded(own_home, name):
    _up(own_home)
    run_cli("sandbox", "down")
    marker = own_home / "code-ran"
    (own_home / "state.snap").unlink()
    (own_home / name).write_bytes(pickle.dumps(_Planted(marker)))
    result = run_cli("sandbox", "up")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert name in line and "sandbox down --discard" in line
    assert not marker.exists(), "the planted pickle ran"
    assert run_cli("sandbox", "down", "--discard").returncode == 0
    assert run_cli("sandbox", "up").returncode == 0  # recovered, empty


def test_a_damaged_secrets_file_is_one_line_and_discard_recovers(own_home):
    from sandbox.client import _pid_alive

    pid = _up(own_home)["pid"]
    (own_home / "secrets.json").write_text("not json")
    result = run_cli("sandbox", "status")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "secrets.json is damaged" in line and "sandbox down --discard" in line
    assert run_cli("sandbox", "down", "--discard").returncode == 0
    assert not _pid_alive(pid), "the server kept running behind a damaged secrets file"
    assert run_cli("sandbox", "up").returncode == 0
