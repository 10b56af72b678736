"""`promote monitor`: an environment's recent pipeline runs with their CloudWatch metrics, and a chart of
drift and quality over time with the approvals and retrains marked.

Everything is read from the APIs, the same on the sandbox and AWS: runs and why they failed from
ListPipelineExecutions / ListPipelineExecutionSteps and who started them from CloudTrail (workload
account), the metrics from GetMetricData (workload account, the metric contract of `pipelines.metrics`),
the approvals from the versions' decision records (registry account, as the approver role).

Joining metrics to runs: the contract's metrics carry no execution id (one time series per environment,
pipeline kind, feature or check, so dashboards and alarms stay stable), and each datapoint is stamped with
the time its step ran. So each run gets its own GetMetricData call over its own window, from its start
to a second after its last step's end (clock skew), one period covering it, asking the Sum and
SampleCount of each metric. CloudWatch rounds the window's start down to the minute (5 minutes or an
hour for older data), so the window can also hold the readings of an earlier run of the same pipeline
in that minute: when that run lies wholly inside the window, its own readings (known from its own
window) are subtracted; when a run lies partly inside (it straddles the minute, or runs overlapped),
what it published is marked ambiguous for this run (flagged '?' in the table, listed in
`metrics_ambiguous` in JSON, left out of the chart), never attributed.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_core.config import Environment
from mlops_core.errors import AccessDenied, ConfigError, ToolkitError
from mlops_core.session import Sessions
from mlops_core.text import table
from pipelines import metrics as contract
from promote.registry import Registry, decisions, person, start_records, version_of

KINDS = (contract.INFERENCE, contract.QUALITY, contract.TRAIN, contract.HPO)
# (field in a run's "quality", the metric): auc AUC, f1 F1, ...
QUALITY_FIELDS = tuple((key, metric) for metric, key in contract.QUALITY_KEYS.items())
CHECKS = contract.CHECKS
# The failed step that means "the model is stale" for each retrain pipeline, and what started it.
RETRAIN_CAUSES = {
    "train": ("inference", "DataDriftDetected", "drift"),
    "hpo": ("quality", "ModelQualityBelowThreshold", "quality"),
}
_SINCE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_PAGE = 100  # ListPipelineExecutions' and ListPipelineExecutionSteps' largest page
_MAX_QUERIES = 500  # GetMetricData's limit per call


class MonitorError(ToolkitError):
    """The runs or their metrics cannot be read."""


# -- input -----------------------------------------------------------------------------------------
def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an age (90m, 12h, 30d, 2w) or an ISO date/time (2026-11-01, 2026-11-01T06:00Z), as UTC."""
    now = now or datetime.now(UTC)
    value = str(text or "").strip()
    match = _SINCE.match(value)
    if match:
        amount = int(match.group(1))
        if amount == 0:
            raise ConfigError(f"'{text}' is an empty window: give an age above zero (e.g. 12h, 30d)", field="--since")
        return now - timedelta(seconds=amount * _UNITS[match.group(2)])
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"'{text}' is neither an age (90m, 12h, 30d, 2w) nor an ISO date (2026-11-01, 2026-11-01T06:00Z)",
            field="--since",
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if at >= now:
        raise ConfigError(f"'{text}' is not in the past (now is {_iso(now)})", field="--since")
    return at


