"""Write every policy document the bootstrap creates to iam/policies/<account label>/*.json, generated
from the shipped environments, so a pull request shows policy changes as data.

    python -m iam.export            # rewrite the files
    python -m iam.export --check    # exit 1 if the committed files differ from what the code generates
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iam.desired import desired_state
from mlops_core.config import REPO_ROOT, list_environments, load_environment
from mlops_core.errors import ConfigError

POLICIES_DIR = Path(__file__).resolve().parent / "policies"


def generated(env_dir: str | Path | None = None) -> dict[str, str]:
    """{relative path: file text} for every account, from the shipped environment files: each workload
    account (dev, stage, prod) from the environment that runs in it, the registry from each (they must agree)."""

    env_dir = env_dir or REPO_ROOT / "environments"
    files: dict[str, str] = {}
    registry: dict[str, str] = {}
    for name in list_environments(env_dir):
        env = load_environment(name, env_dir=env_dir)
        for kind in (env.account, "registry"):
            docs = {f"{kind}/{file}": render(doc) for file, doc in desired_state(env, kind).documents().items()}
            if kind == "registry":
                if registry and registry != docs:
                    raise ConfigError(
                        "the environments disagree about the registry account (accounts, roles, "
                        "buckets.registry or model_package_group differ)",
                        source=str(env.source),
                    )
                registry = docs
            files.update(docs)
    # examples of settings the shipped environments do not use (a locked-down VPC): their own account's documents
    for path in sorted((Path(env_dir) / "examples").glob("*.yaml")):
        env = load_environment(str(path))
        for file, doc in desired_state(env, env.account).documents().items():
            files[f"examples/{env.name}/{file}"] = render(doc)
    return files


def render(document: dict) -> str:
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files = generated()
    existing = {str(p.relative_to(POLICIES_DIR)): p.read_text() for p in POLICIES_DIR.rglob("*.json")}
    if args.check:
        stale = sorted(set(files) ^ set(existing) | {f for f in files if existing.get(f) != files[f]})
        for f in stale:
            print(f"differs: iam/policies/{f}")
        if stale:
            print("run `python -m iam.export` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for rel in set(existing) - set(files):
        (POLICIES_DIR / rel).unlink()
    for rel, text in files.items():
        path = POLICIES_DIR / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files)} policy documents under {POLICIES_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
