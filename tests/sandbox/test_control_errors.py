"""Typed errors across the sandbox's HTTP boundary (sandbox/protocol.py): the server answers a refusal
with its status and {"code", "error", "field"}; the client raises that class again, so a bad value is
a ConfigError naming the option (exit 2) without anyone parsing message text."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from mlops_core.errors import ConfigError, SandboxError
from sandbox import client
from sandbox.protocol import TOKEN_HEADER, InvalidInput, NotFound
from tests.conftest import run_cli


def _raw(status: dict, route: str, body: dict) -> tuple[int, dict]:
    token = json.loads((client.home() / "secrets.json").read_text())["control_token"]
    request = urllib.request.Request(
        f"{status['endpoint']}/_sandbox/{route}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", TOKEN_HEADER: token},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_bad_value_is_answered_with_its_code_and_field(sandbox):
    status, body = _raw(sandbox, "tick", {"by": "soon"})
    assert status == 400
    assert body["code"] == "InvalidInput" and body["field"] == "by" and "not a duration" in body["error"]


def test_the_client_raises_the_class_the_server_named(sandbox):
    with pytest.raises(InvalidInput) as bad:
        client.call("tick", {"to": "yesterday"})
    assert isinstance(bad.value, ConfigError) and bad.value.exit_code == 2
    assert bad.value.field == "to" and str(bad.value).startswith("--to: ")
    with pytest.raises(NotFound) as missing:
        client.call("no-such-route")
    assert isinstance(missing.value, SandboxError) and missing.value.exit_code == 1


def test_the_commands_show_the_typed_error_as_one_line(sandbox):
    result = run_cli("sandbox", "fault", "--pipeline", "p", "--step", "S", "--error", "9lives")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --error: not an error code: '9lives'"
    result = run_cli("sandbox", "attempts", "arn:aws:sagemaker:us-east-1:111111111111:pipeline/p/execution/x")
    assert result.returncode == 1 and result.stderr.strip().startswith("error: sandbox attempts failed: ")
