"""`promote monitor`: recent runs with their CloudWatch metrics, approvals and retrains, and the chart.

The world: the registry holds version 1, trained in dev by alice and approved by bob (`promote approve`'s
library call, so the decision record is the real one). In prod, the environment's pipelines run on the
sandbox's engine (small definitions: a drift or quality check that fails as the real pipelines do) and each
run's metrics are published as its steps publish them: the contract's names and dimensions, stamped at the
time the step ran. AWS references: ListPipelineExecutions
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListPipelineExecutions.html), GetMetricData
and MetricStat periods (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricStat.html).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from promote import monitor
from tests.conftest import REPO
from tests.promote.conftest import CANDIDATE_REPORT, RegistryWorld

PROD = "222222222222"
FEATURES = ("mean radius", "mean texture", "worst area")


def _check_then_fail(check: str, failure: str) -> dict:
    """A pipeline whose check step fails as `failure` when the run's Outcome parameter says so."""
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Outcome", "Type": "String", "DefaultValue": "clean"}],
        "Steps": [
            {
                "Name": check,
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.Outcome"}, "RightValue": "bad"}],
                    "IfSteps": [
                        {"Name": failure, "Type": "Fail", "Arguments": {"ErrorMessage": f"{failure}: see the check"}}
                    ],
                    "ElseSteps": [],
                },
            }
        ],
    }


DEFINITIONS = {
    "inference": _check_then_fail("CheckDataDrift", "DataDriftDetected"),
    "quality": _check_then_fail("CheckModelQuality", "ModelQualityBelowThreshold"),
    "train": _check_then_fail("CheckModelQuality", "ModelQualityBelowThreshold"),
}


