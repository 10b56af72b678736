"""Bootstrap one account: desired state -> plan -> apply. (Built by the bootstrap issue.)"""

from promote.errors import NotImplementedYet


def run_bootstrap(env, account_kind, *, mode, output, profile=None):
    raise NotImplementedYet(f"bootstrap-account --{mode} for the {account_kind} account")
