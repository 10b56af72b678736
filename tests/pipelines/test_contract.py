"""The data contract: proposed from training data for review, checked on training data by preprocess and on
each inference batch by the validation step; a violation names column, values and rows in one line and is a
DataValidationFailed, never drift."""

from __future__ import annotations

import json

import pytest
import yaml

from mlops_core.errors import ConfigError
from pipelines.contracts import parse_contract
from tests.conftest import REPO


def read(path):
    return json.loads(path.read_text())


@pytest.fixture
def ordinal_data(tmp_path):
    """A table with an ordinal grade coded 1-5 where one row says 55 (a typo), and a category with gaps."""
    rows = ["size,grade,site,outcome"]
    for i in range(200):
        grade = 55 if i == 13 else 1 + i % 5
        site = "" if i % 50 == 7 else ["north", "south"][i % 2]
        rows.append(f"{(i * 7) % 23 + 0.5},{grade},{site},{(i // 3) % 2}")
    path = tmp_path / "train.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def preprocess(steps, data, out, *extra):
    argv = ["--input", str(data), "--target", "outcome", "--categorical", "site", "--failure-file", str(out / "f")]
    for d in ("train", "validation", "test", "baseline", "report"):
        argv += [f"--{d}-dir", str(out / d)]
    return steps.preprocess.main([*argv, *extra])


def test_a_proposed_contract_marks_rare_codes_for_review_and_preprocess_enforces_the_reviewed_one(
    steps, ordinal_data, tmp_path, capsys
):
    import pandas as pd

    from pipelines.steps.contract import propose

    frame = pd.read_csv(ordinal_data, dtype={"site": str, "outcome": str})
    proposal = propose(frame, "outcome", ["site"])
    columns = proposal["contract"]["columns"]
    assert columns["grade"] == {
        "type": "integer",
        "min": 0,
        "allowed": [1, 2, 3, 4, 5, 55],
        "required": True,
        "nullable": False,
    }
    assert proposal["review"] == {"grade": [55]}
    assert columns["site"] == {"type": "category", "required": True, "nullable": True}
    assert columns["size"] == {"type": "number", "min": 0, "required": True, "nullable": False}
    assert columns["outcome"] == {"type": "integer", "allowed": [0, 1], "required": True, "nullable": False}

    # Without the contract the typo trains silently; the team's reviewed contract (55 removed) stops it.
    assert preprocess(steps, ordinal_data, tmp_path / "free") == 0
    columns["grade"]["allowed"] = [1, 2, 3, 4, 5]
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(proposal["contract"]))
    (tmp_path / "checked").mkdir()
    with pytest.raises(SystemExit) as exit_:
        preprocess(steps, ordinal_data, tmp_path / "checked", "--contract", str(contract))
    assert exit_.value.code == 1
    line = capsys.readouterr().err.strip()
    assert line == (
        "error: DataValidationFailed: train.csv breaks the data contract: column 'grade': 1 value(s) not among "
        "the allowed 1, 2, 3, 4, 5: 55 (row 14)"
    )
    assert (tmp_path / "checked" / "f").read_text() == line[len("error: ") :]
    assert not (tmp_path / "checked" / "train").exists()  # nothing written


def validate(steps, batch, out, contract=None, baseline=None):
    argv = ["--input", str(batch), "--output", str(out)]
    argv += ["--contract", str(contract)] if contract else ["--baseline-statistics", str(baseline)]
    assert steps.validate.main(argv) == 0
    return read(out / "validation.json"), read(out / "contract_violations.json")


@pytest.fixture
def shipped_contract(tmp_path, dev_environment):
    from pipelines.contracts import load_contract

    path = tmp_path / "contract.json"
    path.write_text(json.dumps(load_contract(dev_environment)))
    return path


