"""A registry group with 1,000 versions: status, lineage, approve and the inference Lambda's lookup read
all of it (every page, oldest and newest) in a number of API calls that does not grow per version.

One module-scoped group (tests/promote/many_versions.py) serves every test here; the tests that only
read run first, the ones that pin and approve last. bench/registry.py times the same operations.
"""

from __future__ import annotations

import pytest

from mlops_core.session import Sessions
from promote import pins, registry
from tests.conftest import REPO
from tests.iam.conftest import trust_account_root_too
from tests.pipelines.test_latest_approved import load_handler
from tests.promote.many_versions import VERSIONS, ApiCalls, ManyVersions, auc_of, status_of

NEWEST_APPROVED = max(v for v in range(1, VERSIONS) if status_of(v) == "Approved")


@pytest.fixture(scope="module")
def many(sandbox_server):
    from iam.bootstrap import bootstrap
    from mlops_core.config import load_environment
    from sandbox import client

    client.reset()
    prod = load_environment("prod", env_dir=REPO / "environments")
    group = ManyVersions(prod)
    bootstrap(prod, "prod", apply=True, sessions=Sessions(prod))
    admin = Sessions(prod)
    trust_account_root_too(admin, prod.role_arn("lambda"))
    lambda_role = admin.assume(prod.role_arn("lambda"), purpose="test-lambda", source=admin.in_account(prod.account_id))
    group.lambda_sagemaker = admin.client("sagemaker", lambda_role)
    return group  # the next module's sandbox starts from a reset, as this one did


def _as(env, person):
    return Sessions(env, identity=person)


def _served(many) -> tuple[str, ApiCalls]:
    handler = load_handler()
    with ApiCalls() as calls:
        package = handler.latest_approved_package(many.lambda_sagemaker, many.env.model_package_group_arn, "prod")
    return handler.outputs_for(package)["model_version"], calls


def test_status_lists_every_version_in_one_search_page_per_hundred(many):
    with ApiCalls() as calls:
        rows = pins.status(many.env, _as(many.env, "dave"))
    assert [r["version"] for r in rows] == list(range(VERSIONS, 0, -1))
    assert [r["status"] for r in rows[1:]] == [status_of(v) for v in range(VERSIONS - 1, 0, -1)]
    assert rows[-1]["metrics"] == {"auc": auc_of(1)}  # as recorded at registration, no report read
    assert (
        rows[0]["metrics"]["auc"] == 0.981
        and rows[0]["registered_by"] == "pipeline:" + (many.world.executions[VERSIONS].rsplit("/", 1)[1])
    )
    # Search answers 100 full records a page; only the newest version, which records no metrics,
    # has its evaluation report read; nothing is described one by one
    assert calls.calls["Search"] == VERSIONS // 100, calls
    assert calls.calls["DescribeModelPackage"] == 0 and calls.calls["GetObject"] == 1, calls
    assert calls.total < 25, calls
    # what `promote status` prints: the group, the header, then every version from the newest down
    shown = registry.render_status(many.env, rows).splitlines()
    assert [line.split()[0] for line in shown[2:]] == [str(v) for v in range(VERSIONS, 0, -1)]


def test_lineage_of_the_oldest_and_the_newest_describes_one_version(many):
    for version, auc in ((1, 0.95), (VERSIONS, 0.981)):
        with ApiCalls() as calls:
            info = pins.lineage(many.env, _as(many.env, "dave"), version)
        assert (info["version"], info["metrics"]["auc"]) == (version, auc)
        assert info["baseline"]["item_count"] == 398
        assert calls.calls["DescribeModelPackage"] == 1, calls
        assert not {"ListModelPackages", "Search"} & set(calls.calls), calls


def test_inference_reads_the_pin_directly_and_otherwise_the_newest_approved(many):
    served, calls = _served(many)
    assert served == str(NEWEST_APPROVED)
    # the group's pin index (on version 1), the newest Approved summary, its description
    assert calls.calls == {"DescribeModelPackage": 2, "ListModelPackages": 1}, calls

    pinned = 500
    assert status_of(pinned) == "Approved"
    with ApiCalls() as pinning:
        pins.pin(many.env, _as(many.env, "alex"), pinned, "v990 mislabels the new region")
    assert pinning.calls["UpdateModelPackage"] == 2 and pinning.calls["Search"] == VERSIONS // 100, pinning
    served, calls = _served(many)
    assert served == str(pinned)
    assert calls.calls == {"DescribeModelPackage": 2}, calls  # the index, the pinned version

    with ApiCalls() as unpinning:  # the index now names the pin: nothing is searched
        pins.unpin(many.env, _as(many.env, "alex"), "fixed upstream")
    assert "Search" not in unpinning.calls, unpinning
    assert _served(many)[0] == str(NEWEST_APPROVED)


def test_approving_the_newest_version_reads_no_other_version(many):
    with ApiCalls() as calls:
        result = registry.decide(many.env, _as(many.env, "bob"), VERSIONS, "approve", "beats v990 on AUC")
    assert result["changed"] and result["status"] == "Approved"
    assert calls.calls["DescribeModelPackage"] == 1 and calls.calls["UpdateModelPackage"] == 1, calls
    assert not {"ListModelPackages", "Search"} & set(calls.calls), calls
    assert _served(many)[0] == str(VERSIONS)


def test_no_pin_is_recorded_once_the_version_holding_the_index_is_gone(many):
    """Last: it deletes version 1, whose metadata holds the group's pin index."""
    from promote.registry import package_arn

    many.world.sm.delete_model_package(ModelPackageName=package_arn(many.env, 1))
    with pytest.raises(pins.PinRefused, match="holds the group's pin index, was deleted"):
        pins.pin(many.env, _as(many.env, "alex"), 500, "v1000 misbehaves")
    assert "pinned:prod" not in many.world.describe(500)["CustomerMetadataProperties"]
    assert _served(many)[0] == str(VERSIONS)  # the newest Approved, as before
