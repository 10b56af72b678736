"""The environment's CloudWatch dashboard and alarms over the metrics its runs publish (the contract in
pipelines/metrics.py), as variables of mlops-infra/: the dashboard body and one entry per alarm.

Alarms publish to the environment's encrypted topic. What each watches:
- quality below the floor: the model-quality runs' AUC under training.auc_threshold;
- violations above the limit: a check's Violations in one run above monitoring.violations_limit;
- no successful inference: no PipelineRuns Status=Succeeded Pipeline=inference for the schedule's period plus
  monitoring.missed_inference_slack_minutes (missing data is breaching: no run at all is the case to catch).
"""

from __future__ import annotations

import json
import math

from mlops_core.config import Environment, schedule_period_minutes
from pipelines import metrics as m

HOUR = 3600
ALARM_NAMES = (
    "quality-below-floor",
    "contract-violations",
    "drift-violations",
    "quality-violations",
    "no-successful-inference",
)
# Which pipeline publishes each check's Violations (METRICS.md): the batch checks run in inference.
_CHECK_PIPELINE = {m.CONTRACT_CHECK: m.INFERENCE, m.DRIFT_CHECK: m.INFERENCE, m.QUALITY_CHECK: m.QUALITY}


def inference_window_seconds(env: Environment) -> int:
    """How long inference may go without a successful run: the schedule's period plus the slack."""
    period = env.monitoring.inference_period_minutes or schedule_period_minutes(env.schedule) or 0
    return (period + env.monitoring.missed_inference_slack_minutes) * 60


def alarms(env: Environment) -> list[dict]:
    """One entry per alarm: name suffix, description, metric, dimensions, statistic, period, comparison."""
    environment = {m.ENVIRONMENT: env.name}
    out = [
        {
            "name": "quality-below-floor",
            "description": (
                f"Model quality on labelled data: AUC below the floor {env.training.auc_threshold} "
                "(training.auc_threshold)."
            ),
            "metric_name": m.AUC,
            "dimensions": {**environment, m.PIPELINE: m.QUALITY},
            "statistic": "Minimum",
            "period": HOUR,
            "evaluation_periods": 1,
            "comparison_operator": "LessThanThreshold",
            "threshold": env.training.auc_threshold,
            # labels arrive when they arrive: no datapoint keeps the last verdict
            "treat_missing_data": "ignore",
        }
    ]
    for check, pipeline in _CHECK_PIPELINE.items():
        out.append(
            {
                "name": f"{check}-violations",
                "description": (
                    f"{'An' if pipeline[0] in 'aeiou' else 'A'} {pipeline} run's {check} check found more than "
                    f"{env.monitoring.violations_limit} "
                    "violations (monitoring.violations_limit)."
                ),
                "metric_name": m.VIOLATIONS,
                "dimensions": {**environment, m.PIPELINE: pipeline, m.CHECK: check},
                "statistic": "Maximum",
                "period": HOUR,
                "evaluation_periods": 1,
                "comparison_operator": "GreaterThanThreshold",
                "threshold": env.monitoring.violations_limit,
                "treat_missing_data": "ignore",
            }
        )
    window = inference_window_seconds(env)
    # One period over the whole window (a multiple of 60 s; up to 7 days for periods of an hour or more):
    # its Sum of successful runs is below 1 exactly when none succeeded in it.
    period = max(HOUR, math.ceil(window / 60) * 60)
    out.append(
        {
            "name": "no-successful-inference",
            "description": (
                f"No successful inference run for {window // 60} minutes: the schedule's period plus "
                f"{env.monitoring.missed_inference_slack_minutes} minutes of slack."
            ),
            "metric_name": m.PIPELINE_RUNS,
            "dimensions": {**environment, m.PIPELINE: m.INFERENCE, m.STATUS: "Succeeded"},
            "statistic": "Sum",
            "period": period,
            "evaluation_periods": 1,
            "comparison_operator": "LessThanThreshold",
            "threshold": 1,
            "treat_missing_data": "breaching",
        }
    )
    return out


def dashboard_body(env: Environment, alarm_arns: list[str] | None = None) -> str:
    """The dashboard (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html):
    drift per feature (a SEARCH over the Feature dimension), the drift score, violations by check, quality
    metrics against the floor, runs by status, rows scored and the model version in use."""
    namespace = m.namespace(env.project)
    region = env.region
    where = f'{m.ENVIRONMENT}="{env.name}"'

    def search(metric: str, dimensions: list[str], stat: str, label: str, period: int = HOUR) -> list:
        schema = ",".join([namespace, m.ENVIRONMENT, *dimensions])
        expression = f"SEARCH('{{{schema}}} MetricName=\"{metric}\" {where}', '{stat}', {period})"
        return [{"expression": expression, "id": metric.lower(), "label": label}]

    def metric(name: str, **dimensions: str) -> list:
        pairs = [m.ENVIRONMENT, env.name]
        for key, value in dimensions.items():
            pairs += [key, value]
        return [namespace, name, *pairs]

    def widget(x: int, y: int, title: str, metrics: list, stat: str = "Maximum", **extra) -> dict:
        properties = {"title": title, "region": region, "view": "timeSeries", "stat": stat, "period": HOUR}
        properties.update({"metrics": metrics, **extra})
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": properties}

    quality = [metric(name, Pipeline=m.QUALITY) for name in m.QUALITY_METRICS]
    floor = {"horizontal": [{"label": "AUC floor (training.auc_threshold)", "value": env.training.auc_threshold}]}
    widgets = [
        widget(
            0,
            0,
            "Drift per feature: distance",
            [search(m.DRIFT_DISTANCE, [m.FEATURE], "Maximum", "${PROP('Dim.Feature')}")],
        ),
        widget(
            12,
            0,
            "Drift score (>= 1 is drift)",
            [metric(m.DRIFT_SCORE, Pipeline=m.INFERENCE)],
            annotations={"horizontal": [{"label": "drift", "value": 1}]},
        ),
        widget(
            0, 6, "Violations by check", [metric(m.VIOLATIONS, Pipeline=p, Check=c) for c, p in _CHECK_PIPELINE.items()]
        ),
        widget(
            12,
            6,
            "Model quality on labelled data",
            quality,
            stat="Minimum",
            yAxis={"left": {"min": 0, "max": 1}},
            annotations=floor,
        ),
        widget(
            0,
            12,
            "Pipeline runs by status",
            [
                search(
                    m.PIPELINE_RUNS,
                    [m.PIPELINE, m.STATUS],
                    "Sum",
                    "${PROP('Dim.Pipeline')} ${PROP('Dim.Status')}",
                    86400,
                )
            ],
            stat="Sum",
            period=86400,
        ),
        widget(
            12,
            12,
            "Rows scored and model version",
            [metric(m.ROWS_SCORED, Pipeline=m.INFERENCE), metric(m.MODEL_VERSION, Pipeline=m.INFERENCE)],
        ),
    ]
    if alarm_arns:
        widgets.append(
            {
                "type": "alarm",
                "x": 0,
                "y": 18,
                "width": 24,
                "height": 3,
                "properties": {"title": "Alarms", "alarms": alarm_arns},
            }
        )
    return json.dumps({"widgets": widgets}, sort_keys=True)


def alarm_arn(env: Environment, name: str) -> str:
    return f"arn:{env.partition}:cloudwatch:{env.region}:{env.account_id}:alarm:{monitoring_prefix(env)}-{name}"


def monitoring_prefix(env: Environment) -> str:
    """What the dashboard and alarm names start with: <project>-<environment> (a branch: its namespace too)."""
    return f"{env.project}-{env.name}"
