"""The checks run on N Processing instances as SageMaker runs them, and merged, decide exactly what one
instance decides on the same batch: same numbers, same verdict, same violations, same files.

SageMaker's per-instance contract, as the tests give it: with a `ShardedByS3Key` input each instance holds
only its share of the batch's objects under its local input path, "approximately 1/n of the number of S3
objects", and an instance gets none when there are fewer objects than instances
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html,
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html); each instance reads
/opt/ml/config/resourceconfig.json, `{"current_host": "algo-1", "hosts": ["algo-1", "algo-2", "algo-3"]}`
(https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html#byoc-config),
here given by SM_RESOURCE_CONFIG or --resource-config. Which objects land on which instance is not
documented: the tests deal them in turn and also unevenly, with an empty instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.pipelines.conftest import STEPS


def read(path):
    return json.loads(path.read_text())


def split_batch(source, directory, sizes):
    """`source` (a CSV with header) as objects part-00.csv, part-01.csv, ... of `sizes` rows each (the rest
    in the last), every object with the header."""
    lines = source.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    directory.mkdir(parents=True, exist_ok=True)
    start = 0
    names = []
    for i, size in enumerate([*sizes, len(rows)]):
        part = rows[start : start + size] if i < len(sizes) else rows[start:]
        start += len(part)
        name = f"part-{i:02d}.csv"
        (directory / name).write_text("\n".join([header, *part]) + "\n")
        names.append(name)
    assert start == len(rows)
    return names


def deal(names, hosts, uneven=False):
    """Objects to hosts: in turn, or (uneven) all but one object on the first host and the last host empty."""
    if uneven:
        return {hosts[0]: names[:-1], hosts[1]: names[-1:], **{h: [] for h in hosts[2:]}}
    return {h: names[i :: len(hosts)] for i, h in enumerate(hosts)}


def instances(root, objects, dealt):
    """Each host's local input (only its objects) and resourceconfig.json, as the engine gives them."""
    hosts = list(dealt)
    made = {}
    for host, names in dealt.items():
        local = root / host / "input"
        local.mkdir(parents=True)
        for name in names:
            shutil.copy(objects / name, local / name)
        config = root / host / "resourceconfig.json"
        config.write_text(json.dumps({"current_host": host, "hosts": hosts}))
        made[host] = (local, config)
    return made


def hosts(n):
    return [f"algo-{i}" for i in range(1, n + 1)]


def drift_args(preprocessed, *extra):
    baseline = str(preprocessed / "baseline")
    return ["--baseline-statistics", baseline, "--baseline-constraints", baseline, *extra]


DRIFT_OUTPUTS = ("drift_check.json", "constraint_violations.json", "statistics.json")


def assert_same_files(one, merged, names):
    for name in names:
        assert read(merged / name) == read(one / name), name