def check_chart_path(path: str) -> Path:
    """`--chart PATH`: a .png file whose directory exists and is writable (checked before anything is read)."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ConfigError(f"'{path}' must name a .png file", field="--chart")
    if target.is_dir():
        raise ConfigError(f"'{path}' is a directory, not a file", field="--chart")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"'{path}': directory {parent} does not exist", field="--chart")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"'{path}': directory {parent} is not writable", field="--chart")
    return target


# -- reading ---------------------------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _denied(exc: Any) -> bool:
    return exc.response.get("Error", {}).get("Code") in AccessDenied.CODES


def _missing_pipeline(exc: Any) -> bool:
    err = exc.response.get("Error", {})
    message = err.get("Message", "").lower()
    return err.get("Code") == "ResourceNotFound" or (
        err.get("Code") == "ValidationException"
        and any(words in message for words in ("not found", "does not exist", "could not find"))
    )


def _executions(sm: Any, pipeline: str, since: datetime) -> list[dict] | None:
    """Every execution of `pipeline` started since `since`, all pages; None if it is not deployed."""
    from botocore.exceptions import ClientError

    found, token = [], None
    while True:
        kwargs: dict = {
            "PipelineName": pipeline,
            "CreatedAfter": since,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": _PAGE,
        }
        if token:
            kwargs["NextToken"] = token
        try:
            page = sm.list_pipeline_executions(**kwargs)
        except ClientError as exc:
            if _missing_pipeline(exc):
                return None
            raise (AccessDenied.from_client_error(exc) or exc) from None
        # the filter is applied here too: the answer must be the same whoever serves the call
        found += [s for s in page.get("PipelineExecutionSummaries", []) if since <= _utc(s["StartTime"])]
        token = page.get("NextToken")
        if not token:
            return found


def _steps(sm: Any, execution: str) -> list[dict]:
    from botocore.exceptions import ClientError

    found, token = [], None
    while True:
        kwargs: dict = {"PipelineExecutionArn": execution, "SortOrder": "Ascending", "MaxResults": _PAGE}
        if token:
            kwargs["NextToken"] = token
        try:
            page = sm.list_pipeline_execution_steps(**kwargs)
        except ClientError as exc:
            raise (AccessDenied.from_client_error(exc) or exc) from None
        found += page.get("PipelineExecutionSteps", [])
        token = page.get("NextToken")
        if not token:
            return found


def _lambda_output(step: dict, name: str) -> str | None:
    for output in ((step.get("Metadata") or {}).get("Lambda") or {}).get("OutputParameters") or []:
        if output.get("Name") == name:
            return output.get("Value")
    return None


def _run(kind: str, pipeline: str, summary: dict, steps: list[dict], now: datetime) -> dict:
    """One execution as a row: times, status, the failed step and why, the version it used or registered."""
    start = _utc(summary["StartTime"])
    status = summary.get("PipelineExecutionStatus", "")
    ends = [_utc(s["EndTime"]) for s in steps if s.get("EndTime")]
    terminal = status in ("Succeeded", "Failed", "Stopped")
    end = max(ends) if ends and terminal else None
    # a run still going: its window reaches the latest time seen (a backend's clock may run ahead of ours)
    reach = end or max([now, start, *ends])
    failed = next((s for s in reversed(steps) if s.get("StepStatus") == "Failed"), None)
    version, version_from = None, None
    for step in steps:
        value = _lambda_output(step, "model_version")
        if value and value.isdigit():
            version, version_from = int(value), "LatestApprovedModel step"
        registered = ((step.get("Metadata") or {}).get("RegisterModel") or {}).get("Arn")
        if registered:
            version, version_from = int(registered.rsplit("/", 1)[1]), "registered"
    reason = None
    if failed is not None:
        reason = failed.get("FailureReason") or ((failed.get("Metadata") or {}).get("Fail") or {}).get("ErrorMessage")
    elif status == "Failed":
        reason = summary.get("PipelineExecutionFailureReason")
    arn = summary["PipelineExecutionArn"]
    return {
        "pipeline": kind,
        "pipeline_name": pipeline,
        "execution_arn": arn,
        "execution": arn.rsplit("/", 1)[-1],
        "start": _iso(start),
        "end": _iso(end),
        "duration_seconds": round((end - start).total_seconds(), 1) if end else None,
        "status": status,
        "failed_step": failed.get("StepName") if failed is not None else None,
        "failure_reason": reason,
        "started_by": None,
        "started_by_kind": None,
        "model_version": version,
        "model_version_from": version_from,
        "rows_scored": None,
        "drift": None,
        "violations": {},
        "quality": {},
        "metrics_ambiguous": [],
        "_window": (start, reach),
    }


def _starters(env: Environment, trail: Any, since: datetime) -> dict:
    """{execution ARN: (who, kind)} from CloudTrail's StartPipelineExecution records in the window."""
    found: dict = {}
    events_role = env.role_arn("events")
    lambda_role = env.role_arn("lambda")
    for record in start_records(trail, since):  # up to now
        arn = (record.get("responseElements") or {}).get("pipelineExecutionArn")
        if not arn:
            continue
        identity = record.get("userIdentity") or {}
        context = identity.get("sessionContext") or {}
        issuer = (context.get("sessionIssuer") or {}).get("arn")
        if context.get("sourceIdentity"):
            found[arn] = (context["sourceIdentity"], "person")
        elif issuer == events_role:
            # only events.amazonaws.com may assume the events role: a schedule or a rule started it
            found[arn] = ("EventBridge", "rule")
        elif issuer == lambda_role:
            found[arn] = ("arrival", "arrival")
        else:
            found[arn] = (person(identity.get("arn")) or "unknown", "other")
    return found


