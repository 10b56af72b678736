"""CloudWatch metrics, alarms and dashboards as AWS's API reference describes them, on the sandbox clock.

moto 5.2 stores PutMetricData but: stamps a datapoint without Timestamp with the wall clock (not the
sandbox clock that `sandbox tick` moves); lists a metric with two or more dimensions once per datapoint
in ListMetrics and ignores RecentlyActive; in GetMetricData matches a query without dimensions to every
metric of that name, a query with dimensions to any namespace, answers percentiles with HTTP 500, and has
no MaxDatapoints/NextToken; creates alarms in state OK and resets the state when an alarm is updated;
DescribeAlarms returns composite alarms unasked and ignores combined filters and paging; PutDashboard
accepts any JSON. This patch answers those operations as documented:

- PutMetricData https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
- GetMetricData https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html
- ListMetrics   https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_ListMetrics.html
- PutMetricAlarm https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
- DescribeAlarms https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html
- PutDashboard  https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html
- a metric is its namespace, name and exact set of dimensions
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension

and authorizes them (sandbox/patches/enforcement.py) with the `cloudwatch:namespace` condition key of
PutMetricData and the alarm/dashboard ARNs of the service authorization reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html).

Differences kept on purpose: metric data is kept at full resolution for as long as the sandbox lives
(AWS aggregates by age: 1-minute points for 15 days, 5-minute for 63, hourly for 455), and a period under
60 seconds is answered for any metric (AWS keeps such data only for StorageResolution=1 metrics, 3 hours);
PutCompositeAlarm is not implemented (moto answers HTTP 500); a refused dashboard body is
InvalidParameterInput without the DashboardValidationMessages details; a new metric is
listed at once (AWS: up to 15 minutes); percentiles are computed exactly on the raw values (AWS
approximates); metric math evaluates only a reference to another query's id; alarms are stored, not
evaluated (their state changes only through SetAlarmState).
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox import clock
from sandbox.patches.enforcement import ERRORS, Caller, Target, param, resolver
from sandbox.patching import Patch

MAX_METRIC_DATA = 1000  # entries per PutMetricData
MAX_DIMENSIONS = 30
MAX_VALUES = 150  # Values/Counts per entry
MAX_QUERIES = 500  # MetricDataQueries per GetMetricData
DEFAULT_MAX_DATAPOINTS = 100_800
LIST_PAGE = 500  # ListMetrics results per call
DESCRIBE_MAX_RECORDS = 100
DESCRIBE_DEFAULT_RECORDS = 50
PAST_LIMIT = timedelta(days=14)  # a datapoint's Timestamp: at most two weeks back...
FUTURE_LIMIT = timedelta(hours=2)  # ...and two hours ahead
RECENTLY_ACTIVE = timedelta(hours=3)  # ListMetrics RecentlyActive=PT3H
LISTED_FOR = timedelta(days=14)  # ListMetrics omits metrics without data for two weeks
VALUE_MIN, VALUE_MAX = 8.515920e-109, 1.174271e108  # magnitudes CloudWatch accepts (besides 0)
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
_STATS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,2})?|100)$")
_QUERY_ID = re.compile(r"^[a-z][A-Za-z0-9_]*$")
_DASHBOARD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


# -- errors, in the protocol of the request (CBOR for boto3, query for Terraform's provider) ------------
def _exceptions():
    from moto.cloudwatch import exceptions

    return exceptions


def _invalid(message: str) -> Exception:
    return _exceptions().InvalidParameterValue(message)


def _combination(message: str) -> Exception:
    return _exceptions().InvalidParameterCombination(message)


def _missing(name: str) -> Exception:
    from moto.core.exceptions import ServiceException

    class MissingParameter(ServiceException):
        code = "MissingParameter"

    return MissingParameter(f"The parameter {name} is required.")


_current: dict[int, Any] = {}


def _access_denied(denied):
    """AccessDenied (403) serialized like any CloudWatch error of the request's protocol."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult
    from werkzeug.exceptions import HTTPException

    class AccessDenied(ServiceException):
        code = "AccessDenied"

    response = _current.pop(threading.get_ident(), None)
    err = HTTPException()
    err.code = 403
    if response is None:
        err.description = denied.message()
        return err
    _status, headers, body = response.serialized(ActionResult(AccessDenied(denied.message())))
    response.response_headers.update({k: v for k, v in headers.items() if k != "status"})
    err.description = body
    return err