class MonitorWorld:
    def __init__(self, env):
        from mlops_core.session import Sessions
        from promote.registry import decide
        from tests.iam.conftest import trust_account_root_too

        self.env = env
        self.registry = RegistryWorld(env)
        self.registry.register(CANDIDATE_REPORT, registered_by="alice")
        self.approval = decide(env, Sessions(env, identity="bob"), 1, "approve", "AUC above the floor")["decision"]

        self.admin = Sessions(env)
        iam = self.admin.client("iam")
        for role, service in (("execution", "sagemaker"), ("events", "events")):
            iam.create_role(
                RoleName=env.role_arn(role).split("/")[-1],
                AssumeRolePolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": f"{service}.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                ),
            )
        iam.put_role_policy(
            RoleName=env.role_arn("events").split("/")[-1],
            PolicyName="start",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution", "Resource": "*"}],
                }
            ),
        )
        trust_account_root_too(self.admin, env.role_arn("events"))
        sm = self.admin.client("sagemaker")
        for kind, definition in DEFINITIONS.items():
            sm.create_pipeline(
                PipelineName=env.pipelines[kind],
                PipelineDefinition=json.dumps(definition),
                RoleArn=env.role_arn("execution"),
            )
        # who starts runs: a person (her source identity), or EventBridge (the events role: schedule, rules)
        dana = Sessions(env, identity="dana")
        self.as_dana = dana.client("sagemaker", dana.workload())
        self.as_events = self.admin.client(
            "sagemaker", self.admin.assume(env.role_arn("events"), purpose="rule", source=self.admin.base())
        )
        self.cw = self.admin.client("cloudwatch")
        self.runs: list[dict] = []

    def run(self, kind: str, *, outcome: str = "clean", by: str = "dana", metrics=None) -> dict:
        """Start a run, wait for it, publish its metrics at the time its check step ran."""
        # runs more than a second apart (a run's window reaches a second past its last step, for clock skew)
        time.sleep(1.1)
        client = self.as_dana if by == "dana" else self.as_events
        arn = client.start_pipeline_execution(
            PipelineName=self.env.pipelines[kind],
            PipelineParameters=[{"Name": "Outcome", "Value": outcome}],
        )["PipelineExecutionArn"]
        sm = self.admin.client("sagemaker")
        for _ in range(300):
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            if described["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
                break
            time.sleep(0.05)
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        check = min(steps, key=lambda s: s["StartTime"])
        if metrics:
            self.publish(kind, check["StartTime"], **metrics)
        run = {
            "kind": kind,
            "arn": arn,
            "status": described["PipelineExecutionStatus"],
            "start": described["CreationTime"],
        }
        self.runs.append(run)
        return run

    def publish(self, kind, at, *, rows=None, version=None, drift=None, quality=None):
        """Datapoints as the steps publish them (the contract's builder), stamped with the step's time."""
        from pipelines import metrics

        name, data = self.env.name, []
        if rows is not None:
            data.append(metrics.datum(metrics.ROWS_SCORED, rows, name, Pipeline=kind))
        if version is not None:
            data.append(metrics.datum(metrics.MODEL_VERSION, version, name, Pipeline=kind))
        for feature, (distance, bound) in (drift or {}).items():
            data.append(metrics.datum(metrics.DRIFT_DISTANCE, distance, name, Feature=feature))
            data.append(metrics.datum(metrics.DRIFT_BOUND, bound, name, Feature=feature))
        if drift is not None:
            data.append(metrics.datum(metrics.DRIFT_SCORE, max(d / b for d, b in drift.values()), name, Pipeline=kind))
            violations = sum(d >= b for d, b in drift.values())
            data.append(metrics.datum(metrics.VIOLATIONS, violations, name, Pipeline=kind, Check=metrics.DRIFT_CHECK))
        for metric, value in (quality or {}).items():
            data.append(metrics.datum(metric, value, name, Pipeline=kind))
        metrics.publish(metrics.namespace(self.env.project), [{**d, "Timestamp": at} for d in data], self.cw)


CLEAN = {name: (0.05, 0.2) for name in FEATURES}
DRIFTED = {"mean radius": (0.61, 0.19), "mean texture": (0.33, 0.2), "worst area": (0.07, 0.2)}
LABELLED = {"AUC": 0.951, "F1": 0.902, "Precision": 0.93, "Recall": 0.876, "Accuracy": 0.914}
EVALUATED = {"AUC": 0.981, "F1": 0.947, "Precision": 0.942, "Recall": 0.953, "Accuracy": 0.961}


@pytest.fixture(scope="module")
def world(sandbox_server):
    from mlops_core.config import load_environment
    from sandbox import client

    client.reset()
    world = MonitorWorld(load_environment("prod", env_dir=REPO / "environments"))
    # the schedule scores a clean batch with v1; the next batch drifts and the retrain rule starts training
    world.run("inference", by="events", metrics={"rows": 114, "version": 1, "drift": CLEAN})
    world.run("inference", by="events", outcome="bad", metrics={"rows": 114, "version": 1, "drift": DRIFTED})
    world.run("train", by="events", metrics={"quality": EVALUATED})
    world.run("quality", by="dana", metrics={"version": 1, "quality": LABELLED})
    return world


@pytest.fixture(scope="module")
def carol(world):
    """An operator signed in as carol (the approver role reads the registry with her source identity)."""
    from mlops_core.session import Sessions

    return Sessions(world.env, identity="carol")


@pytest.fixture(scope="module")
def report(world, carol):
    return monitor.collect(world.env, carol, world.runs[0]["start"] - timedelta(minutes=5))


def test_each_run_with_its_metrics_status_starter_and_version(world, report):
    clean, drifted, train, quality = world.runs
    by_arn = {run["execution_arn"]: run for run in report["runs"]}
    assert [run["execution_arn"] for run in report["runs"]] == [r["arn"] for r in reversed(world.runs)]

    row = by_arn[clean["arn"]]
    assert (row["pipeline"], row["status"], row["failed_step"]) == ("inference", "Succeeded", None)
    assert (row["started_by"], row["model_version"], row["rows_scored"]) == ("EventBridge", 1, 114)
    assert row["drift"]["score"] == pytest.approx(0.25)
    assert row["metrics_ambiguous"] == [] and row["duration_seconds"] >= 0

    row = by_arn[drifted["arn"]]
    assert (row["status"], row["failed_step"]) == ("Failed", "DataDriftDetected")
    assert row["failure_reason"] == "DataDriftDetected: see the check"
    assert row["drift"]["worst_feature"] == "mean radius"
    assert (row["drift"]["distance"], row["drift"]["bound"]) == pytest.approx((0.61, 0.19))
    assert row["drift"]["score"] == pytest.approx(0.61 / 0.19)
    assert row["violations"] == {"drift": 2}

    row = by_arn[train["arn"]]
    assert (row["pipeline"], row["status"], row["started_by"]) == ("train", "Succeeded", "EventBridge")
    assert row["quality"] == pytest.approx({k.lower(): v for k, v in EVALUATED.items()})

    row = by_arn[quality["arn"]]
    assert (row["started_by"], row["model_version"], row["drift"]) == ("dana", 1, None)
    assert row["quality"] == pytest.approx({k.lower(): v for k, v in LABELLED.items()})

    assert report["approvals"] == [
        {"kind": "approval", "version": 1, "at": world.approval["at"], "by": "bob", "label": "v1 approved by bob"}
    ]
    assert [(e["pipeline"], e["cause"], e["after"]) for e in report["retrains"]] == [
        ("train", "drift", drifted["arn"].rsplit("/", 1)[1])
    ]

    # what people read
    table = monitor.render(report).splitlines()
    assert table[1].split()[:3] == ["TIME", "PIPELINE", "STATUS"]
    drift_row = next(line for line in table if "Failed: DataDriftDetected" in line)
    assert "mean radius 0.610/0.190 (3.21x)" in drift_row and " v1 " in drift_row and " 114 " in drift_row
    quality_row = next(line for line in table if " quality " in line)
    assert "AUC 0.951 F1 0.902 P 0.930 R 0.876 acc 0.914" in quality_row
    assert any(line.endswith(f"retrain (train) on drift (after {drifted['arn'].rsplit('/', 1)[1]})") for line in table)
    assert any(line.endswith("v1 approved by bob") for line in table)


def test_the_command_prints_json_and_writes_the_chart(world, report, cli, tmp_path):
    since = (world.runs[0]["start"] - timedelta(minutes=5)).isoformat()
    chart = tmp_path / "monitor.png"
    shown = cli(
        "promote",
        "monitor",
        "--env",
        "prod",
        "--since",
        since,
        "--output",
        "json",
        "--chart",
        str(chart),
        "--as",
        "carol",
    )
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout)
    assert printed["chart"] == str(chart)
    assert [r["execution_arn"] for r in printed["runs"]] == [r["execution_arn"] for r in report["runs"]]
    assert [r["drift"] for r in printed["runs"]] == [r["drift"] for r in report["runs"]]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["monitor.png"]  # the temporary file was renamed over it


