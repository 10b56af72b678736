"""The step scripts as programs on small data: what each writes, in the formats the pipeline relies on."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from pipelines.datasets import DRIFTED_FEATURES
from tests.pipelines.conftest import STEPS


def read(path):
    return json.loads(path.read_text())


def test_preprocess_writes_splits_baseline_and_report(preprocessed, sample_data):
    report = read(preprocessed / "report" / "preprocess.json")
    source = sample_data / "breast-cancer.csv"
    assert report["dataset"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert report["dataset"]["uri"] == "s3://bucket/breast-cancer.csv"
    assert sum(report["splits"].values()) == report["dataset"]["rows"] == 455

    encoded = report["features"]["encoded"]
    for split in ("train", "validation", "test"):
        lines = (preprocessed / split / f"{split}.csv").read_text().splitlines()
        assert lines[0].split(",") == ["label", *encoded]
        assert len(lines) - 1 == report["splits"][split]
        labels = {line.split(",", 1)[0] for line in lines[1:]}
        assert labels == {"0", "1"}, f"{split} split must hold both classes"
    assert (preprocessed / "train" / "preprocessing.json").exists()

    statistics = read(preprocessed / "baseline" / "statistics.json")
    constraints = read(preprocessed / "baseline" / "constraints.json")
    assert statistics["dataset"]["item_count"] == report["splits"]["train"]
    assert [f["name"] for f in statistics["features"]] == report["features"]["numeric"]
    radius = next(f for f in statistics["features"] if f["name"] == "mean_radius")
    assert radius["inferred_type"] == "Fractional"
    numbers = radius["numerical_statistics"]
    assert numbers["common"] == {"num_present": report["splits"]["train"], "num_missing": 0}
    assert numbers["min"] <= numbers["mean"] <= numbers["max"] and numbers["std_dev"] > 0
    buckets = numbers["distribution"]["kll"]["buckets"]
    assert sum(b["count"] for b in buckets) == report["splits"]["train"]
    assert all(a["upper_bound"] == b["lower_bound"] for a, b in itertools.pairwise(buckets))
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Enabled"
    first = constraints["features"][0]
    assert first["completeness"] == 1.0 and first["num_constraints"] == {"is_non_negative": True}


def test_preprocess_encodes_categories_and_missing_markers(steps, tmp_path):
    rows = ["size,colour,outcome"] + [
        f"{i % 7 + (0.5 if i % 3 else 0)},{['red', 'blue', '?'][i % 3]},{i % 2}" for i in range(60)
    ]
    rows[5] = "?,red,1"
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    argv = ["--input", str(tmp_path / "in.csv"), "--target", "outcome", "--categorical", "colour"]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(tmp_path / d)]
    assert steps.preprocess.main(argv) == 0
    header = (tmp_path / "train" / "train.csv").read_text().splitlines()[0]
    assert header == "label,size,colour=blue,colour=red"
    statistics = read(tmp_path / "baseline" / "statistics.json")
    colour = next(f for f in statistics["features"] if f["name"] == "colour")
    assert colour["inferred_type"] == "String"
    assert {b["value"] for b in colour["string_statistics"]["distribution"]["categorical"]["buckets"]} == {
        "red",
        "blue",
    }
    constraints = {c["name"]: c for c in read(tmp_path / "baseline" / "constraints.json")["features"]}
    assert constraints["colour"]["completeness"] < 1.0
    assert constraints["colour"]["string_constraints"]["domains"] == ["blue", "red"]
    train_values = np.loadtxt(tmp_path / "train" / "train.csv", delimiter=",", skiprows=1)
    assert not np.isnan(train_values).any(), "missing values are imputed"


def test_train_produces_a_loadable_model_and_logs_the_tuning_metric(trained, preprocessed):
    import xgboost as xgb

    from pipelines.definitions import METRIC_DEFINITIONS

    model_dir, stdout = trained
    booster = xgb.Booster()
    booster.load_model(str(model_dir / "xgboost-model.json"))
    _, features, names = load_test_split(preprocessed)
    probabilities = booster.predict(xgb.DMatrix(features, feature_names=names))
    assert probabilities.shape == (len(features),) and ((probabilities >= 0) & (probabilities <= 1)).all()
    validation = next(m for m in METRIC_DEFINITIONS if m["Name"] == "validation:auc")
    found = re.findall(validation["Regex"], stdout)
    assert found and 0.5 < float(found[-1]) <= 1.0
    assert (model_dir / "preprocessing.json").exists()


def load_test_split(preprocessed):
    data = np.loadtxt(preprocessed / "test" / "test.csv", delimiter=",", skiprows=1, dtype=np.float32)
    names = (preprocessed / "test" / "test.csv").read_text().splitlines()[0].split(",")[1:]
    return data[:, 0], data[:, 1:], names


def test_evaluate_auc_equals_scikit_learn_on_the_same_probabilities(
    steps, model_tarball, trained, preprocessed, tmp_path
):
    import xgboost as xgb
    from sklearn.metrics import confusion_matrix, precision_score, roc_auc_score

    argv = [
        "--model",
        str(model_tarball),
        "--test",
        str(preprocessed / "test"),
        "--output",
        str(tmp_path),
        "--auc-threshold",
        "0.5",
    ]
    assert steps.evaluate.main(argv) == 0
    report = read(tmp_path / "evaluation.json")
    metrics = report["binary_classification_metrics"]

    labels, features, names = load_test_split(preprocessed)
    booster = xgb.Booster()
    booster.load_model(str(trained[0] / "xgboost-model.json"))
    probabilities = booster.predict(xgb.DMatrix(features, feature_names=names))
    assert metrics["auc"]["value"] == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-12)
    # AUC from probabilities differs from AUC of rounded labels (the reference sample's mistake).
    assert metrics["auc"]["value"] != pytest.approx(roc_auc_score(labels, probabilities >= 0.5), abs=1e-9)
    predicted = probabilities >= 0.5
    assert metrics["precision"]["value"] == pytest.approx(precision_score(labels, predicted))
    (tn, fp), (fn, tp) = confusion_matrix(labels, predicted)
    assert metrics["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    roc = metrics["receiver_operating_characteristic_curve"]
    assert roc["false_positive_rates"][0] == 0.0 and roc["true_positive_rates"][-1] == 1.0
    assert report["decision"] == {**report["decision"], "passed": True, "champion_minimum_auc": 0.0}


def test_evaluate_names_each_threshold_the_model_missed(steps, model_tarball, preprocessed, tmp_path):
    argv = [
        "--model",
        str(model_tarball),
        "--test",
        str(preprocessed / "test"),
        "--output",
        str(tmp_path),
        "--auc-threshold",
        "0.9999",
        "--champion-auc",
        "0.9999",
        "--champion-tolerance",
        "0.0001",
    ]
    assert steps.evaluate.main(argv) == 0
    decision = read(tmp_path / "evaluation.json")["decision"]
    auc = read(tmp_path / "evaluation.json")["binary_classification_metrics"]["auc"]["value"]
    assert decision["passed"] is False
    assert decision["champion_minimum_auc"] == pytest.approx(0.9998)
    assert decision["message"] == (
        f"auc {auc:.4f} is below AucThreshold 0.9999; auc {auc:.4f} is below the "
        "champion's auc 0.9999 minus ChampionTolerance 0.0001 (= 0.9998)"
    )


def drift(steps, sample_data, preprocessed, batch, out, *extra):
    argv = [
        "--input",
        str(batch),
        "--baseline-statistics",
        str(preprocessed / "baseline"),
        "--baseline-constraints",
        str(preprocessed / "baseline"),
        "--output",
        str(out),
        *extra,
    ]
    assert steps.drift_check.main(argv) == 0
    return read(out / "drift_check.json"), read(out / "constraint_violations.json")


def test_drift_check_passes_the_clean_batch(steps, sample_data, preprocessed, tmp_path):
    summary, violations = drift(steps, sample_data, preprocessed, sample_data / "breast-cancer-batch.csv", tmp_path)
    assert summary["violation_count"] == 0 and violations == {"violations": []}
    assert summary["rows"] == 114 and len(summary["distances"]) == 30
    # 30 features x (completeness, non-negativity, distribution), Sidak-corrected to 1% for the batch.
    assert summary["tests"] == 90 and summary["significance"] == 0.01
    assert summary["level_per_test"] == pytest.approx(1 - 0.99 ** (1 / 90))
    assert summary["message"] == "no drift: 114 rows pass 90 test(s) at a false-alarm rate of 0.01 per batch"
    assert (tmp_path / "statistics.json").exists()


def test_drift_check_flags_exactly_the_shifted_features(steps, sample_data, preprocessed, tmp_path):
    summary, violations = drift(
        steps,
        sample_data,
        preprocessed,
        sample_data / "breast-cancer-batch-drifted.csv",
        tmp_path,
        "--model-version",
        "3",
    )
    assert summary["drifted_features"] == sorted(DRIFTED_FEATURES)
    assert {v["constraint_check_type"] for v in violations["violations"]} == {"baseline_drift_check"}
    assert all(set(v) == {"feature_name", "constraint_check_type", "description"} for v in violations["violations"])
    # Each violation says what was observed, against which baseline, and the bound for this batch size.
    radius = next(v for v in violations["violations"] if v["feature_name"] == "mean_radius")
    figures = next(
        c for c in summary["checks"] if c["feature"] == "mean_radius" and c["check"] == "baseline_drift_check"
    )
    train_rows = read(preprocessed / "report" / "preprocess.json")["splits"]["train"]
    baseline = next(
        f for f in read(preprocessed / "baseline" / "statistics.json")["features"] if f["name"] == "mean_radius"
    )
    assert radius["description"].startswith(
        f"distribution distance {figures['observed']:.4f} from the baseline exceeds the bound {figures['bound']:.4f} "
        f"for 114 batch and {train_rows} baseline values (baseline mean "
        f"{baseline['numerical_statistics']['mean']:.4g}, batch mean 18.74)"
    )
    assert figures["p_value"] < summary["level_per_test"] and figures["observed"] > figures["bound"]
    assert summary["message"].startswith("4 violation(s) in 4 feature(s) against the baseline of model version 3")


def _edited_batch(sample_data, path, edit):
    lines = (sample_data / "breast-cancer-batch.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines]
    edit(header, rows)
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


def test_drift_check_reports_structural_violations(steps, sample_data, preprocessed, tmp_path):
    def edit(header, rows):
        drop = header.index("worst_symmetry")
        rows[:] = [[v for i, v in enumerate(r) if i != drop] + ["x"] for r in rows]
        rows[0][-1] = "patient_id"
        rows[3][header.index("mean_texture")] = "abc"  # not a number
        for r in rows[1:41]:
            r[header.index("mean_area")] = "?"  # 40 of 114 missing: far more than the baseline's none
        for r in rows[1:11]:
            r[header.index("mean_radius")] = "-1"  # 10 negatives where the baseline had none

    _, violations = drift(
        steps, sample_data, preprocessed, _edited_batch(sample_data, tmp_path / "b.csv", edit), tmp_path
    )
    found = {(v["feature_name"], v["constraint_check_type"]): v["description"] for v in violations["violations"]}
    assert {
        ("worst_symmetry", "missing_column_check"),
        ("patient_id", "extra_column_check"),
        ("mean_texture", "data_type_check"),
        ("mean_area", "completeness_check"),
        ("mean_radius", "non_negative_check"),
    } <= set(found)
    train_rows = read(preprocessed / "report" / "preprocess.json")["splits"]["train"]
    assert re.match(
        r"completeness 0\.6491 \(74 of 114 rows present\) is below the bound 0\.9\d{3} for the baseline's 1\.0000 "
        rf"\({train_rows} of {train_rows}\) \(p = \S+ < level \S+\)$",
        found[("mean_area", "completeness_check")],
    )
    assert found[("mean_radius", "non_negative_check")].startswith(
        f"10 negative value(s) of 114 (8.77%); the baseline has none in {train_rows}; bound"
    )


def test_drift_check_allows_what_sampling_explains(steps, sample_data, preprocessed, tmp_path):
    """One missing value or one negative in 114 rows is within chance of a baseline that had none in its ~320."""

    def edit(header, rows):
        rows[4][header.index("mean_area")] = "?"
        rows[5][header.index("mean_radius")] = "-1"

    summary, violations = drift(
        steps, sample_data, preprocessed, _edited_batch(sample_data, tmp_path / "b.csv", edit), tmp_path
    )
    assert violations == {"violations": []}
    area = next(c for c in summary["checks"] if c["feature"] == "mean_area" and c["check"] == "completeness_check")
    assert area["observed"] == pytest.approx(113 / 114) and area["baseline"] == 1.0
    # Exchangeable rows: the one missing value lands in the batch with probability 114 / (114 + training rows).
    train_rows = read(preprocessed / "report" / "preprocess.json")["splits"]["train"]
    assert area["p_value"] == pytest.approx(114 / (114 + train_rows))


def test_drift_check_significance_is_the_family_false_alarm_rate(steps, sample_data, preprocessed, tmp_path):
    strict, _ = drift(steps, sample_data, preprocessed, sample_data / "breast-cancer-batch.csv", tmp_path / "a")
    loose, _ = drift(
        steps,
        sample_data,
        preprocessed,
        sample_data / "breast-cancer-batch.csv",
        tmp_path / "b",
        "--significance",
        "0.2",
    )
    assert loose["level_per_test"] == pytest.approx(1 - 0.8 ** (1 / 90))
    assert loose["level_per_test"] > strict["level_per_test"]


def test_drift_check_result_does_not_depend_on_chunk_size(steps, sample_data, preprocessed, tmp_path):
    batch = sample_data / "breast-cancer-batch-drifted.csv"
    whole, _ = drift(steps, sample_data, preprocessed, batch, tmp_path / "one")
    chunked, _ = drift(steps, sample_data, preprocessed, batch, tmp_path / "many", "--chunk-rows", "7")
    assert chunked["distances"] == whole["distances"] and chunked["violation_count"] == whole["violation_count"]


def test_inference_handler_scores_with_and_without_header(steps, trained, sample_data, monkeypatch):
    monkeypatch.setenv("MODEL_VERSION", "7")
    handler = steps.inference
    model = handler.model_fn(str(trained[0]))
    body = (sample_data / "breast-cancer-batch.csv").read_bytes()
    with_header = handler.output_fn(handler.predict_fn(handler.input_fn(body, "text/csv"), model), "text/csv")
    headerless = body.split(b"\n", 1)[1]
    without = handler.output_fn(handler.predict_fn(handler.input_fn(headerless, "text/csv"), model), "text/csv")
    assert with_header == without
    import xgboost as xgb

    frame = handler.input_fn(body, "text/csv")
    expected = model.booster.predict(
        xgb.DMatrix(model.transform.matrix(frame), feature_names=model.transform.encoded_columns)
    )
    assert [round(float(p), 6) for p in expected] == [float(line.split(",")[0]) for line in with_header.splitlines()]
    lines = with_header.splitlines()
    assert len(lines) == 114
    probability, label, version = lines[0].split(",")
    assert 0 <= float(probability) <= 1 and label == str(int(float(probability) >= 0.5)) and version == "7"
    with pytest.raises(ValueError, match="unsupported content type application/json"):
        handler.input_fn(body, "application/json")


def test_predictions_carry_the_record_id_the_validation_step_wrote(
    steps, trained, sample_data, preprocessed, monkeypatch, tmp_path
):
    """The configured id column is passed through; without one the row number (header excluded) is the id."""
    handler = steps.inference
    monkeypatch.setenv("MODEL_VERSION", "7")
    model = handler.model_fn(str(trained[0]))
    plain = handler.output_fn(
        handler.predict_fn(handler.input_fn((sample_data / "breast-cancer-batch.csv").read_bytes(), "text/csv"), model),
        "text/csv",
    ).splitlines()

    lines = (sample_data / "breast-cancer-batch.csv").read_text().splitlines()
    # The id column anywhere in the batch, here last, with ids that look like numbers but are text.
    with_ids = [lines[0] + ",patient"] + [f"{line},00{n}" for n, line in enumerate(lines[1:], start=1)]
    (tmp_path / "batch.csv").write_text("\n".join(with_ids) + "\n")
    monkeypatch.setenv("RECORD_IDS", "first-column")
    model = handler.model_fn(str(trained[0]))
    for id_column, expected_ids in (
        ("patient", [f"00{n}" for n in range(1, 115)]),
        ("", [str(n) for n in range(1, 115)]),
    ):
        out = tmp_path / f"v-{id_column or 'rows'}"
        argv = ["--input", str(tmp_path / "batch.csv"), "--baseline-statistics", str(preprocessed / "baseline")]
        argv += ["--output", str(out), "--records-dir", str(out / "records")]
        assert steps.validate.main([*argv, *(["--id-column", id_column] if id_column else [])]) == 0
        records = (out / "records" / "batch.csv").read_bytes()  # named after the input object
        scored = handler.output_fn(handler.predict_fn(handler.input_fn(records, "text/csv"), model), "text/csv")
        rows = [line.split(",", 1) for line in scored.splitlines()]
        assert [r[0] for r in rows] == expected_ids
        assert [r[1] for r in rows] == plain  # same scores as the raw batch, in the same order


MALFORMED = [
    ("empty file", b"", [], "part {dir}/data.csv is empty (no header row)"),
    ("header only", b"a,b,diagnosis\n", [], "input data.csv has a header but no data rows"),
    ("target missing", b"a,b\n1,2\n", [], "target column 'diagnosis' not found in data.csv (columns: a, b)"),
    (
        "target has gaps",
        b"a,diagnosis\n1,1\n2,\n3,0\n",
        [],
        "target column 'diagnosis' has 1 missing value(s) (line 3)",
    ),
    (
        "single class",
        b"a,diagnosis\n" + b"".join(b"%d,1\n" % i for i in range(30)),
        [],
        "target column 'diagnosis' has a single class (1): binary classification needs two",
    ),
    (
        "three classes",
        b"a,diagnosis\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(30)),
        [],
        "target column 'diagnosis' has 3 classes (0, 1, 2): binary classification needs exactly two",
    ),
    (
        "non-numeric feature",
        b"a,b,diagnosis\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(20)) + b"7,seven,1\n",
        [],
        "column 'b' is not numeric: value 'seven' on line 22 (list it under training.categorical if it is a category)",
    ),
    (
        "too few of one class",
        b"a,diagnosis\n" + b"".join(b"%d,%d\n" % (i, int(i < 3)) for i in range(40)),
        [],
        "target column 'diagnosis' has only 3 row(s) of one class: need at least 5 per class to split "
        "train/validation/test",
    ),
    (
        "row with an extra field after blocks of clean rows",
        b"a,diagnosis\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(5_000)) + b"7,1,9\n2,0\n",
        ["--chunk-bytes", "4096"],
        "input data.csv is not a readable CSV: CSV parse error: Expected 2 columns, got 3: 7,1,9",
    ),
    ("feature not in file", b"a,diagnosis\n1,0\n", ["--features", "a,c"], "feature column 'c' not found in data.csv"),
    ("duplicate column", b"a,a,diagnosis\n1,2,0\n", [], "duplicate column name 'a' in data.csv"),
    (
        "column all missing",
        b"a,b,diagnosis\n" + b"".join(b"%d,?,%d\n" % (i, i % 2) for i in range(20)),
        [],
        "column 'b' has no values (every row is missing)",
    ),
    (
        "categorical not a feature",
        b"a,diagnosis\n1,0\n",
        ["--categorical", "colour"],
        "categorical column 'colour' is not one of the feature columns",
    ),
]


@pytest.mark.parametrize("content, extra, message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_data_fails_preprocessing_with_one_line(steps, tmp_path, capsys, content, extra, message):
    (tmp_path / "data.csv").write_bytes(content)
    argv = ["--input", str(tmp_path / "data.csv"), "--failure-file", str(tmp_path / "message"), *extra]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(tmp_path / d)]
    with pytest.raises(SystemExit) as exit_info:
        steps.preprocess.main(argv)
    assert exit_info.value.code == 1
    message = message.format(dir=tmp_path)
    assert capsys.readouterr().err == f"error: {message}\n"
    assert (tmp_path / "message").read_text() == message
    assert not (tmp_path / "baseline").exists() and not (tmp_path / "train").exists()


def test_scripts_are_programs_with_container_path_defaults(sample_data, tmp_path):
    help_text = subprocess.run(
        [sys.executable, str(STEPS / "preprocess.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "/opt/ml/processing/input/data" in help_text
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = subprocess.run(
        [sys.executable, str(STEPS / "preprocess.py"), "--input", str(bad), "--train-dir", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr == "error: target column 'diagnosis' not found in bad.csv (columns: a, b)\n"


def test_drift_check_flags_unseen_categories(steps, tmp_path):
    rows = ["size,colour,outcome"] + [f"{i % 9},{['red', 'blue'][i % 2]},{(i // 2) % 2}" for i in range(80)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    argv = ["--input", str(tmp_path / "train.csv"), "--target", "outcome", "--categorical", "colour"]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(tmp_path / d)]
    assert steps.preprocess.main(argv) == 0
    batch = ["size,colour"] + [f"{i % 9},{['red', 'blue', 'green'][i % 3]}" for i in range(30)]
    (tmp_path / "batch.csv").write_text("\n".join(batch) + "\n")
    _, violations = drift(steps, None, tmp_path, tmp_path / "batch.csv", tmp_path / "drift")
    [violation] = violations["violations"]
    assert violation["feature_name"] == "colour" and violation["constraint_check_type"] == "categorical_values_check"
    train_rows = read(tmp_path / "report" / "preprocess.json")["splits"]["train"]
    assert violation["description"].startswith(
        "33.33% of values (10 of 30) are outside the baseline's domain of 2 value(s) "
        f"(none outside in {train_rows}); bound "
    )
    assert "; unseen: green (p = " in violation["description"]


def test_preprocess_writes_the_same_bytes_whatever_the_read_block_size(steps, tmp_path, monkeypatch):
    """Splits, transform, baseline and report are identical for one input and seed however the file is cut
    into blocks: here with rows of one class first (held until the second class shows), missing markers,
    spaces after commas, a categorical column, and more training rows than one fit and one statistics block."""
    rng = np.random.default_rng(5)
    rows = ["size, weight,colour,outcome"]
    for i in range(24_000):
        outcome = "no" if i < 300 else ["no", "yes"][int(rng.random() < 0.3)]
        size = "?" if i % 97 == 0 else f"{rng.normal(10, 2):.4f}"
        weight = f" {rng.integers(1, 90)}" if i % 5 else "NA"
        rows.append(f"{size},{weight},{['red', 'blue', 'green', ''][i % 4]},{outcome}")
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")

    def outputs(name, chunk_bytes, held_in_memory=True):
        monkeypatch.setattr(steps.preprocess, "PENDING_BYTES", 64 << 20 if held_in_memory else 0)
        argv = ["--input", str(tmp_path / "in.csv"), "--target", "outcome", "--categorical", "colour"]
        argv += ["--fit-rows", "2000", "--chunk-bytes", str(chunk_bytes), "--seed", "3"]
        for d in ("train", "validation", "test", "baseline", "report"):
            argv += [f"--{d}-dir", str(tmp_path / name / d)]
        assert steps.preprocess.main(argv) == 0
        return {str(p.relative_to(tmp_path / name)): p.read_bytes() for p in sorted((tmp_path / name).rglob("*.*"))}

    whole = outputs("whole", 8 << 20)
    assert outputs("small", 1024, held_in_memory=False) == whole  # the first class's rows spill to disk
    assert outputs("medium", 7001) == whole
    assert len(whole) == 7  # three splits, the transform, statistics, constraints, the report

    report = json.loads(whole["report/preprocess.json"])
    assert report["dataset"]["rows"] == 24_000 and report["dataset"]["positive_class"] == "yes"
    statistics = json.loads(whole["baseline/statistics.json"])
    assert statistics["dataset"]["item_count"] == report["splits"]["train"] > 16_384  # more than one block
    # Stratified: each split holds the same share of positives as the whole, to within a few rows.
    share = report["dataset"]["positive_rows"] / 24_000
    for split in ("train", "validation", "test"):
        labels = np.loadtxt(tmp_path / "whole" / split / f"{split}.csv", delimiter=",", skiprows=1, usecols=0)
        assert len(labels) == report["splits"][split]
        assert abs(labels.mean() - share) < 0.01
        assert abs(len(labels) / 24_000 - {"train": 0.7, "validation": 0.15, "test": 0.15}[split]) < 0.002
    # Numbers are written as the input has them; a missing one gets the training median.
    transform = json.loads(whole["train/preprocessing.json"])
    median = f"{np.float32(transform['medians']['size']):.8g}"
    train = [line.split(",") for line in whole["train/train.csv"].decode().splitlines()]
    assert train[0] == ["label", "size", "weight", "colour=blue", "colour=green", "colour=red"]
    assert {r[1] for r in train[1:]} >= {median} and all(r[2].strip() == r[2] for r in train[1:])
    assert {r[1] for r in train[1:10]} <= {f"{float(v):.4f}" for v in [r[1] for r in train[1:10]]} | {median}


@pytest.mark.parametrize("target_first", [False, True], ids=["target-last", "target-first"])
def test_preprocess_copies_clean_rows_byte_for_byte_as_formatting_them(steps, tmp_path, monkeypatch, target_first):
    """Rows that need nothing filled, trimmed or unquoted are written as their own bytes with the label in
    the target's place, and a few rows with a missing number among them get the median: the outputs are
    those of writing every field, at any block size, with such rows mixed among dense missing markers,
    spaces, a quoted number, an empty line and CRLF line ends, and with the first class's rows held on
    disk until the second class shows."""
    rng = np.random.default_rng(11)
    lines = []
    for i in range(6_000):
        outcome = "0" if i < 300 else str(int(rng.random() < 0.3))
        a, b, c = (f"{v:.4f}" for v in rng.normal(size=3))
        if 1_000 <= i < 1_100 and i % 7 == 0:
            b = "?"
        if 2_000 <= i < 2_050:
            c = f" {c}"
        if i == 2_500:
            a = f'"{a}"'
        if i == 4_000:
            a, b, c = "1e3", "+2", "-0.0"
        if 4_500 <= i < 5_500 and i % 50 == 0:
            b, c = ("", c) if i % 100 else (b, "NA")  # sparse gaps: the rows around them are still copied
        fields = [outcome, a, b, c] if target_first else [a, b, c, outcome]
        lines.append(",".join(fields) + ("\r\n" if 3_500 <= i < 3_510 else "\n") + ("\n" if i == 3_000 else ""))
    header = "outcome,a,b,c" if target_first else "a,b,c,outcome"
    (tmp_path / "in.csv").write_text(header + "\n" + "".join(lines))
    copied = []
    relabelled = steps.preprocess._relabelled

    def counted(rows, labels, first):
        copied.append(len(rows))
        return relabelled(rows, labels, first)

    monkeypatch.setattr(steps.preprocess, "_relabelled", counted)
    filled = []
    fill = steps.preprocess.Preprocess._filled

    def counted_fill(self, line, label):
        filled.append(line)
        return fill(self, line, label)

    monkeypatch.setattr(steps.preprocess.Preprocess, "_filled", counted_fill)
    monkeypatch.setattr(steps.preprocess, "PENDING_BYTES", 0)  # the first class's blocks spill to disk
    monkeypatch.setattr(steps.preprocess, "MIN_PIECE_BYTES", 1024)  # blocks parsed in pieces, in parallel

    def outputs(name, chunk_bytes, copy):
        monkeypatch.setattr(steps.preprocess, "COPY_LINES", copy)
        argv = ["--input", str(tmp_path / "in.csv"), "--target", "outcome", "--fit-rows", "500", "--seed", "9"]
        argv += ["--chunk-bytes", str(chunk_bytes)]
        for d in ("train", "validation", "test", "baseline", "report"):
            argv += [f"--{d}-dir", str(tmp_path / name / d)]
        assert steps.preprocess.main(argv) == 0
        return {str(p.relative_to(tmp_path / name)): p.read_bytes() for p in sorted((tmp_path / name).rglob("*.*"))}

    formatted = outputs("formatted", 8 << 20, copy=False)
    assert not copied
    for chunk_bytes in (1024, 7001, 8 << 20):
        copied.clear()
        filled.clear()
        assert outputs(f"copied-{chunk_bytes}", chunk_bytes, copy=True) == formatted
        # Small blocks: most rows are copied, the sparse gaps filled among them. One block of the whole
        # file holds rows to trim and unquote: none is copied.
        assert sum(copied) > 3_000 and len(filled) >= 10 if chunk_bytes < 8 << 20 else not copied
    train = formatted["train/train.csv"].decode().splitlines()
    assert (
        train[0] == "label,a,b,c"
        and len(train) - 1 == json.loads(formatted["report/preprocess.json"])["splits"]["train"]
    )
    assert all(len(row.split(",")) == 4 and row.strip() == row for row in train[1:])


def test_inference_handler_reads_what_the_fast_reader_cannot_as_before(steps, trained, sample_data, monkeypatch):
    """A row short of its last field goes to pandas' reader (which pads it as missing), whole batch and all:
    the same predictions, byte for byte, as the batch with that field marked missing."""
    monkeypatch.setenv("MODEL_VERSION", "7")
    handler = steps.inference
    model = handler.model_fn(str(trained[0]))
    lines = (sample_data / "breast-cancer-batch.csv").read_bytes().splitlines(keepends=True)
    marked = lines[:5] + [lines[5].rsplit(b",", 1)[0] + b",?\n"] + lines[6:]
    short = lines[:5] + [lines[5].rsplit(b",", 1)[0] + b"\n"] + lines[6:]
    assert handler._read_numbers(b"".join(short), True, False) is None
    assert handler._read_numbers(b"".join(marked), True, False) is not None

    def score(raw):
        return handler.output_fn(handler.predict_fn(handler.input_fn(raw, "text/csv"), model))

    assert score(b"".join(short)) == score(b"".join(marked))


def test_an_isolated_drift_check_writes_its_metrics_and_the_publishing_job_puts_them(
    steps, sample_data, preprocessed, tmp_path, account
):
    """Network-isolated (no network at all, as the engine runs such a step), the drift check only writes
    metrics.json; publish_metrics.py, the job the definition adds for it, puts exactly that in CloudWatch."""
    from datetime import UTC, datetime, timedelta

    from pipelines import metrics
    from tests.conftest import REPO

    namespace = "MLOps/steps-test"
    out = tmp_path / "drift"
    isolated = [sys.executable, str(REPO / "sandbox" / "engine" / "isolated.py")]
    done = subprocess.run(
        [
            *isolated,
            str(STEPS / "drift_check.py"),
            *("--input", str(sample_data / "breast-cancer-batch-drifted.csv")),
            *("--baseline-statistics", str(preprocessed / "baseline")),
            *("--baseline-constraints", str(preprocessed / "baseline")),
            *("--output", str(out), "--model-version", "3"),
            *("--metrics-namespace", namespace, "--metrics-environment", "dev", "--metrics-pipeline", "inference"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    summary = read(out / "drift_check.json")
    written = read(out / metrics.METRICS_FILE)
    assert written == {"Namespace": namespace, "MetricData": metrics.drift_data(summary, "dev")}

    creds = account.session().get_credentials()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": account.status["endpoint"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
    }
    published = subprocess.run(
        [sys.executable, str(STEPS / "publish_metrics.py"), "--input", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {"namespace": namespace, "published": len(written["MetricData"])}
    cloudwatch = account.client("cloudwatch")
    listed = cloudwatch.list_metrics(Namespace=namespace, MetricName=metrics.DRIFT_DISTANCE)["Metrics"]
    assert sorted(d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "Feature") == sorted(
        summary["distances"]
    )
    now = datetime.now(UTC)
    [score] = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "score",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metrics.DRIFT_SCORE,
                        "Dimensions": [
                            {"Name": "Environment", "Value": "dev"},
                            {"Name": "Pipeline", "Value": "inference"},
                        ],
                    },
                    "Period": 3600,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
    )["MetricDataResults"]
    assert score["Values"] == [max(summary["distances"][f] / summary["bounds"][f] for f in summary["bounds"])]