def _features(cw: Any, env: Environment, namespace: str) -> list[str]:
    """The features with a DriftDistance series for this environment (ListMetrics, all pages)."""
    names: set = set()
    token = None
    while True:
        kwargs: dict = {
            "Namespace": namespace,
            "MetricName": contract.DRIFT_DISTANCE,
            "Dimensions": [{"Name": contract.ENVIRONMENT, "Value": env.name}],
        }
        if token:
            kwargs["NextToken"] = token
        page = cw.list_metrics(**kwargs)
        for metric in page.get("Metrics", []):
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            if contract.FEATURE in dims:
                names.add(dims[contract.FEATURE])
        token = page.get("NextToken")
        if not token:
            return sorted(names)


# metrics that add up over a run (counts); every other metric is one reading per run (a gauge)
_COUNTS = {contract.ROWS_SCORED, contract.VIOLATIONS}


def _queries(kind: str, features: list[str]) -> list[tuple]:
    """(field, metric name, extra dimensions) for what a run of `kind` publishes."""
    by_kind = [(contract.PIPELINE, kind)]
    wanted: list[tuple] = []
    if kind == contract.INFERENCE:
        wanted += [("rows_scored", contract.ROWS_SCORED, by_kind), ("drift_score", contract.DRIFT_SCORE, by_kind)]
        for feature in features:
            dims = [(contract.FEATURE, feature)]
            wanted += [
                (f"distance:{feature}", contract.DRIFT_DISTANCE, dims),
                (f"bound:{feature}", contract.DRIFT_BOUND, dims),
            ]
    if kind in (contract.INFERENCE, contract.QUALITY):
        wanted.append(("model_version", contract.MODEL_VERSION, by_kind))
    if kind in (contract.QUALITY, contract.TRAIN, contract.HPO):
        wanted += [(name, metric, by_kind) for name, metric in QUALITY_FIELDS]
    wanted += [(f"violations:{check}", contract.VIOLATIONS, [*by_kind, (contract.CHECK, check)]) for check in CHECKS]
    return wanted


def _unit(start: datetime, now: datetime) -> int:
    """The resolution CloudWatch keeps for data of that age, to which GetMetricData rounds StartTime down
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html): a minute up
    to 15 days back, 5 minutes up to 63 days, an hour beyond."""
    age = now - start
    return 60 if age <= timedelta(days=15) else 300 if age <= timedelta(days=63) else 3600


def _rounded(start: datetime, now: datetime) -> datetime:
    unit = _unit(start, now)
    return datetime.fromtimestamp(math.floor(start.timestamp() / unit) * unit, UTC)


def period_for(start: datetime, end: datetime, now: datetime) -> int:
    """One period covering [start, end] from the start as CloudWatch rounds it, in a multiple of the
    resolution kept for data of that age (the periods MetricStat accepts for it:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricStat.html)."""
    unit = _unit(start, now)
    span = max(end.timestamp() - _rounded(start, now).timestamp(), 1)
    return int(math.ceil(span / unit) * unit)


def _window(run: dict, now: datetime) -> tuple[datetime, datetime]:
    """The run's metric window as CloudWatch answers it: from its start rounded down, to a second after its
    last step's end (EndTime is exclusive; the second covers skew between the services' clocks)."""
    start, end = run["_window"]
    return _rounded(start, now), end + timedelta(seconds=1)