def test_since_keeps_only_the_runs_started_after_it(world, carol):
    later = world.runs[2]["start"] - timedelta(milliseconds=1)
    report = monitor.collect(world.env, carol, later)
    assert [run["execution_arn"] for run in report["runs"]] == [world.runs[3]["arn"], world.runs[2]["arn"]]
    assert report["approvals"] == []  # v1 was approved before


def test_without_a_sign_in_the_runs_show_and_the_approvals_are_a_note(world):
    from mlops_core.session import Sessions

    # the account's admin, no source identity: the approver role (which requires one) refuses the session
    report = monitor.collect(world.env, Sessions(world.env), world.runs[0]["start"] - timedelta(minutes=5))
    assert [run["execution_arn"] for run in report["runs"]] == [r["arn"] for r in reversed(world.runs)]
    assert report["approvals"] == []
    assert [n for n in report["notes"] if n.startswith("approvals are not shown: the registry refused the read")]


def test_chart_marks_the_drift_the_retrain_and_the_approval(world, report, tmp_path):
    path = tmp_path / "monitor.png"
    drawn = monitor.write_chart(report, str(path))

    import matplotlib.image

    assert matplotlib.image.imread(str(path)).shape[:2] == (880, 1430)

    assert [(p["failed"], round(p["score"], 3)) for p in drawn["drift"]] == [(False, 0.25), (True, 3.211)]
    assert drawn["drift"][1]["feature"] == "mean radius"
    assert drawn["unread"] == []  # both inference runs have their drift reading
    assert list(drawn["features"]) == ["mean radius", "mean texture", "worst area"]
    assert [v["value"] for v in drawn["quality"]["auc (labels)"]] == [0.951]
    assert [v["value"] for v in drawn["quality"]["auc (evaluation)"]] == [0.981]
    # one slot per moment, in time order: the approval, then each run (the retrain at its run's start)
    assert drawn["slots"] == [drawn["events"][0]["at"]] + [r["start"] for r in reversed(report["runs"])]
    assert [(e["kind"], e["label"]) for e in drawn["events"]] == [
        ("approval", "v1 approved by bob"),
        ("retrain", "retrain (train) on drift"),
    ]


