"""Print the environments and the accounts, roles and names each resolves to (a quick review aid)."""

from __future__ import annotations

import sys

from promote.config import list_environments, load_environment
from promote.errors import ToolkitError


def main(argv=None) -> int:
    try:
        for name in list_environments():
            env = load_environment(name)
            print(f"{env.name}: backend {env.backend}, region {env.region}, account {env.account_id} ({env.kind})")
            print(f"  registry account {env.registry_account_id}, group {env.model_package_group_arn}")
            print(f"  pipelines: {', '.join(env.pipelines.values())}; schedule {env.schedule}")
            print(f"  execution role {env.role_arn('execution')}")
            print(f"  jenkins deploys as {env.role_arn('jenkins')} (trusting {env.jenkins.principal_arn})")
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
