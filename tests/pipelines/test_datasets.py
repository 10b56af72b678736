"""Where a dataset named in the environment lands in S3, and the built-in sample data itself."""

from __future__ import annotations

import hashlib

import pytest

from mlops_core.errors import ConfigError
from pipelines.datasets import BUILTINS, DRIFTED_FEATURES, builtin_csv, locate


def test_builtin_data_is_reproducible_and_split_without_overlap():
    train, part2, batch, drifted = (builtin_csv(name) for name in BUILTINS)
    assert builtin_csv("breast-cancer") == train
    # the second training part is the batch with its diagnoses, which arrive after it was scored
    assert [row.rsplit(",", 1)[0] for row in part2.decode().splitlines()] == batch.decode().splitlines()
    train_rows, batch_rows = train.decode().splitlines(), batch.decode().splitlines()
    assert train_rows[0].endswith(",diagnosis") and "diagnosis" not in batch_rows[0]
    assert len(train_rows) - 1 + len(batch_rows) - 1 == 569  # the whole bundled dataset, once
    features = {row.rsplit(",", 1)[0] for row in train_rows[1:]}
    assert features.isdisjoint(batch_rows[1:])
    header = batch_rows[0].split(",")
    changed = {
        header[i]
        for row_a, row_b in zip(batch_rows[1:], drifted.decode().splitlines()[1:])
        for i, (a, b) in enumerate(zip(row_a.split(","), row_b.split(",")))
        if a != b
    }
    assert changed == set(DRIFTED_FEATURES)


def test_datasets_are_uploaded_content_addressed(dev_env, tmp_path):
    builtin = locate(dev_env, "builtin:breast-cancer", "training.dataset")
    digest = hashlib.sha256(builtin_csv("breast-cancer")).hexdigest()
    assert builtin.s3_uri == f"s3://{dev_env.buckets.artifacts}/datasets/breast-cancer/{digest[:16]}/breast-cancer.csv"
    [upload] = builtin.uploads
    assert upload.s3_uri == builtin.s3_uri and upload.body == builtin_csv("breast-cancer")

    assert locate(dev_env, "s3://their-bucket/data/x.csv", "training.dataset").uploads == ()
    own = tmp_path / "mammography.csv"
    own.write_bytes(b"a,Severity\n1,0\n")
    located = locate(dev_env, str(own), "training.dataset")
    assert located.s3_uri.endswith(
        f"/datasets/mammography/{hashlib.sha256(own.read_bytes()).hexdigest()[:16]}/mammography.csv"
    )


def test_unknown_or_unreadable_datasets_are_config_errors(dev_env, tmp_path):
    known = (
        r"\(known: builtin:breast-cancer, builtin:breast-cancer-part2, builtin:breast-cancer-batch, "
        r"builtin:breast-cancer-batch-drifted, builtin:breast-cancer-parts\)"
    )
    with pytest.raises(
        ConfigError, match=r"dev.yaml: training.dataset: 'builtin:iris' is not a built-in dataset " + known
    ):
        locate(dev_env, "builtin:iris", "training.dataset")
    with pytest.raises(ConfigError, match=r"training.dataset: cannot read '.*missing.csv': No such file or directory"):
        locate(dev_env, str(tmp_path / "missing.csv"), "training.dataset")


def test_folders_globs_and_collections_become_one_prefix_of_parts(dev_env, tmp_path):
    parts = locate(dev_env, "builtin:breast-cancer-parts", "training.dataset")
    assert parts.s3_uri.endswith("/") and "/datasets/breast-cancer-parts/" in parts.s3_uri
    assert [u.s3_uri[len(parts.s3_uri) :] for u in parts.uploads] == ["breast-cancer.csv", "breast-cancer-part2.csv"]
    assert [u.body for u in parts.uploads] == [builtin_csv("breast-cancer"), builtin_csv("breast-cancer-part2")]

    folder = tmp_path / "deliveries"
    (folder / "d1").mkdir(parents=True)
    (folder / "d1" / "part-1.csv").write_bytes(b"a,y\n1,0\n")
    (folder / "d1" / "_SUCCESS").write_bytes(b"")
    (folder / "part-0.csv").write_bytes(b"a,y\n2,1\n")
    located = locate(dev_env, str(folder), "training.dataset")
    assert [u.s3_uri[len(located.s3_uri) :] for u in located.uploads] == ["d1/part-1.csv", "part-0.csv"]
    globbed = locate(dev_env, str(folder / "*.csv"), "training.dataset")
    assert [u.body for u in globbed.uploads] == [b"a,y\n2,1\n"]
    # the same content is the same prefix; changed content a new one
    assert locate(dev_env, str(folder), "training.dataset").s3_uri == located.s3_uri
    (folder / "part-0.csv").write_bytes(b"a,y\n3,1\n")
    assert locate(dev_env, str(folder), "training.dataset").s3_uri != located.s3_uri
    with pytest.raises(ConfigError, match=r"training.dataset: '.*\*.parquet' matches no file"):
        locate(dev_env, str(folder / "*.parquet"), "training.dataset")