def test_bad_since_or_chart_path_is_one_line_exit_2_and_writes_nothing(cli, tmp_path):
    chart = tmp_path / "monitor.png"
    result = cli("promote", "monitor", "--env", "prod", "--since", "30x", "--chart", str(chart))
    assert (result.returncode, result.stderr.strip().splitlines()) == (
        2,
        ["error: --since: '30x' is neither an age (90m, 12h, 30d, 2w) nor an ISO date (2026-11-01, 2026-11-01T06:00Z)"],
    )
    result = cli("promote", "monitor", "--env", "prod", "--chart", str(tmp_path / "missing" / "monitor.png"))
    assert (result.returncode, result.stderr.strip().splitlines()) == (
        2,
        [f"error: --chart: '{tmp_path / 'missing' / 'monitor.png'}': directory {tmp_path / 'missing'} does not exist"],
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("since", ["-3d", "0h", "yesterday", "2099-01-01", ""])
def test_bad_since_values(since):
    from mlops_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--since: "):
        monitor.parse_since(since)


@pytest.mark.parametrize("chart", ["monitor.pdf", "."])
def test_bad_chart_paths(chart, tmp_path):
    from mlops_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--chart: "):
        monitor.check_chart_path(str(tmp_path / chart))


def test_a_window_shared_with_earlier_runs_keeps_only_its_own_datapoints():
    """GetMetricData rounds a window's start down to the minute: run B's window also holds A's readings (A
    ran earlier in that minute), which A's own window tells; D's window holds what C published after
    10:01:00, which C's own window minus its minute before tells; D and E overlapped: nobody can tell."""
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)

    def run(kind, start, end):
        return {"pipeline": kind, "_window": (at + timedelta(seconds=start), at + timedelta(seconds=end))}

    runs = [
        run("inference", 5, 9),  # A: drift 3.2, 114 rows
        run("quality", 12, 14),  # another pipeline's metrics have other dimensions: never mixed
        run("inference", 20, 30),  # B: drift 0.3, 120 rows
        run("inference", 50, 70),  # C: drift 0.4 read at 10:01:05, no rows (it drifted)
        run("inference", 75, 80),  # D: drift 0.5, 50 rows
        run("inference", 79, 90),  # E: started before D ended, drift 0.6
    ]
    # what CloudWatch answers for each window, from its start rounded down to the minute
    sums = [
        {"drift_score": (3.2, 1), "rows_scored": (114, 1)},
        {"auc": (0.9, 1)},
        {"drift_score": (3.5, 2), "rows_scored": (234, 2)},  # A's and B's
        {"drift_score": (3.9, 3), "rows_scored": (234, 2)},  # A's, B's and C's own
        {"drift_score": (0.9, 2), "rows_scored": (50, 1)},  # C's after 10:01:00 and D's own
        {"drift_score": (1.5, 3), "rows_scored": (50, 1)},  # C's, D's and E's
    ]
    asked = []

    def between(j, span):  # C's minute before D's window: A's and B's readings only
        asked.append((j, span))
        return {"drift_score": (3.5, 2), "rows_scored": (234, 2)}

    resolved = monitor.attribute(runs, sums, now, between)
    assert resolved[0] == ({"drift_score": (3.2, 1), "rows_scored": (114, 1)}, [])
    assert resolved[1] == ({"auc": (0.9, 1)}, [])
    assert resolved[2] == ({"drift_score": (pytest.approx(0.3), 1), "rows_scored": (120, 1)}, [])
    assert resolved[3] == ({"drift_score": (pytest.approx(0.4), 1)}, [])
    assert asked[0] == (3, (at, at + timedelta(minutes=1)))
    assert resolved[4] == ({}, ["drift_score", "rows_scored"])  # E's readings may be in D's window
    assert resolved[5] == ({}, ["drift_score", "rows_scored"])


def test_since_reads_ages_and_dates():
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert monitor.parse_since("12h", now) == now - timedelta(hours=12)
    assert monitor.parse_since("30d", now) == now - timedelta(days=30)
    assert monitor.parse_since("2w", now) == now - timedelta(days=14)
    assert monitor.parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert monitor.parse_since("2026-11-01T06:00Z", now) == datetime(2026, 11, 1, 6, tzinfo=UTC)


def test_one_period_covers_a_run_in_the_resolution_cloudwatch_keeps():
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    start = now - timedelta(hours=1, seconds=30)
    # CloudWatch rounds the start down to its minute: the window is then 70 s long
    assert monitor.period_for(start, start + timedelta(seconds=40), now) == 120
    old = now - timedelta(days=20, seconds=30)
    assert monitor.period_for(old, old + timedelta(minutes=7), now) == 900
    ancient = now - timedelta(days=70)
    assert monitor.period_for(ancient, ancient + timedelta(minutes=7), now) == 3600
