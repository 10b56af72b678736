"""Runs a step script with no network, as a network-isolated SageMaker container has none:
`python isolated.py SCRIPT ARGS...`. In a fresh network namespace when the kernel lets us make one
(nothing but a downed loopback inside), else with every IP socket connect refused in this process."""

from __future__ import annotations

import ctypes
import errno
import os
import runpy
import socket
import sys

CLONE_NEWNET = 0x40000000


def _new_network_namespace() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def _refuse_ip_connections() -> None:
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable (network isolation)")
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise unreachable
        return original_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            return errno.ENETUNREACH
        return original_connect_ex(self, address)

    def getaddrinfo(*_args, **_kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (network isolation)")

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def isolate() -> str:
    if _new_network_namespace():
        return "network namespace"
    _refuse_ip_connections()
    return "socket guard"


def main() -> None:
    isolate()
    script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
