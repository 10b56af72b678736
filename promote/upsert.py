"""Pipeline upsert across accounts: plan create/update/unchanged, apply, start, follow."""

from promote.errors import NotImplementedYet


def run(env, *, which, dry_run, start, wait, params, tags, output, profile=None):
    raise NotImplementedYet("run-pipeline upsert")
