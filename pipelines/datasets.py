"""Datasets the pipelines read: the built-in sample data and where any dataset lands in S3.

`builtin:breast-cancer` is scikit-learn's bundled Wisconsin diagnostic breast-cancer data (a real,
offline dataset, benign/malignant like the mammography use case), split deterministically into a
training part (with the `diagnosis` target, 1 = malignant) and an inference batch without the
target; `builtin:breast-cancer-batch-drifted` is that batch with some features shifted, which must
trip the drift check. `builtin:breast-cancer-part2` is the batch's rows with their diagnoses, which
arrive after the batch was scored: the second training part of the operating loop, and
`builtin:breast-cancer-parts` both training parts as one dataset of two parts. Built from the
installed scikit-learn on demand, byte-for-byte reproducible.

A dataset spec is `builtin:NAME`, an S3 URI (prefix or object, read as it is when the run starts), or a
local CSV file, folder or glob, uploaded content-addressed (one prefix per content) when the
definition is built.

    python -m pipelines.datasets write DIR     # the CSV files, to look at or to run steps on
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_core.config import Environment
from mlops_core.errors import ConfigError
from pipelines.specs import CodeUpload

TARGET = "diagnosis"
BATCH_FRACTION = 0.2
SPLIT_SEED = 20240601
# Shifted by 1.5 baseline standard deviations (scaled, so values stay positive like the real measurements).
DRIFTED_FEATURES = ("mean_radius", "mean_texture", "worst_area", "mean_smoothness")
DRIFT_SHIFT_STDS = 1.5
BUILTINS = ("breast-cancer", "breast-cancer-part2", "breast-cancer-batch", "breast-cancer-batch-drifted")
# Datasets of several parts, each part a built-in above.
BUILTIN_COLLECTIONS = {"breast-cancer-parts": ("breast-cancer", "breast-cancer-part2")}


@dataclass(frozen=True)
class DatasetLocation:
    """Where a pipeline reads a dataset from (an object or a prefix of parts), and the uploads that must
    put it there first (none for S3 datasets)."""

    s3_uri: str
    uploads: tuple = ()


def _parts():
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    order = np.random.RandomState(SPLIT_SEED).permutation(len(data.target))
    n_batch = round(len(order) * BATCH_FRACTION)
    batch_idx, train_idx = np.sort(order[:n_batch]), np.sort(order[n_batch:])
    # scikit-learn codes malignant as 0; the mammography convention (and ours) is 1 = the finding.
    diagnosis = 1 - data.target
    return data.data, diagnosis, names, train_idx, batch_idx


def _csv(header, rows) -> bytes:
    lines = [",".join(header)]
    lines += [",".join(_number(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(round(value, 6))


def builtin_csv(name: str) -> bytes:
    """The CSV bytes of one built-in dataset (header row; target column only in the training part)."""
    if name not in BUILTINS:
        raise ConfigError(
            f"'builtin:{name}' is not a built-in dataset (known: {', '.join('builtin:' + b for b in BUILTINS)})",
            field="dataset",
        )
    import numpy as np

    features, diagnosis, names, train_idx, batch_idx = _parts()
    if name == "breast-cancer":
        rows = np.column_stack([features[train_idx], diagnosis[train_idx]])
        return _csv([*names, TARGET], rows)
    if name == "breast-cancer-part2":
        rows = np.column_stack([features[batch_idx], diagnosis[batch_idx]])
        return _csv([*names, TARGET], rows)
    batch = features[batch_idx].copy()
    if name == "breast-cancer-batch-drifted":
        std = features[train_idx].std(axis=0)
        mean = features[train_idx].mean(axis=0)
        for feature in DRIFTED_FEATURES:
            j = names.index(feature)
            batch[:, j] = batch[:, j] * (1 + DRIFT_SHIFT_STDS * std[j] / mean[j])
    return _csv(names, batch)


def locate(env: Environment, spec: str, purpose: str) -> DatasetLocation:
    """The S3 URI a pipeline parameter defaults to for `spec` (builtin:NAME, s3://..., or a local CSV file,
    folder or glob).

    Built-in and local datasets are uploaded content-addressed to the artifacts bucket, so changed data is
    a new URI (and a changed definition) while unchanged data costs nothing on re-runs. A folder or glob
    becomes a prefix holding its parts; an S3 URI is used as it is and read when the run starts.
    """

    if spec.startswith("s3://"):
        return DatasetLocation(spec)
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name in BUILTIN_COLLECTIONS:
            files = [(f"{part}.csv", builtin_csv(part)) for part in BUILTIN_COLLECTIONS[name]]
            return _uploaded(env, name, files, folder=True)
        if name not in BUILTINS:
            known = [*BUILTINS, *BUILTIN_COLLECTIONS]
            raise ConfigError(
                f"'{spec}' is not a built-in dataset (known: {', '.join('builtin:' + b for b in known)})",
                source=_shown(env),
                field=purpose,
            )
        return _uploaded(env, name, [(f"{name}.csv", builtin_csv(name))], folder=False)
    path = Path(spec)
    if not path.is_absolute() and env.source is not None and not path.exists():
        path = Path(env.source).parent / path
    if any(ch in spec for ch in "*?["):
        found = sorted(p for p in path.parent.glob(path.name) if p.is_file() and not p.name.startswith(("_", ".")))
        if not found:
            raise ConfigError(f"'{spec}' matches no file", source=_shown(env), field=purpose)
        return _uploaded(env, path.parent.name or "dataset", [(p.name, _read(env, p, purpose)) for p in found], True)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith((".", "_")) for s in p.parts))
        files = [(p.relative_to(path).as_posix(), _read(env, p, purpose)) for p in found]
        if not files:
            raise ConfigError(f"folder '{spec}' holds no file", source=_shown(env), field=purpose)
        return _uploaded(env, path.name, files, folder=True)
    return _uploaded(env, path.stem, [(path.name, _read(env, path, purpose))], folder=False)


def _read(env, path: Path, purpose: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read '{path}': {exc.strerror}", source=_shown(env), field=purpose) from None


def _uploaded(env, name: str, files: list, folder: bool) -> DatasetLocation:
    """Content-addressed location of `files` ((relative name, bytes) pairs): one object, or a prefix of parts."""
    digest = hashlib.sha256()
    for filename, body in files:
        digest.update(filename.encode() + b"\0" + hashlib.sha256(body).digest())
    if not folder:
        digest = hashlib.sha256(files[0][1])
    base = f"s3://{env.buckets.artifacts}/datasets/{name}/{digest.hexdigest()[:16]}"
    uploads = tuple(CodeUpload(f"{base}/{filename}", body) for filename, body in files)
    return DatasetLocation(f"{base}/" if folder else uploads[0].s3_uri, uploads)


def _shown(env) -> str | None:
    return str(env.source) if env.source is not None else None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "write":
        print("usage: python -m pipelines.datasets write DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in BUILTINS:
        (out / f"{name}.csv").write_bytes(builtin_csv(name))
        print(out / f"{name}.csv")
    for name, parts in BUILTIN_COLLECTIONS.items():
        (out / name).mkdir(exist_ok=True)
        for part in parts:
            (out / name / f"{part}.csv").write_bytes(builtin_csv(part))
            print(out / name / f"{part}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
