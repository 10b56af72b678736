"""An apply cut short after any of its write calls (throttling, a denied call, Ctrl-C) leaves a state
from which the next --apply converges, without repeating work or leaving a second KMS key behind.

Each account's apply is cut after its first write, re-run and cut again after the next one, and so
on: every run starts from the state the previous interruption left, i.e. from the cut after write k
of the original apply, for every k. The interrupted runs together must make exactly the writes of one
uninterrupted apply, and a final run must find nothing to do."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.iam.conftest import CallCounter, Interrupted, fresh_session

ACCOUNTS = (("dev", "dev"), ("prod", "prod"), ("registry", "prod"))
# dev has exactly prod's shape (same resource kinds, same order), so cutting prod's and the registry's
# applies covers every kind of write; it halves the time of the slowest test in this folder
CUT = (("prod", "prod"), ("registry", "prod"))


_SESSIONS: dict = {}


class _Relay:
    """One hook per account session (sessions are reused: creating clients on a new one reloads the
    service models), relaying to the counter of the current run."""

    counter = None

    def __call__(self, **kwargs):
        return self.counter(**kwargs)


def _apply(env, kind, sessions, counter):
    from iam.bootstrap import bootstrap

    if kind not in _SESSIONS:
        session, relay = fresh_session(sessions, kind, env), _Relay()
        session.events.register("before-call", relay)
        _SESSIONS[kind] = (session, relay)
    session, relay = _SESSIONS[kind]
    relay.counter = counter
    return bootstrap(env, kind, apply=True, sessions=sessions, session=session)


def _cut_after_each_write(env, kind, sessions) -> list[str]:
    writes: list[str] = []
    for _ in range(100):
        counter = CallCounter(cut_after_writes=1)
        try:
            _apply(env, kind, sessions, counter)
        except Interrupted:
            writes += counter.writes
            continue
        writes += counter.writes  # the run that was not cut: the last write, or none
        if not counter.writes:
            return writes
    pytest.fail(f"{kind}: no convergence after 100 interrupted runs")


@pytest.fixture(scope="module")
def uninterrupted_writes(clean_sandbox, envs, module_sessions):
    """The write calls of one uninterrupted bootstrap of each account, on a clean sandbox; then the
    same accounts applied again."""
    first, second = {}, {}
    for kind, env_name in ACCOUNTS:
        counter = CallCounter()
        _apply(envs[env_name], kind, module_sessions[env_name], counter)
        first[kind] = counter.writes
    for kind, env_name in ACCOUNTS:
        counter = CallCounter()
        result = _apply(envs[env_name], kind, module_sessions[env_name], counter)
        second[kind] = (counter.writes, result)
    from sandbox import client

    client.reset()
    return first, second


def test_second_apply_makes_zero_writes(uninterrupted_writes):
    first, second = uninterrupted_writes
    assert sum(len(w) for w in first.values()) > 30
    for kind, (writes, result) in second.items():
        assert writes == [] and result.writes == 0, kind
        assert result.plan.counts()["unchanged"] == len(result.plan.changes) and result.plan.is_noop


def test_dev_has_the_shape_of_prod_so_cutting_prod_covers_it(envs):
    from iam.desired import desired_state

    shape = [[(type(r).__name__, r.kind) for r in desired_state(envs[k], k).resources] for k in ("dev", "prod")]
    assert shape[0] == shape[1]


def test_apply_cut_after_each_write_converges(uninterrupted_writes, envs, module_sessions):
    uninterrupted_writes = uninterrupted_writes[0]
    with ThreadPoolExecutor(max_workers=len(CUT)) as pool:  # the accounts are independent
        chains = dict(
            zip(
                [k for k, _ in CUT],
                pool.map(lambda a: _cut_after_each_write(envs[a[1]], a[0], module_sessions[a[1]]), CUT),
            )
        )
    for kind, _ in CUT:
        # resources of one wave are written concurrently, so only the order across waves is fixed
        assert sorted(chains[kind]) == sorted(uninterrupted_writes[kind]), (
            f"{kind}: interrupted runs repeated or skipped work"
        )

    for kind, env_name in CUT:
        final = CallCounter()
        result = _apply(envs[env_name], kind, module_sessions[env_name], final)
        assert final.writes == [] and result.plan.is_noop, kind
        sessions = module_sessions[env_name]
        account_id = result.plan.account_id
        keys = sessions.client("kms", sessions.in_account(account_id)).list_keys()["Keys"]
        assert len(keys) == 1, f"{kind}: {len(keys)} KMS keys after interrupted runs"