# -- time ------------------------------------------------------------------------------------------------
def _aware(moment: Any) -> datetime:
    if isinstance(moment, (int, float)):
        return datetime.fromtimestamp(moment, UTC)
    if isinstance(moment, str):
        return clock.parse_time(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _now() -> datetime:
    return clock.now()


# -- the store: moto's datum objects, stamped with the sandbox clock ---------------------------------------
def _backend(response):
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[response.current_account][response.region]


def _identity(namespace: str, name: str, dimensions: Iterable) -> tuple:
    return namespace, name, frozenset((d.name, d.value) for d in dimensions)


def _data(backend) -> list:
    return list(backend.metric_data) + list(backend.aws_metric_data)


def put_metric_data(self) -> Any:
    from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum
    from moto.core.responses import EmptyResult

    namespace = self._get_param("Namespace")
    entries = self._get_param("MetricData") or []
    if not namespace:
        raise _missing("Namespace")
    if namespace.startswith("AWS/"):
        raise _invalid(
            f"The value {namespace} for parameter Namespace is invalid: "
            "namespaces starting with AWS/ are reserved for AWS services."
        )
    if not entries:
        raise _missing("MetricData")
    if len(entries) > MAX_METRIC_DATA:
        raise _invalid(f"The collection MetricData must not have a size greater than {MAX_METRIC_DATA}.")
    now = _now()
    stored = []
    for number, entry in enumerate(entries, 1):
        where = f"MetricData.member.{number}"
        stored += _entry(entry, where, namespace, now, MetricDatum, MetricAggregatedDatum)
    backend = _backend(self)
    for item in stored:
        item.received = now
    backend.metric_data.extend(stored)
    return EmptyResult()


def _entry(entry: dict, where: str, namespace: str, now: datetime, MetricDatum, MetricAggregatedDatum) -> list:
    name = entry.get("MetricName")
    if not name:
        raise _missing(f"{where}.MetricName")
    dimensions = entry.get("Dimensions") or []
    if len(dimensions) > MAX_DIMENSIONS:
        raise _invalid(f"The collection {where}.Dimensions must not have a size greater than {MAX_DIMENSIONS}.")
    names = [d.get("Name") for d in dimensions]
    if len(set(names)) != len(names):
        raise _invalid(f"No Metric may specify the same dimension name twice ({where}.Dimensions).")
    for index, dimension in enumerate(dimensions, 1):
        if not dimension.get("Name") or dimension.get("Value") in (None, ""):
            raise _invalid(f"The parameter {where}.Dimensions.member.{index} needs a Name and a non-empty Value.")
    given = entry.get("Timestamp")
    at = _aware(given) if given is not None else now
    if at < now - PAST_LIMIT or at > now + FUTURE_LIMIT:
        raise _invalid(
            f"The parameter {where}.Timestamp must specify a time no more than two weeks in the past "
            f"and no more than two hours in the future (it is {clock.iso(at)}, now is {clock.iso(now)})."
        )
    unit = entry.get("Unit") or "None"
    common = {"namespace": namespace, "name": name, "dimensions": dimensions, "timestamp": at, "unit": unit}
    present = [k for k in ("Value", "Values", "StatisticValues") if entry.get(k) not in (None, [])]
    if len(present) > 1:
        raise _combination(
            f"The parameters {where}.{present[0]} and {where}.{present[1]} are mutually exclusive "
            "and you have specified both."
        )
    if entry.get("Values"):
        values, counts = entry["Values"], entry.get("Counts") or [1.0] * len(entry["Values"])
        if len(values) > MAX_VALUES:
            raise _invalid(f"The collection {where}.Values must not have a size greater than {MAX_VALUES}.")
        if len(counts) != len(values):
            raise _invalid(f"The parameters {where}.Values and {where}.Counts must be of the same size.")
        out = []
        for value, count in zip(values, counts, strict=True):
            _check_value(value, f"{where}.Values")
            total = float(count)
            # n equal values: one aggregated datum, so a count of 10^6 costs one object
            out.append(
                MetricAggregatedDatum(
                    min_stat=float(value),
                    max_stat=float(value),
                    sample_count=total,
                    sum_stat=float(value) * total,
                    **common,
                )
            )
            out[-1].raw = [(float(value), total)]
        return out
    if entry.get("StatisticValues"):
        stats = entry["StatisticValues"]
        for key in ("SampleCount", "Sum", "Minimum", "Maximum"):
            if stats.get(key) is None:
                raise _missing(f"{where}.StatisticValues.{key}")
            _check_value(stats[key], f"{where}.StatisticValues.{key}")
        return [
            MetricAggregatedDatum(
                min_stat=float(stats["Minimum"]),
                max_stat=float(stats["Maximum"]),
                sample_count=float(stats["SampleCount"]),
                sum_stat=float(stats["Sum"]),
                **common,
            )
        ]
    value = entry.get("Value")
    if value is None:
        raise _missing(f"{where}.Value")  # AWS: one of Value, Values, StatisticValues
    _check_value(value, f"{where}.Value")
    return [MetricDatum(value=float(value), **common)]


def _check_value(value: Any, where: str) -> None:
    number = float(value)
    if math.isnan(number) or math.isinf(number) or (number != 0 and not VALUE_MIN <= abs(number) <= VALUE_MAX):
        raise _invalid(f"The value {value} for parameter {where} is invalid.")


# -- reading: one metric's datapoints, bucketed by period -------------------------------------------------
def _samples(datum) -> list[tuple[float, float]] | None:
    """(value, count) pairs a datum stands for; None for a StatisticValues set (no raw values)."""
    if hasattr(datum, "value"):
        return [(float(datum.value), 1.0)]
    return getattr(datum, "raw", None)


def _statistic(stat: str, data: list) -> float | None:
    count = sum(_count(d) for d in data)
    if not count:
        return None
    if stat == "SampleCount":
        return count
    total = sum(_sum(d) for d in data)
    if stat == "Sum":
        return total
    if stat == "Average":
        return total / count
    if stat == "Minimum":
        return min(_min(d) for d in data)
    if stat == "Maximum":
        return max(_max(d) for d in data)
    match = _PERCENTILE.match(stat)
    samples = [_samples(d) for d in data]
    if match is None or any(s is None for s in samples):
        return None  # a percentile needs raw values: StatisticValues sets carry none (AWS: no value either)
    pairs = sorted(p for pairs in samples if pairs for p in pairs)
    rank, seen = math.ceil(float(match.group(1)) / 100 * count), 0.0
    for value, n in pairs:
        seen += n
        if seen >= max(rank, 1):
            return value
    return pairs[-1][0]


def _count(d) -> float:
    return float(d.sample_count) if hasattr(d, "sample_count") else 1.0


def _sum(d) -> float:
    return float(d.sum) if hasattr(d, "sum") else float(d.value)


def _min(d) -> float:
    return float(d.min) if hasattr(d, "min") else float(d.value)


def _max(d) -> float:
    return float(d.max) if hasattr(d, "max") else float(d.value)


def _valid_stat(stat: str) -> bool:
    return stat in _STATS or bool(_PERCENTILE.match(stat or ""))


def _round_start(start: datetime, period: int, now: datetime) -> datetime:
    """StartTime as CloudWatch rounds it: by its age (1 minute, 5 minutes, 1 hour), or to the period for
    high-resolution periods."""
    if period in HIGH_RESOLUTION_PERIODS:
        step = period
    else:
        age = now - start
        step = 60 if age < timedelta(days=15) else 300 if age <= timedelta(days=63) else 3600
    epoch = int(start.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, UTC)


def _series(backend, query: dict, index: int, start: datetime, end: datetime, now: datetime) -> dict:
    where = f"MetricDataQueries.member.{index}.MetricStat"
    stat_block = query["MetricStat"]
    metric = stat_block.get("Metric") or {}
    namespace, name = metric.get("Namespace"), metric.get("MetricName")
    if not name:
        raise _missing(f"{where}.Metric.MetricName")
    period = int(stat_block.get("Period") or 0)
    if period < 1 or (period not in HIGH_RESOLUTION_PERIODS and period % 60):
        raise _invalid(f"The parameter {where}.Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
    stat = stat_block.get("Stat") or ""
    if not _valid_stat(stat):
        raise _invalid(f"The value {stat} for parameter {where}.Stat is not a supported statistic.")
    wanted = (namespace, name, frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions") or []))
    unit = stat_block.get("Unit")
    first = _round_start(start, period, now)
    buckets: dict[datetime, list] = {}
    for datum in _data(backend):
        if _identity(datum.namespace, datum.name, datum.dimensions) != wanted:
            continue
        if unit and (datum.unit or "None") != unit:
            continue
        at = _aware(datum.timestamp)
        if not first <= at < end:
            continue
        slot = first + timedelta(seconds=((at - first).total_seconds() // period) * period)
        buckets.setdefault(slot, []).append(datum)
    points = {t: v for t, data in buckets.items() if (v := _statistic(stat, data)) is not None}
    return {"Id": query["Id"], "Label": query.get("Label") or name, "Points": points}


def get_metric_data(self) -> Any:
    from moto.core.responses import ActionResult

    start, end = self._get_param("StartTime"), self._get_param("EndTime")
    if start is None or end is None:
        raise _missing("StartTime" if start is None else "EndTime")
    start, end = _aware(start), _aware(end)
    if start >= end:
        raise _exceptions().ValidationError("The parameter StartTime must be less than the parameter EndTime.")
    queries = self._get_param("MetricDataQueries") or []
    if not queries:
        raise _missing("MetricDataQueries")
    if len(queries) > MAX_QUERIES:
        raise _invalid(f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}.")
    scan_by = self._get_param("ScanBy") or "TimestampDescending"
    if scan_by not in ("TimestampDescending", "TimestampAscending"):
        raise _invalid(f"The value {scan_by} for parameter ScanBy is invalid.")
    max_points = int(self._get_param("MaxDatapoints") or DEFAULT_MAX_DATAPOINTS)
    if max_points < 1:
        raise _invalid("The parameter MaxDatapoints must be greater than 0.")
    ids = [q.get("Id") for q in queries]
    for index, query in enumerate(queries, 1):
        if not query.get("Id") or not _QUERY_ID.match(query["Id"]):
            raise _invalid(
                f"The value {query.get('Id')} for parameter MetricDataQueries.member.{index}.Id is invalid: "
                "it must start with a lowercase letter and hold only letters, numbers and underscores."
            )
        if ("MetricStat" in query) == ("Expression" in query):
            raise _invalid(
                f"Exactly one of MetricDataQueries.member.{index}.MetricStat and "
                f"MetricDataQueries.member.{index}.Expression must be specified."
            )
    if len(set(ids)) != len(ids):
        raise _invalid("The values of MetricDataQueries.member.N.Id must be unique.")
    backend, now = _backend(self), _now()
    by_id = {}
    for index, query in enumerate(queries, 1):
        if "MetricStat" in query:
            by_id[query["Id"]] = _series(backend, query, index, start, end, now)
    series = []
    for index, query in enumerate(queries, 1):
        if "Expression" in query:
            source = by_id.get(query["Expression"].strip())
            if source is None:
                raise _invalid(
                    f"MetricDataQueries.member.{index}.Expression: the sandbox evaluates only a reference to "
                    "another query's Id, not metric math or Metrics Insights."
                )
            series.append({"Id": query["Id"], "Label": query.get("Label") or query["Id"], "Points": source["Points"]})
        elif query.get("ReturnData", True) is not False:
            series.append(by_id[query["Id"]])
    results, token = _page(series, scan_by, max_points, self._get_param("NextToken"))
    out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
    if token:
        out["NextToken"] = token
    return ActionResult(out)


def _page(series: list[dict], scan_by: str, max_points: int, token: str | None) -> tuple[list[dict], str | None]:
    """Time-sliced pages: every page covers the same time range for all queries, newest (or oldest) first,
    with at most max_points datapoints; results cut short are PartialData and NextToken resumes them."""
    descending = scan_by == "TimestampDescending"
    after = _decode_token(token, "GetMetricData") if token else None
    times = sorted({t for s in series for t in s["Points"]}, reverse=descending)
    if after is not None:
        cursor = _aware(after)
        times = [t for t in times if (t < cursor if descending else t > cursor)]
    taken: list[datetime] = []
    used = 0
    for moment in times:
        here = sum(1 for s in series if moment in s["Points"])
        if taken and used + here > max_points:
            break
        taken.append(moment)
        used += here
    more = len(taken) < len(times)
    chosen = set(taken)
    results = []
    for s in series:
        stamps = [t for t in sorted(s["Points"], reverse=descending) if t in chosen]
        results.append(
            {
                "Id": s["Id"],
                "Label": s["Label"],
                "Timestamps": stamps,
                "Values": [s["Points"][t] for t in stamps],
                "StatusCode": "PartialData" if more else "Complete",
            }
        )
    return results, (_encode_token({"after": taken[-1].isoformat()}) if more else None)


def _encode_token(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()


def _decode_token(token: str, operation: str) -> Any:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        return next(iter(state.values()))
    except (ValueError, TypeError, StopIteration):
        raise _invalid(f"The NextToken of this {operation} request is invalid.") from None


def get_metric_statistics(self) -> Any:
    """GetMetricStatistics over the same store (moto's compares naive and aware times and fails)
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html"""
    from moto.core.responses import ActionResult

    start, end = self._get_param("StartTime"), self._get_param("EndTime")
    if start is None or end is None:
        raise _missing("StartTime" if start is None else "EndTime")
    start, end = _aware(start), _aware(end)
    if start >= end:
        raise _invalid("The parameter StartTime must be less than the parameter EndTime.")
    stats, extended = self._get_param("Statistics") or [], self._get_param("ExtendedStatistics") or []
    if bool(stats) == bool(extended):
        raise _combination("Must specify either Statistics or ExtendedStatistics")
    name = self._get_param("MetricName")
    metric = {"Namespace": self._get_param("Namespace"), "MetricName": name}
    metric["Dimensions"] = self._get_param("Dimensions") or []
    unit = self._get_param("Unit")
    points: dict[datetime, dict] = {}
    for stat in [*stats, *extended]:
        block = {
            "Metric": metric,
            "Period": self._get_param("Period"),
            "Stat": stat,
            **({"Unit": unit} if unit else {}),
        }
        series = _series(self.cloudwatch_backend, {"Id": "q", "MetricStat": block}, 1, start, end, _now())
        for moment, value in series["Points"].items():
            point = points.setdefault(moment, {"Timestamp": moment, "Unit": unit or "None"})
            if stat in stats:
                point[stat] = value
            else:
                point.setdefault("ExtendedStatistics", {})[stat] = value
    return ActionResult({"Label": name, "Datapoints": [points[t] for t in sorted(points)]})


# -- ListMetrics -----------------------------------------------------------------------------------------
def list_metrics(self) -> Any:
    from moto.core.responses import ActionResult

    namespace, name = self._get_param("Namespace"), self._get_param("MetricName")
    filters = self._get_param("Dimensions") or []
    if len(filters) > 10:
        raise _invalid("The collection Dimensions must not have a size greater than 10.")
    recently = self._get_param("RecentlyActive")
    if recently not in (None, "", "PT3H"):
        raise _invalid(f"The value {recently} for parameter RecentlyActive is invalid: PT3H is the only valid value.")
    now = _now()
    since = now - (RECENTLY_ACTIVE if recently else LISTED_FOR)
    found: dict[tuple, dict] = {}
    for datum in _data(self.cloudwatch_backend):
        if (namespace and datum.namespace != namespace) or (name and datum.name != name):
            continue
        held = {(d.name, d.value) for d in datum.dimensions}
        held_names = {d.name for d in datum.dimensions}
        if any(
            (f["Name"], f["Value"]) not in held if f.get("Value") is not None else f["Name"] not in held_names
            for f in filters
        ):
            continue
        if _aware(getattr(datum, "received", None) or datum.timestamp) < since:
            continue
        key = _identity(datum.namespace, datum.name, datum.dimensions)
        found.setdefault(
            key,
            {
                "Namespace": datum.namespace,
                "MetricName": datum.name,
                "Dimensions": [{"Name": d.name, "Value": d.value} for d in datum.dimensions],
            },
        )
    ordered = [found[k] for k in sorted(found, key=lambda k: (k[0], k[1], sorted(k[2])))]
    page, following = _offset_page(ordered, LIST_PAGE, self._get_param("NextToken"), "ListMetrics")
    out: dict[str, Any] = {"Metrics": page}
    if following:
        out["NextToken"] = following
    return ActionResult(out)


def _offset_page(items: list, limit: int, token: str | None, operation: str) -> tuple[list, str | None]:
    """One page of `items` from the offset `token` carries, and the token of the next page (None: last)."""
    offset = 0
    if token:
        offset = _decode_token(token, operation)
        if not isinstance(offset, int) or offset < 0:
            raise _invalid(f"The NextToken of this {operation} request is invalid.")
    following = _encode_token({"offset": offset + limit}) if offset + limit < len(items) else None
    return items[offset : offset + limit], following


# -- alarms -----------------------------------------------------------------------------------------------
def put_metric_alarm_keeps_state(original: Any) -> Any:
    """A new alarm starts INSUFFICIENT_DATA; an update overwrites the configuration and keeps the state."""

    def put_metric_alarm(self, name, *args, **kwargs):
        previous = self.alarms.get(name)
        alarm = original(self, name, *args, **kwargs)
        now = _now().replace(tzinfo=None)
        alarm.configuration_updated_timestamp = now
        if previous is None:
            alarm.state_value = "INSUFFICIENT_DATA"
            alarm.state_reason = "Unchecked: Initial alarm creation"
            alarm.state_updated_timestamp = now
        else:
            for attribute in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                setattr(alarm, attribute, getattr(previous, attribute))
        return alarm

    return put_metric_alarm


def describe_alarms(self) -> Any:
    from moto.core.responses import ActionResult

    names = self._get_param("AlarmNames") or []
    prefix = self._get_param("AlarmNamePrefix")
    if names and prefix:
        raise _combination("AlarmNames and AlarmNamePrefix cannot be specified together.")
    state = self._get_param("StateValue")
    action_prefix = self._get_param("ActionPrefix")
    kinds = self._get_param("AlarmTypes") or ["MetricAlarm"]
    limit = int(self._get_param("MaxRecords") or DESCRIBE_DEFAULT_RECORDS)
    if not 1 <= limit <= DESCRIBE_MAX_RECORDS:
        raise _invalid(f"The parameter MaxRecords must be between 1 and {DESCRIBE_MAX_RECORDS}.")
    chosen = []
    for alarm in sorted(self.cloudwatch_backend.alarms.values(), key=lambda a: a.name):
        kind = "CompositeAlarm" if alarm.rule is not None else "MetricAlarm"
        if kind not in kinds:
            continue
        if (names and alarm.name not in names) or (prefix and not alarm.name.startswith(prefix)):
            continue
        if state and alarm.state_value != state:
            continue
        if action_prefix and not any(a.startswith(action_prefix) for a in alarm.alarm_actions):
            continue
        chosen.append(alarm)
    page, following = _offset_page(chosen, limit, self._get_param("NextToken"), "DescribeAlarms")
    out: dict[str, Any] = {
        "MetricAlarms": [a for a in page if a.rule is None],
        "CompositeAlarms": [a for a in page if a.rule is not None],
    }
    if following:
        out["NextToken"] = following
    return ActionResult(out)


# -- dashboards ---------------------------------------------------------------------------------------------
def put_dashboard(self) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("DashboardName") or ""
    body = self._get_param("DashboardBody")
    if not _DASHBOARD_NAME.match(name):
        raise _invalid(f"The value {name} for parameter DashboardName is invalid: 1 to 255 letters, numbers, - and _.")
    if body is None:
        raise _missing("DashboardBody")
    problems = _dashboard_problems(body)
    if problems:
        error = _exceptions().DashboardInvalidInputError("The input for the dashboard body is invalid.")
        error.DashboardValidationMessages = [{"DataPath": path, "Message": text} for path, text in problems]
        raise error
    dashboard = self.cloudwatch_backend.put_dashboard(name, body)
    dashboard.last_modified = _now()
    return ActionResult({"DashboardValidationMessages": []})


def _dashboard_problems(body: str) -> list[tuple[str, str]]:
    """The dashboard body structure (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html):
    an object with a `widgets` array of objects, each with a `type` and `properties`."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        return [("/", f"The dashboard body is not valid JSON: {exc}")]
    if not isinstance(document, dict):
        return [("/", "The dashboard body must be a JSON object.")]
    widgets = document.get("widgets")
    if not isinstance(widgets, list):
        return [("/widgets", "Should be an array of widgets.")]
    problems = []
    for index, widget in enumerate(widgets):
        if not isinstance(widget, dict):
            problems.append((f"/widgets/{index}", "Should be an object."))
            continue
        if widget.get("type") not in ("metric", "text", "log", "alarm", "explorer", "custom"):
            problems.append((f"/widgets/{index}/type", f"Invalid widget type {widget.get('type')!r}."))
        if not isinstance(widget.get("properties"), dict):
            problems.append((f"/widgets/{index}/properties", "Should be an object."))
        elif widget.get("type") == "metric" and not (
            isinstance(widget["properties"].get("metrics"), list) or widget["properties"].get("annotations")
        ):
            problems.append((f"/widgets/{index}/properties/metrics", "A metric widget needs a metrics array."))
    return problems


# -- authorization: what each request acts on ----------------------------------------------------------------
_ALARM_ACTIONS = {"PutMetricAlarm", "PutCompositeAlarm", "SetAlarmState", "DescribeAlarmHistory"}
_ALARMS_ACTIONS = {"DeleteAlarms", "DescribeAlarms", "EnableAlarmActions", "DisableAlarmActions"}
_DASHBOARD_ACTIONS = {"PutDashboard", "GetDashboard"}


@resolver("monitoring")
def _cloudwatch(response, action, caller: Caller, region, _default_resource) -> Target:
    _current[threading.get_ident()] = response
    acct = caller.account_id
    target = Target(["*"], acct, policy_kind="none", action=f"cloudwatch:{action}")

    def alarm(name: str) -> str:
        return f"arn:aws:cloudwatch:{region}:{acct}:alarm:{name}"

    if action == "PutMetricData":
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html
        target.context["cloudwatch:namespace"] = param(response, "Namespace")
    elif action in _ALARM_ACTIONS and param(response, "AlarmName"):
        target.resources = [alarm(param(response, "AlarmName"))]
        if action in ("PutMetricAlarm", "PutCompositeAlarm"):
            # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-alarm-actions.html
            actions = [
                a
                for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
                for a in (param(response, key) or [])
            ]
            if actions:
                target.context["cloudwatch:AlarmActions"] = actions
    elif action in _ALARMS_ACTIONS:
        names = param(response, "AlarmNames") or []
        target.resources = [alarm(n) for n in names] or [alarm("*")]
    elif action in _DASHBOARD_ACTIONS and param(response, "DashboardName"):
        target.resources = [f"arn:aws:cloudwatch::{acct}:dashboard/{param(response, 'DashboardName')}"]
    elif action == "DeleteDashboards":
        names = param(response, "DashboardNames") or []
        target.resources = [f"arn:aws:cloudwatch::{acct}:dashboard/{n}" for n in names] or ["*"]
    elif action in ("TagResource", "UntagResource", "ListTagsForResource") and param(response, "ResourceARN"):
        target.resources = [param(response, "ResourceARN")]
    tags = param(response, "Tags") or []
    if tags and action in ("PutMetricAlarm", "PutCompositeAlarm", "TagResource", "PutInsightRule"):
        target.context.update({f"aws:RequestTag/{t['Key']}": t["Value"] for t in tags if "Key" in t})
        target.context["aws:TagKeys"] = [t["Key"] for t in tags if "Key" in t]
        if action != "TagResource":
            # creating a tagged alarm also needs cloudwatch:TagResource (PutMetricAlarm's reference)
            target.extra_actions.append("cloudwatch:TagResource")
    return target


def _forget_request(handler):
    def wrapped(self):
        try:
            return handler(self)
        finally:
            _current.pop(threading.get_ident(), None)

    return wrapped


def patch_cloudwatch() -> None:
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    CloudWatchResponse.put_metric_data = _forget_request(put_metric_data)
    CloudWatchResponse.get_metric_data = _forget_request(get_metric_data)
    CloudWatchResponse.list_metrics = _forget_request(list_metrics)
    CloudWatchResponse.get_metric_statistics = _forget_request(get_metric_statistics)
    CloudWatchResponse.describe_alarms = _forget_request(describe_alarms)
    CloudWatchResponse.put_dashboard = _forget_request(put_dashboard)
    CloudWatchBackend.put_metric_alarm = put_metric_alarm_keeps_state(CloudWatchBackend.put_metric_alarm)
    ERRORS["monitoring"] = _access_denied


PATCH = Patch(
    name="cloudwatch-metrics",
    adds=(
        "CloudWatch as documented: datapoints on the sandbox clock, metrics identified by their exact dimensions, "
        "GetMetricData periods/statistics/ScanBy/paging, ListMetrics without duplicates and with RecentlyActive, "
        "alarms that start INSUFFICIENT_DATA and keep their state on update, validated dashboards, and the "
        "cloudwatch:namespace condition key"
    ),
    overrides=(
        "moto.cloudwatch.responses.CloudWatchResponse.put_metric_data",
        "moto.cloudwatch.responses.CloudWatchResponse.get_metric_data",
        "moto.cloudwatch.responses.CloudWatchResponse.list_metrics",
        "moto.cloudwatch.responses.CloudWatchResponse.get_metric_statistics",
        "moto.cloudwatch.responses.CloudWatchResponse.describe_alarms",
        "moto.cloudwatch.responses.CloudWatchResponse.put_dashboard",
        "moto.cloudwatch.models.CloudWatchBackend.put_metric_alarm",
    ),
    apply=patch_cloudwatch,
)
