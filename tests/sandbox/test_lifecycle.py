"""The sandbox server's lifecycle as users drive it: up, reuse across processes, status, down, state kept."""

import json
import time

import boto3
import pytest

from tests.conftest import run_cli


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    """A sandbox of this test's own, so stopping it does not disturb the shared one."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(home))
    yield home
    run_cli("sandbox", "down", "--discard")


def _alive(pid):
    from sandbox.client import _pid_alive  # a zombie (exited, awaiting its parent's reap) counts as gone

    return _pid_alive(pid)


def _status(home):
    result = run_cli("sandbox", "status", "--output", "json", env={"MLOPS_SANDBOX_HOME": str(home)})
    return result.returncode, json.loads(result.stdout)


def _s3(status, label):
    account = next(a for a in status["accounts"] if a["label"] == label)
    return boto3.client("s3", endpoint_url=status["endpoint"], region_name="us-east-1", **account["credentials"])


def test_up_seeds_the_environment_accounts_and_status_prints_endpoint_and_credentials(own_home):
    started = time.monotonic()
    result = run_cli("sandbox", "up", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    assert result.returncode == 0, result.stderr
    assert "sandbox running at http://127.0.0.1:" in result.stdout
    code, status = _status(own_home)
    assert code == 0 and status["running"]
    assert status["endpoint"].startswith("http://127.0.0.1:")
    labels = {a["label"]: a["account_id"] for a in status["accounts"]}
    assert labels == {
        "dev": "111111111111",
        "stage": "555555555555",
        "prod": "222222222222",
        "registry": "333333333333",
        "jenkins": "444444444444",
    }
    # each account's admin credentials act as that account
    for label, account_id in labels.items():
        account = next(a for a in status["accounts"] if a["label"] == label)
        sts = boto3.client("sts", endpoint_url=status["endpoint"], region_name="us-east-1", **account["credentials"])
        assert sts.get_caller_identity()["Account"] == account_id
    assert time.monotonic() - started < 30


def test_second_process_reuses_the_running_server(own_home):
    first = run_cli("sandbox", "up", "--output", "json", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    second = run_cli("sandbox", "up", "--output", "json", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["pid"] == b["pid"] and a["endpoint"] == b["endpoint"]


def test_down_stops_the_process_and_up_restores_the_state(own_home):
    run_cli("sandbox", "up", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    _, status = _status(own_home)
    s3 = _s3(status, "dev")
    s3.create_bucket(Bucket="kept-across-restarts")
    s3.put_object(Bucket="kept-across-restarts", Key="model.tar.gz", Body=b"weights")

    result = run_cli("sandbox", "down", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    assert result.returncode == 0 and "state saved" in result.stdout
    assert not _alive(status["pid"]), "the server process is still running after `sandbox down`"
    code, stopped = _status(own_home)
    assert code == 1 and stopped == {"running": False}

    run_cli("sandbox", "up", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    _, restarted = _status(own_home)
    assert restarted["pid"] != status["pid"]
    body = _s3(restarted, "dev").get_object(Bucket="kept-across-restarts", Key="model.tar.gz")["Body"].read()
    assert body == b"weights"


def test_down_discard_forgets_the_state(own_home):
    run_cli("sandbox", "up", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    _, status = _status(own_home)
    _s3(status, "dev").create_bucket(Bucket="forgotten-bucket")
    run_cli("sandbox", "down", "--discard", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    run_cli("sandbox", "up", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    _, status = _status(own_home)
    assert _s3(status, "dev").list_buckets()["Buckets"] == []


def test_reset_empties_accounts_but_keeps_admin_credentials(own_home):
    run_cli("sandbox", "up", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    _, status = _status(own_home)
    s3 = _s3(status, "prod")
    s3.create_bucket(Bucket="to-be-reset")
    assert run_cli("sandbox", "reset", env={"MLOPS_SANDBOX_HOME": str(own_home)}).returncode == 0
    assert s3.list_buckets()["Buckets"] == []  # same client, same keys: still valid


def test_status_without_a_server_exits_1(own_home):
    result = run_cli("sandbox", "status", env={"MLOPS_SANDBOX_HOME": str(own_home)})
    assert result.returncode == 1
    assert "no sandbox is running" in result.stdout


def test_commands_on_a_sandbox_environment_start_it_on_demand(own_home, dev_env):
    from mlops_core.session import Sessions

    assert not (own_home / "server.json").exists()
    sessions = Sessions(dev_env)
    assert sessions.caller_account() == "111111111111"
    assert (own_home / "server.json").exists()