def test_validation_names_bad_types_missing_columns_and_values_outside_the_contract(
    steps, sample_data, shipped_contract, tmp_path
):
    lines = (sample_data / "breast-cancer-batch.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines]
    for r in (3, 40, 77, 90):
        rows[r][header.index("mean_texture")] = "sixty"
    rows[5][header.index("mean_radius")] = "-2"
    rows[7][header.index("mean_area")] = "?"
    drop = header.index("worst_symmetry")
    rows = [[v for i, v in enumerate(r) if i != drop] for r in rows]
    batch = tmp_path / "batch.csv"
    batch.write_text("\n".join(",".join(r) for r in rows) + "\n")

    summary, violations = validate(steps, batch, tmp_path / "out", contract=shipped_contract)
    assert summary["violation_count"] == 4 and summary["rows"] == 114
    assert summary["message"] == (
        "batch.csv breaks the data contract: column 'worst_symmetry' is required by the contract but missing; "
        "column 'mean_radius': 1 value(s) below the minimum 0: -2 (row 5); column 'mean_texture': 4 value(s) not "
        "a number: 'sixty' (row 3), 'sixty' (row 40), 'sixty' (row 77), ... (4 in all); column 'mean_area': 1 "
        "value(s) missing where the contract says not nullable: row 7"
    )
    assert {(v["feature_name"], v["constraint_check_type"]) for v in violations["violations"]} == {
        ("worst_symmetry", "missing_column_check"),
        ("mean_radius", "range_check"),
        ("mean_texture", "data_type_check"),
        ("mean_area", "completeness_check"),
    }
    clean, none = validate(steps, sample_data / "breast-cancer-batch.csv", tmp_path / "clean", shipped_contract)
    assert clean["violation_count"] == 0 and none == {"violations": []}
    assert clean["message"] == "breast-cancer-batch.csv: 114 row(s) meet the data contract"


def test_without_a_contract_the_baseline_implies_one(steps, sample_data, preprocessed, tmp_path):
    batch = tmp_path / "batch.csv"
    text = (sample_data / "breast-cancer-batch.csv").read_text().replace("mean_radius,", "radius,", 1)
    batch.write_text(text.replace("\n14.", "\nfourteen.", 1) if "\n14." in text else text)
    summary, violations = validate(steps, batch, tmp_path / "out", baseline=preprocessed / "baseline")
    assert summary["contract"] == "the contract the baseline implies"
    assert violations["violations"][0] == {
        "feature_name": "mean_radius",
        "constraint_check_type": "missing_column_check",
        "description": "column 'mean_radius' is required by the contract but missing",
    }


def test_an_unreadable_batch_is_a_validation_failure(steps, shipped_contract, tmp_path):
    batch = tmp_path / "batch.csv"
    batch.write_text('mean_radius,mean_texture\n1,"2\n')
    summary, violations = validate(steps, batch, tmp_path / "out", contract=shipped_contract)
    assert summary["violation_count"] == 1
    assert summary["message"].startswith("batch.csv is not a readable CSV: ")
    assert violations["violations"][0]["feature_name"] == "*"


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"columns": {}}, "x.yaml: columns: expected a mapping of column name to its rules, with at least one column"),
        (
            {"columns": {"a": {"type": "text"}}},
            "x.yaml: columns.a.type: 'text' is not one of number, integer, category",
        ),
        (
            {"columns": {"a": {"type": "category", "min": 0}}},
            "x.yaml: columns.a.min: a category column has no range: list its allowed values instead",
        ),
        ({"columns": {"a": {"type": "number", "min": 5, "max": 1}}}, "x.yaml: columns.a: min 5 is above max 1"),
        (
            {"columns": {"a": {"type": "integer", "allowed": [1, 2.5]}}},
            "x.yaml: columns.a.allowed[1]: 2.5 is not an integer value",
        ),
        (
            {"columns": {"a": {"type": "number", "nullable": "no"}}},
            "x.yaml: columns.a.nullable: 'no' is not true or false",
        ),
        (
            {"columns": {"a": {"type": "number", "maximum": 3}}},
            "x.yaml: columns.a.maximum: unknown rule (expected one of: allowed, max, min, nullable, required, type)",
        ),
        (
            {"target": "y", "columns": {"a": {"type": "number"}}},
            "x.yaml: target: 'y' is not one of the contract's columns",
        ),
    ],
)
def test_a_malformed_contract_is_one_line_naming_the_field(document, expected):
    with pytest.raises(ConfigError) as error:
        parse_contract(yaml.safe_dump(document), "x.yaml")
    assert str(error.value) == expected


def test_run_pipeline_contract_writes_a_proposal_and_keeps_a_reviewed_one(cli, tmp_path):
    out = tmp_path / "contract.yaml"
    done = cli("run-pipeline", "contract", "--env", "dev", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"wrote {out}: review it, then commit it"
    proposed = parse_contract(out.read_text(), str(out))
    shipped = parse_contract((REPO / "environments" / "contracts" / "breast-cancer.yaml").read_text(), "shipped")
    assert proposed == shipped  # the committed contract is the proposal, reviewed

    again = cli("run-pipeline", "contract", "--env", "dev", "-o", str(out))
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == f"error: {out} exists (the reviewed contract): pass --force to replace it, or -o elsewhere"
    )
    assert cli("run-pipeline", "contract", "--env", "dev", "-o", str(out), "--force").returncode == 0
    printed = cli("run-pipeline", "contract", "--env", "dev", "-o", "-")
    assert parse_contract(printed.stdout, "stdout") == shipped
