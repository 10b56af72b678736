"""A pre-forked Python for step scripts: one process imports the heavy libraries step scripts use
(numpy, pandas, scikit-learn, xgboost, boto3) once, then forks a child per step script, so a step
pays milliseconds instead of seconds of imports. Each child is still its own process (own
environment, working directory, argv, stdout/stderr), exactly what `python3 script.py ARGS` gets.

MLOPS_SANDBOX_PRELOAD=0 turns it off: every step then starts a fresh interpreter.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

PRELOADED = ("numpy", "pandas", "sklearn.model_selection", "sklearn.metrics", "xgboost", "boto3", "botocore.session")


def enabled() -> bool:
    return os.environ.get("MLOPS_SANDBOX_PRELOAD", "1") not in ("0", "false", "no")


# -- the server side ------------------------------------------------------------------------------
class Zygote:
    """The forking process, started on first use, restarted if it died."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket_path = str(directory / "zygote.sock")
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def ensure(self) -> bool:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                return True
            self.directory.mkdir(parents=True, exist_ok=True)
            Path(self.socket_path).unlink(missing_ok=True)
            env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox.engine.preload", self.socket_path, str(os.getpid())],
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                if os.path.exists(self.socket_path):
                    return True
                time.sleep(0.05)
            return False

    def start(self, argv: list[str], env: dict, cwd: str, log_path: str, cores: list[int] | None = None) -> Child:
        """Fork a child running `argv` (python script args), on `cores` only if given; returns a handle with
        pid and wait()."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.socket_path)
        request = {"argv": argv, "env": env, "cwd": cwd, "log": log_path, "cores": cores}
        conn.sendall(json.dumps(request).encode() + b"\n")
        reader = conn.makefile("r")
        reply = json.loads(reader.readline())
        return Child(conn, reader, reply["pid"])

    def stop(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Child:
    def __init__(self, conn, reader, pid: int):
        self.conn, self.reader, self.pid = conn, reader, pid
        self.returncode: int | None = None

    def poll(self, timeout: float = 0.05) -> int | None:
        if self.returncode is None:
            # a timed-out read would poison the socket's file object: wait for readability instead
            readable, _, _ = select.select([self.conn], [], [], timeout)
            if not readable:
                return None
            line = self.reader.readline()
            self.returncode = json.loads(line)["exit"] if line else -9
            self.conn.close()
        return self.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.pid, 9)
        except ProcessLookupError:
            pass


def runnable(argv: list[str]) -> bool:
    """Only `python script.py ARGS` goes through the zygote; anything else starts its own process."""
    return len(argv) >= 2 and argv[0] == sys.executable and argv[1].endswith(".py") and not argv[1].startswith("-")


# -- the zygote process ---------------------------------------------------------------------------
def _child(request: dict) -> None:
    code = 0
    try:
        os.setsid()
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("cores"):
            os.sched_setaffinity(0, request["cores"])
        _limit_threads(request["env"].get("OMP_NUM_THREADS", ""))
        script, *args = request["argv"][1:]
        sys.argv = [script, *args]
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.path.dirname(os.path.abspath(script))] + extra + [p for p in sys.path[1:] if p not in extra]

        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _limit_threads(value: str) -> None:
    """OMP_NUM_THREADS for a forked child: the OpenMP and BLAS runtimes this process loaded read it when they
    started, so a child asking for fewer threads gets them limited in place (a fresh interpreter reads it)."""
    if not value.isdigit() or int(value) < 1:
        return
    try:  # scikit-learn's dependency, loaded by name like the preloaded libraries
        importlib.import_module("threadpoolctl").threadpool_limits(limits=int(value))
    except Exception:  # only a speed matter
        pass
    if "pyarrow" in sys.modules:  # pandas loads it; its pool may have been sized before the fork
        try:
            sys.modules["pyarrow"].set_cpu_count(int(value))
        except Exception:  # only a speed matter
            pass


def _serve(conn) -> None:
    with conn:
        request = json.loads(conn.makefile("r").readline())
        pid = os.fork()
        if pid == 0:
            _child(request)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        except OSError:
            pass


def _watch_parent(parent: int) -> None:
    """The sandbox server went away (even by SIGKILL, even while we imported): so does its zygote."""

    def gone() -> bool:
        if os.getppid() != parent:
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        return False

    def watch():
        while not gone():
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _warm_service_models() -> None:
    """boto3's default session with the models scripts and functions use already parsed (the SageMaker one
    is megabytes of JSON): a forked child's boto3.client() then costs milliseconds. Nothing account- or
    credential-specific is resolved here; the child's environment decides those when it makes a client."""
    try:
        boto3 = importlib.import_module("boto3")
        boto3.setup_default_session()
        for service in ("sagemaker", "s3"):
            boto3.DEFAULT_SESSION._session.get_service_model(service)
    except Exception:  # only a speed-up
        pass


def main(socket_path: str, parent: int) -> int:
    _watch_parent(parent)

    for module in PRELOADED:
        try:
            importlib.import_module(module)
        except Exception:  # a missing library only means its users import it themselves
            pass
    _warm_service_models()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = socket_path + ".tmp"
    server.bind(tmp)
    server.listen(16)
    os.replace(tmp, socket_path)  # the path appears only once the zygote accepts
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
