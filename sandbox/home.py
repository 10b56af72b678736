"""The sandbox home ($MLOPS_SANDBOX_HOME, default ~/.mlops-sandbox): a private directory (0700) of
private files (0600) whatever the umask or the mode an existing directory had, and the per-home
secrets: the control token that `/_sandbox/*` and `/moto-api/*` require, and the key that
authenticates the state files.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

SECRETS_FILE = "secrets.json"


def private_dir(path: Path) -> Path:
    """`path` created if needed and set to 0700 (an existing directory's mode is corrected)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)
    return path


def open_private(path: Path, flags: int) -> int:
    """os.open with mode 0600 enforced (O_CREAT's mode is filtered by the umask; fchmod is not)."""
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` atomically with `data`, 0600; with `durable`, fsync'd file and directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HomeSecretsError(Exception):
    """The secrets file exists but cannot be used (unreadable, not ours, damaged)."""


def home_secrets(home: Path, create: bool = True) -> dict:
    """{"control_token": str, "state_key": str} of this home, created on first use (random, 0600)."""
    path = home / SECRETS_FILE
    try:
        data = json.loads(path.read_text())
        if not (isinstance(data, dict) and data.get("control_token") and data.get("state_key")):
            raise ValueError("missing fields")
        return data
    except FileNotFoundError:
        if not create:
            raise
    except (OSError, ValueError) as exc:
        raise HomeSecretsError(
            f"{path} is damaged ({exc}): `sandbox down --discard` forgets the sandbox state and its secrets"
        ) from None
    fresh = {"control_token": secrets.token_urlsafe(32), "state_key": secrets.token_hex(32)}
    private_dir(home)
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:  # another process created it first: use theirs
        return home_secrets(home, create=False)
    try:
        os.write(fd, json.dumps(fresh).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return fresh
