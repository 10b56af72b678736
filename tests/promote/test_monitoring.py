"""The dashboard and alarms promote infra hands mlops-infra/: every metric they read is one the runs publish,
with exactly the contract's dimensions (CloudWatch finds a metric only by its full set of dimensions), and
the no-successful-inference window follows the environment's schedule."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from pipelines import metrics as m
from promote.monitoring import alarms, dashboard_body, inference_window_seconds


def _dimension_names(pairs: list) -> set:
    return set(pairs[0::2])


def test_alarms_and_dashboard_read_the_metric_contract(prod_env):
    for alarm in alarms(prod_env):
        dimensions, _unit = m.CONTRACT[alarm["metric_name"]]
        assert set(alarm["dimensions"]) == {m.ENVIRONMENT, *dimensions}, alarm
        assert alarm["dimensions"][m.ENVIRONMENT] == prod_env.name
    body = json.loads(dashboard_body(prod_env))
    seen = set()
    for widget in body["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            [first] = entry if isinstance(entry[0], dict) else [entry]
            if isinstance(first, dict):  # a SEARCH: {namespace,dimension,...} MetricName="..."
                schema, name = re.search(r"\{([^}]*)\} MetricName=\\?\"(\w+)", first["expression"]).groups()
                namespace, *dimensions = schema.split(",")
            else:
                namespace, name, *pairs = first
                dimensions = sorted(_dimension_names(pairs))
            assert namespace == m.namespace(prod_env.project)
            assert set(dimensions) == {m.ENVIRONMENT, *m.CONTRACT[name][0]}, (name, dimensions)
            seen.add(name)
    assert {m.DRIFT_DISTANCE, m.DRIFT_SCORE, m.VIOLATIONS, m.PIPELINE_RUNS, *m.QUALITY_METRICS} <= seen


@pytest.mark.parametrize(
    "schedule, slack, window_hours",
    [("cron(0 6 * * ? *)", 120, 26), ("rate(6 hours)", 60, 7), ("cron(0 6 ? * MON *)", 0, 168)],
)
def test_the_missed_inference_window_is_the_schedule_period_plus_slack(prod_env, schedule, slack, window_hours):
    env = dataclasses.replace(
        prod_env,
        schedule=schedule,
        monitoring=dataclasses.replace(prod_env.monitoring, missed_inference_slack_minutes=slack),
    )
    assert inference_window_seconds(env) == window_hours * 3600
    [missed] = [a for a in alarms(env) if a["name"] == "no-successful-inference"]
    assert (missed["period"], missed["treat_missing_data"]) == (window_hours * 3600, "breaching")