def test_drift_check_on_three_instances_decides_what_one_decides(steps, sample_data, preprocessed, tmp_path):
    """Three instance processes, each with its resourceconfig.json and its share of a drifted batch of five
    uneven objects, then the merge: the same files, number for number, as one instance reading all five."""
    objects = tmp_path / "batch"
    split_batch(sample_data / "breast-cancer-batch-drifted.csv", objects, [3, 40, 1, 50])
    one = tmp_path / "one"
    assert steps.drift_check.main(drift_args(preprocessed, "--input", str(objects), "--output", str(one))) == 0
    assert read(one / "drift_check.json")["drifted_features"]  # a verdict worth comparing

    partials = tmp_path / "partials"
    script = [sys.executable, str(STEPS / "drift_check.py")]
    running = []
    for local, config in instances(tmp_path, objects, deal(sorted(os.listdir(objects)), hosts(3))).values():
        env = {**os.environ, "SM_RESOURCE_CONFIG": str(config)}
        argv = ["--input", str(local), "--shard-output", str(partials), "--output", str(tmp_path / "shard-output")]
        running.append(
            subprocess.Popen(
                [*script, *drift_args(preprocessed, *argv)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert sorted(os.listdir(partials)) == ["algo-1.json", "algo-2.json", "algo-3.json"]
    assert not (tmp_path / "shard-output").exists(), "a shard decides nothing"
    merged = tmp_path / "merged"
    assert (
        steps.drift_check.main(drift_args(preprocessed, "--merge-partials", str(partials), "--output", str(merged)))
        == 0
    )
    assert_same_files(one, merged, DRIFT_OUTPUTS)


@pytest.mark.parametrize("batch", ["breast-cancer-batch.csv", "breast-cancer-batch-drifted.csv"])
def test_drift_check_sharded_two_and_three_ways_equals_one_instance(steps, sample_data, preprocessed, tmp_path, batch):
    """Clean and drifted batches, dealt in turn and unevenly (one instance with no object at all): the merge
    writes exactly what one instance writes; and the one file unsplit gives the same verdict and figures."""
    objects = tmp_path / "batch"
    names = split_batch(sample_data / batch, objects, [30, 7, 60])
    one = tmp_path / "one"
    assert steps.drift_check.main(drift_args(preprocessed, "--input", str(objects), "--output", str(one))) == 0
    for n, uneven in ((2, False), (3, True)):
        root = tmp_path / f"{n}-{uneven}"
        dealt = deal(names, hosts(n), uneven)
        for local, config in instances(root, objects, dealt).values():
            argv = ["--input", str(local), "--shard-output", str(root / "partials"), "--resource-config", str(config)]
            assert steps.drift_check.main(drift_args(preprocessed, *argv)) == 0
        merged = root / "merged"
        assert (
            steps.drift_check.main(
                drift_args(preprocessed, "--merge-partials", str(root / "partials"), "--output", str(merged))
            )
            == 0
        )
        assert_same_files(one, merged, DRIFT_OUTPUTS)

    whole = tmp_path / "whole"
    assert (
        steps.drift_check.main(drift_args(preprocessed, "--input", str(sample_data / batch), "--output", str(whole)))
        == 0
    )
    split, unsplit = read(one / "drift_check.json"), read(whole / "drift_check.json")
    assert split["distances"] == unsplit["distances"] and split["checks"] == unsplit["checks"]
    assert read(one / "constraint_violations.json") == read(whole / "constraint_violations.json")
    # Means and deviations are float sums in another order: equal within float tolerance.
    for a, b in zip(
        read(one / "statistics.json")["features"], read(whole / "statistics.json")["features"], strict=True
    ):
        a, b = a["numerical_statistics"], b["numerical_statistics"]
        assert a["common"] == b["common"] and a["distribution"] == b["distribution"]
        for figure in ("mean", "sum", "std_dev", "min", "max"):
            assert a[figure] == pytest.approx(b[figure], rel=1e-12), figure


def test_a_merge_refuses_an_incomplete_or_doubled_set_of_partials(steps, sample_data, preprocessed, tmp_path, capsys):
    """A lost partial, an input replicated instead of sharded, partials made with another baseline: each is
    one line and exit 1, and no verdict is written (a verdict on part of a batch would be wrong)."""
    objects = tmp_path / "batch"
    names = split_batch(sample_data / "breast-cancer-batch.csv", objects, [50])
    made = instances(tmp_path, objects, deal(names, hosts(3)))

    def shard(host, partials, local=None, *extra):
        argv = ["--input", str(local or made[host][0]), "--shard-output", str(partials)]
        assert (
            steps.drift_check.main(drift_args(preprocessed, *argv, "--resource-config", str(made[host][1]), *extra))
            == 0
        )

    def merge_fails(partials, message):
        out = tmp_path / "verdict"
        with pytest.raises(SystemExit) as exit_info:
            steps.drift_check.main(drift_args(preprocessed, "--merge-partials", str(partials), "--output", str(out)))
        assert exit_info.value.code == 1
        assert capsys.readouterr().err == f"error: {message}\n"
        assert not out.exists()

    lost = tmp_path / "lost"
    shard("algo-1", lost)
    shard("algo-3", lost)
    merge_fails(lost, f"no partial from host(s) algo-2 in {lost} (the job ran on algo-1, algo-2, algo-3)")

    mixed = tmp_path / "mixed"  # a partial of another job (two instances) among this job's
    shard("algo-1", mixed)
    shard("algo-2", mixed)
    (tmp_path / "other-job.json").write_text(json.dumps({"current_host": "algo-2", "hosts": hosts(2)}))
    argv = ["--input", str(made["algo-3"][0]), "--shard-output", str(tmp_path / "other-job")]
    assert (
        steps.drift_check.main(drift_args(preprocessed, *argv, "--resource-config", str(tmp_path / "other-job.json")))
        == 0
    )
    shutil.copy(tmp_path / "other-job" / "algo-2.json", mixed / "algo-3.json")
    merge_fails(
        mixed,
        "partial algo-3.json comes from a job on hosts algo-1, algo-2, not from the job on algo-1, algo-2, algo-3 "
        "the other partials come from",
    )

    replicated = tmp_path / "replicated"
    for host in hosts(3):
        shard(host, replicated, objects)
    merge_fails(
        replicated,
        "object part-00.csv is in the partials of algo-1 and algo-2: the input was replicated to every instance, "
        "not sharded by S3 key",
    )

    other = tmp_path / "other"
    for host in hosts(3):
        shard(host, other, None, "--missing-values", "NA")
    merge_fails(other, "partial algo-1.json was computed with another baseline, contract or options than this merge")

    nothing = tmp_path / "nothing"
    for host in hosts(3):
        shard(host, nothing, tmp_path / "no-such-dir")
    merge_fails(nothing, "the batch holds no object: every instance's input was empty")


def validate_args(preprocessed, *extra):
    return ["--baseline-statistics", str(preprocessed / "baseline"), "--id-column", "patient", *extra]


def records_of(*directories):
    """Every records file under the directories (as the instances' outputs land under one S3 prefix)."""
    found = {}
    for directory in directories:
        for path in sorted(directory.rglob("*")) if directory.exists() else []:
            if path.is_file():
                assert path.name not in found, f"two instances wrote {path.name}"
                found[path.name] = path.read_bytes()
    return found


def with_ids(sample_data, path, edit=None):
    """The clean batch with a `patient` id column (text that looks like numbers), optionally edited."""
    lines = (sample_data / "breast-cancer-batch.csv").read_text().splitlines()
    rows = [lines[0].split(",") + ["patient"]] + [
        line.split(",") + [f"00{n}"] for n, line in enumerate(lines[1:], start=1)
    ]
    if edit:
        edit(rows[0], rows)
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


def break_contract(header, rows):
    """Bad numbers in several objects, a missing value where the baseline's contract needs a number, and a
    record id that repeats across objects (rows 20 and 100 land on different instances)."""
    for r in (3, 40, 77, 90):
        rows[r][header.index("mean_texture")] = "sixty"
    rows[100][header.index("patient")] = rows[20][header.index("patient")]


@pytest.mark.parametrize("edit", [None, break_contract], ids=["clean", "violating"])
def test_validation_sharded_two_and_three_ways_equals_one_instance(steps, sample_data, preprocessed, tmp_path, edit):
    """The merged verdict, violations (counts, first examples with their object and row, repeated record
    ids across instances) and message are one instance's; each instance writes the records of its own
    objects, and together they are one instance's records, file for file."""
    objects = tmp_path / "batch"
    names = split_batch(with_ids(sample_data, tmp_path / "whole.csv", edit), objects, [25, 5, 45])
    one = tmp_path / "one"
    argv = ["--input", str(objects), "--output", str(one), "--records-dir", str(one / "records")]
    assert steps.validate.main(validate_args(preprocessed, *argv)) == 0
    summary = read(one / "validation.json")
    if edit:
        assert summary["violation_count"] == 2 and records_of(one / "records") == {}  # a failed batch is not scored
        assert "'sixty' (row 3 of part-00.csv)" in summary["message"]
        assert (
            "repeats in row 25 of part-03.csv" in read(one / "contract_violations.json")["violations"][1]["description"]
        )
    else:
        assert summary["violation_count"] == 0 and summary["rows"] == 114
        assert summary["message"] == "the batch (4 objects): 114 row(s) meet the contract the baseline implies"
        assert sorted(records_of(one / "records")) == names
        first = records_of(one / "records")["part-01.csv"].decode().splitlines()[0]
        assert first.startswith("0026,")  # the id column's value first: row 1 of part-01 is the batch's 26th
    for n, uneven in ((2, False), (3, True)):
        root = tmp_path / f"{n}-{uneven}"
        made = instances(root, objects, deal(names, hosts(n), uneven))
        for host, (local, config) in made.items():
            argv = ["--input", str(local), "--shard-output", str(root / "partials"), "--resource-config", str(config)]
            argv += ["--records-dir", str(root / host / "records")]
            assert steps.validate.main(validate_args(preprocessed, *argv)) == 0
        merged = root / "merged"
        argv = ["--merge-partials", str(root / "partials"), "--output", str(merged)]
        assert steps.validate.main(validate_args(preprocessed, *argv)) == 0
        assert_same_files(one, merged, ("validation.json", "contract_violations.json"))
        if not edit:
            assert records_of(*(root / h / "records" for h in made)) == records_of(one / "records")


@pytest.fixture(scope="module")
def quality():
    from tests.pipelines.conftest import load_step

    return load_step("quality")


def scored_batch(root, rows=240, parts=4, seed=7):
    """A scored batch as the transform leaves it (parts of `record_id,probability,label,model_version`,
    probabilities rounded to 6 places, some tied), its labels under the ground-truth prefix, and a baseline
    evaluation report. Returns (labels file, predictions prefix, baseline file, (truth, probabilities))."""
    import numpy as np

    from tests.pipelines.conftest import load_step

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=rows)
    probabilities = np.round(np.clip(0.3 * truth + 0.7 * rng.random(rows), 0, 1), 2 if seed % 2 else 6)
    batch = root / "predictions" / "model-version=2" / "exec-1"
    batch.mkdir(parents=True)
    for k, chunk in enumerate(np.array_split(np.arange(rows), parts)):
        lines = [f"r{i},{probabilities[i]},{int(probabilities[i] >= 0.5)},2" for i in chunk]
        (batch / f"part-{k}.csv.out").write_text("\n".join(lines) + "\n")
    labels = root / "ground-truth" / "exec-1" / "labels.csv"
    labels.parent.mkdir(parents=True)
    order = rng.permutation(rows)  # labels arrive in their own order
    labels.write_text("id,label\n" + "".join(f"r{i},{truth[i]}\n" for i in order))
    report = load_step("evaluate").binary_classification_metrics(truth, probabilities)
    baseline = root / "evaluation.json"
    baseline.write_text(json.dumps({"binary_classification_metrics": report, "test_rows": 200}))
    return labels, root / "predictions", baseline, ([int(truth[i]) for i in order], [probabilities[i] for i in order])


QUALITY_OUTPUTS = ("quality.json", "constraint_violations.json")


def quality_args(labels, predictions, baseline, *extra):
    argv = ["--labels-uri", str(labels), "--ground-truth-prefix", "ground-truth/"]
    return [*argv, "--predictions-prefix", str(predictions), "--baseline", str(baseline), *extra]


@pytest.mark.parametrize("seed", [7, 8], ids=["tied-probabilities", "distinct-probabilities"])
def test_model_quality_sharded_equals_one_instance(quality, tmp_path, seed):
    """Every instance gets the same arguments (the inputs come from S3, not sharded by SageMaker) and takes
    its share of the prediction parts by its place among the hosts; two, three and five instances (one with
    no part) merge into the metrics, verdict and files of one instance, which are the metrics of the raw
    joined records."""
    from tests.pipelines.conftest import load_step

    labels, predictions, baseline, (truth, probabilities) = scored_batch(tmp_path, seed=seed)
    one = tmp_path / "one"
    assert quality.main(quality_args(labels, predictions, baseline, "--output", str(one))) == 0
    metrics = read(one / "statistics.json")["binary_classification_metrics"]
    assert metrics == load_step("evaluate").binary_classification_metrics(truth, probabilities)
    for n in (2, 3, 5):
        root = tmp_path / f"n{n}"
        for host in hosts(n):
            config = root / f"{host}.resourceconfig.json"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps({"current_host": host, "hosts": hosts(n)}))
            argv = ["--shard-output", str(root / "partials"), "--resource-config", str(config)]
            assert quality.main(quality_args(labels, predictions, baseline, *argv)) == 0
        merged = root / "merged"
        argv = ["--merge-partials", str(root / "partials"), "--output", str(merged)]
        assert quality.main(quality_args(labels, predictions, baseline, *argv)) == 0
        assert_same_files(one, merged, QUALITY_OUTPUTS)
        assert read(merged / "statistics.json")["binary_classification_metrics"] == metrics


def test_model_quality_merge_names_labels_no_instance_scored(quality, tmp_path, capsys, monkeypatch):
    """Labels no instance could join fail the merge with the single-instance line. (SM_RESOURCE_CONFIG may
    also hold the document itself, as SageMaker's training toolkit sets it.)"""
    labels, predictions, baseline, _ = scored_batch(tmp_path)
    labels.write_text(labels.read_text() + "ghost-1,1\nghost-2,0\n")
    root = tmp_path / "sharded"
    for host in hosts(2):
        monkeypatch.setenv("SM_RESOURCE_CONFIG", json.dumps({"current_host": host, "hosts": hosts(2)}))
        argv = ["--shard-output", str(root / "partials")]
        assert quality.main(quality_args(labels, predictions, baseline, *argv)) == 0
    assert sorted(os.listdir(root / "partials")) == ["algo-1.json", "algo-2.json"]
    messages = []
    for extra in (
        ["--output", str(tmp_path / "one")],
        ["--merge-partials", str(root / "partials"), "--output", str(root / "out")],
    ):
        with pytest.raises(SystemExit) as exit_info:
            quality.main(quality_args(labels, predictions, baseline, *extra))
        assert exit_info.value.code == 1
        messages.append(capsys.readouterr().err)
    expected = "2 id(s) are not among the 240 record(s) batch exec-1 scored: 'ghost-1', 'ghost-2'"
    assert messages[0] == messages[1] == f"error: labels labels.csv: {expected}\n"
    assert not (root / "out").exists() and not (tmp_path / "one").exists()


def test_objects_in_sub_folders_merge_in_the_order_one_instance_reads_them(steps, sample_data, preprocessed, tmp_path):
    """Objects are ordered by their name as text everywhere ("p-1.csv" before "p/0.csv"), so the first
    examples a violation shows are the same whichever instances read which objects."""
    lines = (sample_data / "breast-cancer-batch.csv").read_text().splitlines()
    texture = lines[0].split(",").index("mean_texture")

    def bad(row):
        values = row.split(",")
        values[texture] = "sixty"
        return ",".join(values)

    objects = tmp_path / "batch"
    (objects / "p").mkdir(parents=True)
    (objects / "p" / "0.csv").write_text("\n".join([lines[0], lines[1], bad(lines[2])]) + "\n")
    (objects / "p-1.csv").write_text("\n".join([lines[0], bad(lines[3]), lines[4]]) + "\n")
    one = tmp_path / "one"
    argv = ["--input", str(objects), "--output", str(one), "--baseline-statistics", str(preprocessed / "baseline")]
    assert steps.validate.main(argv) == 0
    assert "'sixty' (row 1 of p-1.csv), 'sixty' (row 2 of p/0.csv)" in read(one / "validation.json")["message"]
    for host, name in (("algo-1", "p/0.csv"), ("algo-2", "p-1.csv")):
        local = tmp_path / host / "input"
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(objects / name, local / name)
        config = tmp_path / host / "resourceconfig.json"
        config.write_text(json.dumps({"current_host": host, "hosts": hosts(2)}))
        argv = ["--input", str(local), "--shard-output", str(tmp_path / "partials"), "--resource-config", str(config)]
        assert steps.validate.main([*argv, "--baseline-statistics", str(preprocessed / "baseline")]) == 0
    merged = tmp_path / "merged"
    argv = ["--merge-partials", str(tmp_path / "partials"), "--output", str(merged)]
    assert steps.validate.main([*argv, "--baseline-statistics", str(preprocessed / "baseline")]) == 0
    assert_same_files(one, merged, ("validation.json", "contract_violations.json"))