def _metric_sums(
    cw: Any, env: Environment, namespace: str, kind: str, features: list[str], span: tuple, now: datetime
) -> dict:
    """{field: (sum, sample count)} of what CloudWatch holds in [start, end) for what a run of `kind`
    publishes; fields with no datapoint are absent."""
    start, end = span
    period = period_for(start, end, now)
    wanted = [
        (field, metric, dims, stat)
        for field, metric, dims in _queries(kind, features)
        for stat in ("Sum", "SampleCount")
    ]
    sums: dict = {}
    base = [{"Name": contract.ENVIRONMENT, "Value": env.name}]
    for offset in range(0, len(wanted), _MAX_QUERIES):
        chunk = wanted[offset : offset + _MAX_QUERIES]
        queries = [
            {
                "Id": f"q{i}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": base + [{"Name": k, "Value": v} for k, v in dims],
                    },
                    "Period": period,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            for i, (_, metric, dims, stat) in enumerate(chunk)
        ]
        token = None
        while True:
            kwargs: dict = {
                "MetricDataQueries": queries,
                # rounded as CloudWatch would round it: the window is the same whoever answers
                "StartTime": _rounded(start, now),
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            page = cw.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                field, _, _, stat = chunk[int(result["Id"][1:])]
                total, count = sums.get(field, (0.0, 0.0))
                for value in result.get("Values", []):  # a window can span two periods once rounded
                    total, count = (total + value, count) if stat == "Sum" else (total, count + value)
                sums[field] = (total, count)
            token = page.get("NextToken")
            if not token:
                break
    return {field: pair for field, pair in sums.items() if pair[1] > 0}


def _minus(own: dict, other: dict) -> dict:
    return {f: (t - other[f][0], n - other[f][1]) if f in other else (t, n) for f, (t, n) in own.items()}


def attribute(
    runs: list[dict], sums: list[dict], now: datetime, between: Callable[[int, tuple], dict] | None = None
) -> list[tuple[dict, list[str]]]:
    """Each run's own datapoints, from what CloudWatch returned for its window (`sums[i]` for `runs[i]`,
    oldest first): ({field: (sum, count)}, fields left ambiguous).

    A window (start rounded down as CloudWatch rounds it, to the last step's end) can also hold another
    run's datapoints: an earlier run of the same pipeline that ran in the same minute, or one that
    overlapped. A run whose whole window lies inside this one contributed all of its readings, known from
    its own window: they are subtracted. An earlier run that straddles this window's (rounded) start
    contributed what it published after it: its own readings minus those CloudWatch holds for it before
    that start, which `between(j, (start, end))` asks for (a whole number of minutes, so exact); runs
    wholly inside that stretch are subtracted there too. Anything else (runs that overlapped, or a stretch
    that cannot be told apart) leaves the fields it publishes ambiguous here."""
    resolved: list[tuple[dict, list[str]]] = []

    def same(i: int, j: int) -> bool:
        return j != i and runs[j]["pipeline"] == runs[i]["pipeline"]

    def inside(j: int, low: datetime, high: datetime) -> bool:
        return low <= runs[j]["_window"][0] and runs[j]["_window"][1] < high

    def outside(j: int, low: datetime, high: datetime) -> bool:
        return runs[j]["_window"][1] < low or runs[j]["_window"][0] >= high

    for i in range(len(runs)):
        low, high = _window(runs[i], now)
        own = dict(sums[i])
        ambiguous: set = set()
        for j in (j for j in range(len(runs)) if same(i, j) and not outside(j, low, high)):
            theirs, unknown = resolved[j] if j < i else (sums[j], [])
            if j < i and inside(j, low, high):
                own = _minus(own, theirs)
                ambiguous |= set(unknown)  # what was not its own is not this run's either
                continue
            straddles = j < i and runs[j]["_window"][1] < high and not unknown
            stretch = (_window(runs[j], now)[0], low)
            earlier = [k for k in range(i) if same(j, k) and not outside(k, *stretch)]
            if straddles and between is not None and all(inside(k, *stretch) and not resolved[k][1] for k in earlier):
                before = dict(between(j, stretch))
                for k in earlier:
                    before = _minus(before, resolved[k][0])
                own = _minus(own, _minus(theirs, before))
            else:  # what it published may or may not be in this window
                ambiguous |= (set(theirs) | set(unknown)) & set(own)
        own = {field: pair for field, pair in own.items() if pair[1] > 0.5}
        ambiguous &= set(own)
        # an ambiguous reading is never shown as this run's
        resolved.append(({f: pair for f, pair in own.items() if f not in ambiguous}, sorted(ambiguous)))
    return resolved


def _apply_metrics(run: dict, sums: dict, ambiguous: list[str], features: list[str]) -> None:
    """The run's metrics from its own (sum, count) per field: counts add up, a gauge is its mean reading."""
    metric_of = {field: metric for field, metric, _ in _queries(run["pipeline"], features)}
    values = {
        field: total if metric_of.get(field) in _COUNTS else total / count for field, (total, count) in sums.items()
    }
    if "rows_scored" in values:
        run["rows_scored"] = round(values["rows_scored"])
    if "model_version" in values:
        run["model_version"], run["model_version_from"] = round(values["model_version"]), "ModelVersion metric"
    ratios = {}
    per_feature = {}
    for feature in features:
        distance, bound = values.get(f"distance:{feature}"), values.get(f"bound:{feature}")
        if distance is None:
            continue
        per_feature[feature] = {"distance": distance, "bound": bound}
        if bound:
            ratios[feature] = distance / bound
    if "drift_score" in values or per_feature:
        worst = max(ratios, key=lambda f: ratios[f]) if ratios else None
        score = values.get("drift_score")
        run["drift"] = {
            "score": score if score is not None else (ratios[worst] if worst else None),
            "worst_feature": worst,
            "distance": per_feature[worst]["distance"] if worst else None,
            "bound": per_feature[worst]["bound"] if worst else None,
            "features": per_feature,
        }
    run["quality"] = {name: values[name] for name, _ in QUALITY_FIELDS if name in values}
    run["violations"] = {
        check: round(values[f"violations:{check}"]) for check in CHECKS if f"violations:{check}" in values
    }
    # what the table flags and the chart leaves out: the run's key readings mixed with another run's
    run["metrics_ambiguous"] = sorted(
        {"drift_score" if f.startswith(("distance:", "bound:")) else f.split(":")[0] for f in ambiguous}
    )


def _approvals(env: Environment, sessions: Sessions, since: datetime, until: datetime) -> list[dict]:
    """Every approval of a version of the group in the window, from its decision records (who, when)."""
    found = []
    # every version with its metadata in a call per 100 (Search), not a DescribeModelPackage each
    for package in Registry(env, sessions, purpose="monitor").packages():
        if package.get("ModelApprovalStatus") == "PendingManualApproval":
            continue  # a pending version holds no completed approval (a board's first one is not one)
        recorded = [d for d in decisions(package) if d.get("status") == "Approved" and d.get("board") != "1/2"]
        for entry in recorded:
            at = entry.get("at")
            if at and since <= _utc(at) <= until:
                found.append(
                    {
                        "kind": "approval",
                        "version": version_of(package),
                        "at": _iso(at),
                        "by": entry.get("by"),
                        "label": f"v{version_of(package)} approved by {entry.get('by')}",
                    }
                )
    return sorted(found, key=lambda e: e["at"])


def _retrains(runs: list[dict]) -> list[dict]:
    """Training runs a rule started (the events role, per CloudTrail), each with the failure that led to it."""
    found = []
    for run in runs:
        if run["pipeline"] not in RETRAIN_CAUSES or run["started_by_kind"] != "rule":
            continue
        kind, step, cause = RETRAIN_CAUSES[run["pipeline"]]
        before = [r for r in runs if r["pipeline"] == kind and r["failed_step"] == step and r["start"] <= run["start"]]
        trigger = max(before, key=lambda r: r["start"]) if before else None
        found.append(
            {
                "kind": "retrain",
                "at": run["start"],
                "pipeline": run["pipeline"],
                "execution": run["execution"],
                "cause": cause if trigger else "rule",
                "after": trigger["execution"] if trigger else None,
                "label": f"retrain ({run['pipeline']}) on {cause}"
                if trigger
                else f"{run['pipeline']} started by a rule",
            }
        )
    return found


def collect(env: Environment, sessions: Sessions, since: datetime, now: datetime | None = None) -> dict:
    """The monitoring view as data: runs (newest first) with their metrics, approvals, retrains, notes."""
    from botocore.exceptions import ClientError

    now = now or datetime.now(UTC)
    workload = sessions.workload()
    sm = sessions.client("sagemaker", workload)
    cw = sessions.client("cloudwatch", workload)
    namespace = contract.namespace(env.project)
    notes: list[str] = []
    runs: list[dict] = []
    deployed = []
    for kind in KINDS:
        pipeline = env.pipelines.get(kind)
        if not pipeline:
            continue
        summaries = _executions(sm, pipeline, since)
        if summaries is None:
            continue
        deployed.append(kind)
        for summary in summaries:
            runs.append(_run(kind, pipeline, summary, _steps(sm, summary["PipelineExecutionArn"]), now))
    runs.sort(key=lambda r: (r["start"], r["execution"]))
    # "now" is the latest time anything was seen at: the service's clock may be ahead of this machine's
    now = max([now] + [run["_window"][1] for run in runs])

    try:
        starters = _starters(env, sessions.client("cloudtrail", workload), since - timedelta(minutes=5))
    except ClientError as exc:
        if not _denied(exc):
            raise
        starters = {}
        notes.append(
            "who started each run is not shown: CloudTrail LookupEvents was denied "
            f"({exc.response['Error'].get('Message', '')})"
        )
    for run in runs:
        run["started_by"], run["started_by_kind"] = starters.get(run["execution_arn"], (None, None))

    try:
        features = _features(cw, env, namespace) if "inference" in deployed else []

        def between(j: int, span: tuple) -> dict:
            return _metric_sums(cw, env, namespace, runs[j]["pipeline"], features, span, now)

        sums = [between(j, _window(run, now)) for j, run in enumerate(runs)]
        for run, (own, ambiguous) in zip(runs, attribute(runs, sums, now, between)):
            _apply_metrics(run, own, ambiguous, features)
    except ClientError as exc:
        raise (AccessDenied.from_client_error(exc) or exc) from None
    for run in runs:
        if run["metrics_ambiguous"]:
            notes.append(
                f"{run['pipeline']} {run['execution']}: its {', '.join(run['metrics_ambiguous'])} cannot be told "
                "apart from another run's in CloudWatch (the runs overlapped): shown as '?', left out of the chart"
            )

    try:
        approvals = _approvals(env, sessions, since, now)
    except AccessDenied as exc:
        approvals = []
        notes.append(f"approvals are not shown: the registry refused the read ({exc})")
    for run in runs:
        run.pop("_window")
    return {
        "environment": env.name,
        "account": env.account_id,
        "namespace": namespace,
        "since": _iso(since),
        "until": _iso(now),
        "pipelines": {kind: env.pipelines[kind] for kind in deployed},
        "runs": list(reversed(runs)),
        "approvals": approvals,
        "retrains": _retrains(runs),
        "notes": notes,
    }


# -- rendering -------------------------------------------------------------------------------------
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _status(run: dict) -> str:
    if run["status"] == "Failed" and run["failed_step"]:
        return f"Failed: {run['failed_step']}"
    return run["status"]


def _missing(run: dict, metric: str) -> str:
    """An absent value: '?' when CloudWatch holds one that cannot be told apart from another run's."""
    return "?" if metric in run["metrics_ambiguous"] else "-"


def _drift_cell(run: dict) -> str:
    drift = run["drift"]
    if not drift or drift["score"] is None:
        return _missing(run, "drift_score")
    if drift["worst_feature"] and drift["bound"]:
        return (
            f"{drift['worst_feature']} {drift['distance']:.3f}/{drift['bound']:.3f}"
            f" ({drift['distance'] / drift['bound']:.2f}x)"
        )
    return f"score {drift['score']:.2f}"


def _quality_cell(run: dict) -> str:
    short = {"auc": "AUC", "f1": "F1", "precision": "P", "recall": "R", "accuracy": "acc"}
    shown = [
        f"{short.get(name, name)} {run['quality'][name]:.3f}" for name, _ in QUALITY_FIELDS if name in run["quality"]
    ]
    return " ".join(shown) if shown else _missing(run, "auc")


def rows(report: dict) -> list[dict]:
    """The table's rows as text cells (what `render` prints)."""
    return [
        {
            "time": run["start"],
            "pipeline": run["pipeline"],
            "status": _status(run),
            "started by": run["started_by"] or "-",
            "version": f"v{run['model_version']}" if run["model_version"] else _missing(run, "model_version"),
            "rows": str(run["rows_scored"]) if run["rows_scored"] is not None else _missing(run, "rows_scored"),
            "worst drift (distance/bound)": _drift_cell(run),
            "quality": _quality_cell(run),
            "duration": _duration(run["duration_seconds"]),
        }
        for run in report["runs"]
    ]


# QUALITY: AUC, F1, precision (P), recall (R), accuracy (acc)
COLUMNS = [
    "time",
    "pipeline",
    "status",
    "started by",
    "version",
    "rows",
    "worst drift (distance/bound)",
    "quality",
    "duration",
]


def render(report: dict) -> str:
    lines = [f"{report['environment']} (account {report['account']}): runs since {report['since']}, newest first"]
    lines.append(table(rows(report), COLUMNS) if report["runs"] else "no runs in this window")
    if any(r["quality"] for r in report["runs"]):
        lines.append(
            "QUALITY: P precision, R recall, acc accuracy; on the labels (quality), on the test split (train, hpo)"
        )
    failed = [r for r in report["runs"] if r["failure_reason"]]
    if failed:
        lines.append("\nwhy runs failed")
        for run in failed:
            lines.append(f"  {run['start']} {run['pipeline']} {run['execution']}: {_one_line(run['failure_reason'])}")
    events = sorted(report["approvals"] + report["retrains"], key=lambda e: e["at"])
    if events:
        lines.append("\napprovals and retrains")
        for event in events:
            tail = f" (after {event['after']})" if event.get("after") else ""
            lines.append(f"  {event['at']} {event['label']}{tail}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    if report.get("chart"):
        lines.append(f"\nchart: {report['chart']}")
    return "\n".join(lines)


def _one_line(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the chart -------------------------------------------------------------------------------------
def chart_data(report: dict, top_features: int = 3) -> dict:
    """What the chart plots, as plain data: drift per inference run (worst distance/bound, and the top
    features' own ratios), quality metrics per run that measured them, and the events marked."""
    runs = sorted(report["runs"], key=lambda r: r["start"])
    drift_points = [
        {
            "at": r["start"],
            "score": r["drift"]["score"],
            "feature": r["drift"]["worst_feature"],
            "failed": r["failed_step"] == "DataDriftDetected",
            "execution": r["execution"],
        }
        for r in runs
        if r["pipeline"] == "inference"
        and r["drift"]
        and r["drift"]["score"] is not None
        and "drift_score" not in r["metrics_ambiguous"]
    ]
    unread = [
        {"at": r["start"], "status": _status(r), "execution": r["execution"]}
        for r in runs
        if r["pipeline"] == "inference" and not any(p["execution"] == r["execution"] for p in drift_points)
    ]
    peaks: dict = {}
    for r in runs:
        for feature, figures in ((r["drift"] or {}).get("features") or {}).items():
            if figures.get("bound"):
                peaks[feature] = max(peaks.get(feature, 0.0), figures["distance"] / figures["bound"])
    top = sorted(peaks, key=lambda f: (-peaks[f], f))[:top_features]
    features = {
        feature: [
            {
                "at": r["start"],
                "ratio": r["drift"]["features"][feature]["distance"] / r["drift"]["features"][feature]["bound"],
            }
            for r in runs
            if r["drift"]
            and feature in r["drift"]["features"]
            and r["drift"]["features"][feature].get("bound")
            and "drift_score" not in r["metrics_ambiguous"]
        ]
        for feature in top
    }
    quality: dict = {}
    for r in runs:
        if "auc" in r["metrics_ambiguous"]:
            continue
        source = "labels" if r["pipeline"] == "quality" else "evaluation"
        for name, _ in QUALITY_FIELDS:
            if name in r["quality"]:
                quality.setdefault(f"{name} ({source})", []).append(
                    {"at": r["start"], "value": r["quality"][name], "execution": r["execution"]}
                )
    events = sorted(
        [{"kind": e["kind"], "at": e["at"], "label": e["label"]} for e in report["approvals"] + report["retrains"]],
        key=lambda e: e["at"],
    )
    moments = [p["at"] for p in drift_points + unread] + [e["at"] for e in events]
    moments += [p["at"] for points in features.values() for p in points]
    moments += [p["at"] for points in quality.values() for p in points]
    return {
        "environment": report["environment"],
        "since": report["since"],
        "until": report["until"],
        "slots": sorted(set(moments)),  # the x axis: each moment something is drawn at, in time order
        "drift": drift_points,
        "unread": unread,  # inference runs with no (unambiguous) drift reading: failed before it, or shared
        "drift_bound": 1.0,
        "features": features,
        "quality": quality,
        "events": events,
    }


_EVENT_STYLE = {"approval": ("#1a7f37", "--"), "retrain": ("#bc4c00", ":")}


def write_chart(report: dict, path: str) -> dict:
    """Draw the chart to PATH (PNG) atomically (a temporary file in the same directory, renamed over
    PATH), so a reader never sees half a file. Returns the plotted data.

    The x axis has one slot per moment something happened (a run started, a version was approved), in
    time order, each labelled with its time: a burst of runs within minutes after days of quiet (a retrain
    and the runs around it) stays as readable as daily runs."""
    import matplotlib

    matplotlib.use("Agg")  # no display on Jenkins agents
    import matplotlib.pyplot as plt

    target = check_chart_path(path)
    data = chart_data(report)
    slot = {at: i for i, at in enumerate(data["slots"])}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 8), dpi=110, sharex=True, layout="constrained")

    if data["drift"]:
        top.plot(
            [slot[p["at"]] for p in data["drift"]], [p["score"] for p in data["drift"]], "-", color="#57606a", lw=1
        )
        for p in data["drift"]:
            top.scatter(
                [slot[p["at"]]],
                [p["score"]],
                s=80 if p["failed"] else 45,
                zorder=3,
                color="#cf222e" if p["failed"] else "#0969da",
                label="inference run: DataDriftDetected" if p["failed"] else "inference run: no drift",
            )
            if p["failed"]:
                top.annotate(
                    f"DataDriftDetected\nworst: {p['feature']} ({p['score']:.1f}x its bound)",
                    (slot[p["at"]], p["score"]),
                    textcoords="offset points",
                    xytext=(8, -2),
                    fontsize=8,
                    color="#cf222e",
                    va="top",
                )
    for i, (feature, points) in enumerate(data["features"].items()):
        top.plot(
            [slot[p["at"]] for p in points],
            [p["ratio"] for p in points],
            "--",
            marker=".",
            linewidth=1,
            alpha=0.75,
            color=["#8250df", "#bf8700", "#1b7c83"][i % 3],
            label=f"{feature} (distance/bound)",
        )
    for p in data["unread"]:
        top.scatter(
            [slot[p["at"]]],
            [0.04],
            marker="x",
            color="#57606a",
            zorder=3,
            transform=top.get_xaxis_transform(),
            label="inference run without a drift reading",
        )
        top.annotate(
            p["status"],
            (slot[p["at"]], 0.04),
            xycoords=("data", "axes fraction"),
            xytext=(0, 7),
            textcoords="offset points",
            fontsize=7,
            color="#57606a",
            ha="center",
        )
    top.axhline(data["drift_bound"], color="#cf222e", linestyle=(0, (4, 3)), linewidth=1, label="bound (1 = drift)")
    top.set_ylabel("drift: distance / bound")
    top.set_ylim(bottom=0)
    top.set_title(
        f"{data['environment']}: drift and model quality per run ({data['since']} to {data['until']})", fontsize=11
    )
    if not data["drift"]:
        top.text(0.5, 0.5, "no drift readings in this window", transform=top.transAxes, ha="center", color="#57606a")

    markers = {"auc": "o", "f1": "s", "precision": "^", "recall": "v", "accuracy": "D"}
    colours = {"auc": "#0969da", "f1": "#8250df", "precision": "#1a7f37", "recall": "#bf8700", "accuracy": "#57606a"}
    for series, points in data["quality"].items():
        name, source = series.split(" ", 1)
        labels = "labels" in source
        bottom.plot(
            [slot[p["at"]] for p in points],
            [p["value"] for p in points],
            linestyle="-" if labels else "none",  # training's evaluations are points, not a trend
            marker=markers.get(name, "o"),
            markersize=6 if labels else 9,
            fillstyle="full" if labels else "none",
            color=colours.get(name),
            linewidth=1.2,
            label=series,
        )
    bottom.set_ylabel("model quality")
    bottom.set_ylim(0, 1.05)
    if not data["quality"]:
        bottom.text(
            0.5, 0.5, "no quality readings in this window", transform=bottom.transAxes, ha="center", color="#57606a"
        )

    for i, event in enumerate(data["events"]):
        colour, style = _EVENT_STYLE.get(event["kind"], ("#57606a", "-"))
        x = slot[event["at"]]
        for ax in (top, bottom):
            ax.axvline(x, color=colour, linestyle=style, linewidth=1.4, zorder=1)
        # labels stagger up the bottom panel, and sit left of their line in the right half
        right = x > (len(data["slots"]) - 1) / 2
        bottom.annotate(
            event["label"],
            (x, 0.03 + 0.07 * (i % 3)),  # low in the panel: quality readings sit high
            xycoords=("data", "axes fraction"),
            fontsize=8,
            color=colour,
            xytext=(-5 if right else 5, 0),
            textcoords="offset points",
            ha="right" if right else "left",
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": colour, "alpha": 0.9},
        )

    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        if unique:
            ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    every = max(1, math.ceil(len(data["slots"]) / 16))  # at most ~16 time labels
    ticks = list(range(0, len(data["slots"]), every))
    bottom.set_xticks(
        ticks, [_utc(data["slots"][i]).strftime("%m-%d %H:%M:%S") for i in ticks], rotation=35, ha="right", fontsize=8
    )
    bottom.set_xlim(-0.6, max(len(data["slots"]) - 0.4, 0.6))
    bottom.set_xlabel("runs and approvals in time order (start, UTC)")

    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            fig.savefig(out, format="png")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return {"path": str(target), **data}
