"""The README's main job: the promotion story on the embedded sandbox, each part through the real CLI."""

from __future__ import annotations

import subprocess
import sys
import time

import click


def _run(title: str, argv: list[str]) -> tuple[int, float]:
    click.secho(f"\n== {title}", bold=True)
    click.echo(f"$ {' '.join(argv)}")
    start = time.monotonic()
    code = subprocess.call(argv)
    return code, time.monotonic() - start


def run_story(env_dir=None) -> int:
    """Run each stage; stop at the first failure. Returns the exit code."""
    stages = [("Start the sandbox and seed the accounts the environments name",
               ["sandbox", "up"] + (["--env-dir", env_dir] if env_dir else [])),
              ("The environments it serves", [sys.executable, "-m", "promote.environments_report"])]
    results = []
    for title, argv in stages:
        code, seconds = _run(title, argv)
        results.append((title, "ok" if code == 0 else f"failed ({code})", seconds))
        if code != 0:
            break
    click.secho("\n== Summary", bold=True)
    for title, outcome, seconds in results:
        click.echo(f"{outcome:<12} {seconds:6.1f}s  {title}")
    return 0 if all(r[1] == "ok" for r in results) else 1
