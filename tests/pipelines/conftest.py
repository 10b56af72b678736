"""Fixtures for the pipelines tests: the sample data, one preprocess/train/evaluate run shared by the
step tests, the step scripts loaded as modules (they are programs: `main(argv)`), and one build of the
definitions shared by the definition tests."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = REPO / "pipelines" / "steps"


def load_step(name: str):
    """A step script as a module, as the container runs it (its directory first on sys.path)."""
    if str(STEPS) not in sys.path:
        sys.path.insert(0, str(STEPS))
    module_name = f"pipeline_step_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, STEPS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture(scope="session")
def steps():
    class Steps:
        preprocess = load_step("preprocess")
        train = load_step("train")
        evaluate = load_step("evaluate")
        drift_check = load_step("drift_check")
        inference = load_step("inference")
        validate = load_step("validate")

    return Steps


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """The three built-in CSVs written to disk: training part, clean batch, drifted batch."""
    from pipelines.datasets import BUILTINS, builtin_csv

    directory = tmp_path_factory.mktemp("sample-data")
    for name in BUILTINS:
        (directory / f"{name}.csv").write_bytes(builtin_csv(name))
    return directory


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("steps")


@pytest.fixture(scope="session")
def preprocessed(steps, sample_data, workdir):
    out = workdir / "preprocess"
    argv = [
        "--input",
        str(sample_data / "breast-cancer.csv"),
        "--dataset-uri",
        "s3://bucket/breast-cancer.csv",
        "--failure-file",
        str(out / "failure"),
    ]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(out / d)]
    assert steps.preprocess.main(argv) == 0
    return out


@pytest.fixture(scope="session")
def trained(steps, preprocessed, workdir, capsys_session):
    model_dir = workdir / "model"
    argv = [
        "--train",
        str(preprocessed / "train"),
        "--validation",
        str(preprocessed / "validation"),
        "--model-dir",
        str(model_dir),
        "--num_round",
        "30",
        "--nthread",
        "1",
    ]
    with capsys_session() as captured:
        assert steps.train.main(argv) == 0
    return model_dir, captured.text


@pytest.fixture(scope="session")
def capsys_session():
    """stdout capture usable from session fixtures (pytest's capsys is function-scoped)."""
    import contextlib
    import io

    class Captured:
        text = ""

    @contextlib.contextmanager
    def capture():
        captured, buffer = Captured(), io.StringIO()
        with contextlib.redirect_stdout(buffer):
            yield captured
        captured.text = buffer.getvalue()

    return capture


@pytest.fixture(scope="session")
def model_tarball(trained, workdir):
    """The model directory as SageMaker uploads it: model.tar.gz."""
    import tarfile

    model_dir, _ = trained
    archive_dir = workdir / "model-artifact"
    archive_dir.mkdir(exist_ok=True)
    with tarfile.open(archive_dir / "model.tar.gz", "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    return archive_dir


@pytest.fixture(scope="session")
def dev_environment():
    from mlops_core.config import load_environment

    return load_environment("dev", env_dir=REPO / "environments")


@pytest.fixture(scope="session")
def prod_environment():
    from mlops_core.config import load_environment

    return load_environment("prod", env_dir=REPO / "environments")


@pytest.fixture(scope="session")
def dev_specs(dev_environment):
    from pipelines.definitions import build_pipelines

    return build_pipelines(dev_environment)


@pytest.fixture(scope="session")
def prod_specs(prod_environment):
    from pipelines.definitions import build_pipelines

    return build_pipelines(prod_environment)


@pytest.fixture
def prod_workload(sandbox, prod_env):
    """prod as its own admin, with the roles the specs name, the artifacts bucket and the KMS alias."""
    from mlops_core.session import Sessions

    s = Sessions(prod_env)
    ensure_prod_basics(s, prod_env)
    return s


def ensure_prod_basics(s, env):
    iam = s.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}
        ],
    }
    for role in ("execution", "lambda"):
        iam.create_role(RoleName=env.role_arn(role).split("/")[-1], AssumeRolePolicyDocument=json.dumps(trust))
    s.client("s3").create_bucket(Bucket=env.buckets.artifacts)
    kms = s.client("kms")
    key = kms.create_key(Description="prod")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=env.kms_key_alias, TargetKeyId=key)
