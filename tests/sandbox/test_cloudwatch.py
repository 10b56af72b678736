"""The sandbox's CloudWatch against AWS's API reference (sandbox/patches/cloudwatch.py): datapoints on the
sandbox clock, a metric identified by its namespace, name and exact dimensions, GetMetricData periods,
statistics, ScanBy and paging, ListMetrics, alarms, dashboards, and the cloudwatch:namespace condition key.

    PutMetricData   https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
    GetMetricData   https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html
    ListMetrics     https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_ListMetrics.html
    PutMetricAlarm  https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    DescribeAlarms  https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html
    PutDashboard    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html
    Dimensions      https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension
    namespace key   https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.sandbox.pipeline_account import ACCOUNT, REGION

NS = "MLOps/cw-test"
ENV = [{"Name": "Environment", "Value": "dev"}]
FEATURE = [*ENV, {"Name": "Feature", "Value": "mean_radius"}]


@pytest.fixture
def cw(account):
    return account.client("cloudwatch")


def sandbox_now(sandbox_status) -> datetime:
    from sandbox import client

    return datetime.fromisoformat(client.call("clock")["now"].replace("Z", "+00:00"))


def query(qid, name, dimensions, stat="Sum", period=60, namespace=NS, **extra):
    metric = {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions}
    return {"Id": qid, "MetricStat": {"Metric": metric, "Period": period, "Stat": stat}, **extra}


def results(cw, queries, start, end, **kwargs):
    answer = cw.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end, **kwargs)
    return {r["Id"]: r for r in answer["MetricDataResults"]}, answer.get("NextToken")


def test_a_datapoint_without_timestamp_carries_the_sandbox_clock(cw, sandbox):
    from sandbox import client

    client.call("tick", {"by": "3d"})  # the sandbox is now three days ahead of the wall clock
    now = sandbox_now(sandbox)
    cw.put_metric_data(Namespace=NS, MetricData=[{"MetricName": "RowsScored", "Dimensions": ENV, "Value": 42}])
    found, _ = results(cw, [query("rows", "RowsScored", ENV)], now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert found["rows"]["Values"] == [42.0]
    assert found["rows"]["Timestamps"] == [now.replace(second=0)]  # the 1-minute period it fell in
    wall = datetime.now(UTC)
    assert (
        results(cw, [query("rows", "RowsScored", ENV)], wall - timedelta(hours=1), wall + timedelta(hours=1))[0][
            "rows"
        ]["Values"]
        == []
    )
    # AWS takes Timestamps up to two weeks back and two hours ahead of its own time
    with pytest.raises(ClientError) as refused:
        cw.put_metric_data(
            Namespace=NS, MetricData=[{"MetricName": "X", "Value": 1, "Timestamp": now + timedelta(hours=3)}]
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_a_metric_is_its_namespace_name_and_exact_dimensions(cw, sandbox):
    now = sandbox_now(sandbox)
    cw.put_metric_data(
        Namespace=NS,
        MetricData=[
            {"MetricName": "DriftDistance", "Dimensions": FEATURE, "Value": 0.25},
            {"MetricName": "DriftDistance", "Dimensions": list(reversed(FEATURE)), "Value": 0.75},  # same metric
            {"MetricName": "DriftDistance", "Dimensions": ENV, "Value": 10},
        ],
    )
    cw.put_metric_data(
        Namespace="Other/ns", MetricData=[{"MetricName": "DriftDistance", "Dimensions": FEATURE, "Value": 99}]
    )
    window = (now - timedelta(minutes=5), now + timedelta(minutes=5))
    found, _ = results(
        cw,
        [
            query("feature", "DriftDistance", FEATURE),
            query("envonly", "DriftDistance", ENV),
            query("none", "DriftDistance", []),
            query("avg", "DriftDistance", FEATURE, stat="Average"),
            query("count", "DriftDistance", FEATURE, stat="SampleCount"),
        ],
        *window,
    )
    assert found["feature"]["Values"] == [1.0]  # both datapoints of the feature, not the other namespace's
    assert found["envonly"]["Values"] == [10.0]
    assert found["none"]["Values"] == []  # "you can't retrieve statistics for combinations you did not publish"
    assert found["avg"]["Values"] == [0.5] and found["count"]["Values"] == [2.0]
    assert found["feature"]["Label"] == "DriftDistance" and found["feature"]["StatusCode"] == "Complete"

    listed = cw.list_metrics(Namespace=NS)["Metrics"]
    assert sorted(len(m["Dimensions"]) for m in listed) == [1, 2]  # one entry per metric, not per datapoint
    by_name = cw.list_metrics(Dimensions=[{"Name": "Feature"}])["Metrics"]
    assert {m["Namespace"] for m in by_name} == {NS, "Other/ns"}
    by_value = cw.list_metrics(Namespace=NS, Dimensions=[{"Name": "Feature", "Value": "other"}])["Metrics"]
    assert by_value == []


def test_periods_statistics_scan_order_and_paging(cw, sandbox):
    now = sandbox_now(sandbox)
    hour = now.replace(minute=0, second=0) - timedelta(hours=1)
    data = [
        {"MetricName": "AUC", "Dimensions": ENV, "Value": v, "Timestamp": hour + timedelta(minutes=m)}
        for m, v in ((1, 0.9), (2, 0.8), (14, 0.7), (31, 0.75), (31, 0.25))
    ]
    cw.put_metric_data(Namespace=NS, MetricData=data)
    found, _ = results(
        cw,
        [query("auc", "AUC", ENV, stat="Maximum", period=900), query("p50", "AUC", ENV, stat="p50", period=900)],
        hour,
        hour + timedelta(hours=1),
        ScanBy="TimestampAscending",
    )
    assert found["auc"]["Timestamps"] == [hour, hour + timedelta(minutes=30)]  # 15-minute buckets from StartTime
    assert found["auc"]["Values"] == [0.9, 0.75]
    assert found["p50"]["Values"] == [0.8, 0.25]  # exact percentiles of the raw values
    newest_first, _ = results(cw, [query("auc", "AUC", ENV, stat="Minimum")], hour, hour + timedelta(hours=1))
    assert newest_first["auc"]["Values"] == [0.25, 0.7, 0.8, 0.9]  # ScanBy defaults to TimestampDescending

    pages, token, seen = 0, None, []
    while True:
        kwargs = {"MaxDatapoints": 3, **({"NextToken": token} if token else {})}
        page, token = results(cw, [query("auc", "AUC", ENV)], hour, hour + timedelta(hours=1), **kwargs)
        pages += 1
        seen += page["auc"]["Values"]
        assert page["auc"]["StatusCode"] == ("PartialData" if token else "Complete")
        if not token:
            break
    assert pages == 2 and seen == [1.0, 0.7, 0.8, 0.9]

    for bad in ({"Period": 45}, {"Stat": "Median"}):
        q = query("bad", "AUC", ENV)
        q["MetricStat"].update(bad)
        with pytest.raises(ClientError) as refused:
            results(cw, [q], hour, hour + timedelta(hours=1))
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_list_metrics_recently_active_and_pages_of_500(cw, sandbox):
    from sandbox import client

    cw.put_metric_data(Namespace=NS, MetricData=[{"MetricName": "Old", "Dimensions": ENV, "Value": 1}])
    client.call("tick", {"by": "4h"})
    cw.put_metric_data(
        Namespace=NS,
        MetricData=[
            {"MetricName": "Fresh", "Dimensions": [{"Name": "Feature", "Value": f"f{i:03d}"}], "Value": i}
            for i in range(501)
        ],
    )
    recent = cw.list_metrics(Namespace=NS, MetricName="Old", RecentlyActive="PT3H")["Metrics"]
    assert recent == []  # published more than three hours ago
    assert len(cw.list_metrics(Namespace=NS, MetricName="Old")["Metrics"]) == 1
    first = cw.list_metrics(Namespace=NS, MetricName="Fresh")
    assert len(first["Metrics"]) == 500 and first["NextToken"]
    rest = cw.list_metrics(Namespace=NS, MetricName="Fresh", NextToken=first["NextToken"])
    assert len(rest["Metrics"]) == 1 and "NextToken" not in rest


def test_alarms_start_insufficient_data_and_keep_their_state_on_update(cw, sandbox):
    alarm = {
        "AlarmName": "mlops-dev-quality-auc",
        "Namespace": NS,
        "MetricName": "AUC",
        "Dimensions": [*ENV, {"Name": "Pipeline", "Value": "quality"}],
        "Statistic": "Minimum",
        "Period": 86400,
        "EvaluationPeriods": 1,
        "Threshold": 0.9,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    cw.put_metric_alarm(**alarm)
    described = cw.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]
    assert described["StateValue"] == "INSUFFICIENT_DATA"
    cw.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="AUC fell")
    cw.put_metric_alarm(**{**alarm, "Threshold": 0.85})
    described = cw.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]
    assert (described["StateValue"], described["Threshold"]) == ("ALARM", 0.85)  # state kept, config replaced

    for n in range(3):
        cw.put_metric_alarm(**{**alarm, "AlarmName": f"mlops-dev-violations-{n}"})
    first = cw.describe_alarms(AlarmNamePrefix="mlops-dev-violations-", MaxRecords=2)
    rest = cw.describe_alarms(AlarmNamePrefix="mlops-dev-violations-", MaxRecords=2, NextToken=first["NextToken"])
    assert [a["AlarmName"] for a in first["MetricAlarms"] + rest["MetricAlarms"]] == [
        f"mlops-dev-violations-{n}" for n in range(3)
    ]
    in_alarm = cw.describe_alarms(AlarmNamePrefix="mlops-dev-", StateValue="ALARM")["MetricAlarms"]
    assert [a["AlarmName"] for a in in_alarm] == [alarm["AlarmName"]]  # both filters apply


def test_dashboards_need_a_widgets_array(cw, sandbox):
    body = {"widgets": [{"type": "metric", "properties": {"metrics": [[NS, "DriftScore", "Environment", "dev"]]}}]}
    assert (
        cw.put_dashboard(DashboardName="mlops-dev", DashboardBody=json.dumps(body))["DashboardValidationMessages"] == []
    )
    got = cw.get_dashboard(DashboardName="mlops-dev")
    assert json.loads(got["DashboardBody"]) == body
    assert got["DashboardArn"] == f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/mlops-dev"
    for bad in ({"widget": []}, {"widgets": [{"type": "chart", "properties": {}}]}):
        with pytest.raises(ClientError) as refused:
            cw.put_dashboard(DashboardName="mlops-bad", DashboardBody=json.dumps(bad))
        assert refused.value.response["Error"]["Code"] == "InvalidParameterInput"
    assert [d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]] == ["mlops-dev"]


def test_put_metric_data_is_authorized_by_the_namespace_condition_key(account, sandbox):
    iam = account.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName="metrics-publisher", AssumeRolePolicyDocument=json.dumps(trust))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": NS}},
            }
        ],
    }
    iam.put_role_policy(RoleName="metrics-publisher", PolicyName="publish", PolicyDocument=json.dumps(policy))
    creds = account.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/metrics-publisher", RoleSessionName="publisher"
    )["Credentials"]
    publisher = boto3.client(
        "cloudwatch",
        endpoint_url=sandbox["endpoint"],
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}),
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    publisher.put_metric_data(Namespace=NS, MetricData=[{"MetricName": "Violations", "Dimensions": ENV, "Value": 0}])
    with pytest.raises(ClientError) as denied:
        publisher.put_metric_data(Namespace="MLOps/other", MetricData=[{"MetricName": "Violations", "Value": 0}])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "cloudwatch:PutMetricData" in denied.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as not_granted:
        publisher.list_metrics(Namespace=NS)
    assert not_granted.value.response["Error"]["Code"] == "AccessDenied"
