"""The central model registry as the approver sees it: versions, approvals with an audit trail, lineage.

Every operation acts as the environment's approver role in the registry account and reaches the
group by its ARN. A decision is refused when the approver's STS source identity is the one that started
the pipeline execution which registered the version (read from CloudTrail and the execution's steps in
the account where it ran, through the read-only registration-audit role), and when that cannot be
verified. Versions marked for the review board need two approvals from two different people. Every
decision is recorded on the version: in ApprovalDescription and as `decision:<n>` entries in
CustomerMetadataProperties (who, when, why, who trained it). Where a version runs is recorded the same
way, as `deployed:<env>` entries.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_core.config import Environment
from mlops_core.errors import AccessDenied, ConfigError, ToolkitError
from mlops_core.session import Sessions
from mlops_core.text import table

DECISIONS = {"approve": "Approved", "reject": "Rejected"}
_METADATA_VALUE_MAX = 256
_APPROVAL_DESCRIPTION_MAX = 1024


class SeparationOfDuties(ToolkitError):
    """The approver registered the version it is asked to approve or reject."""


class ArtefactChanged(ToolkitError):
    """An object a version points at is not the one whose sha256 was recorded at registration."""


class VersionNotFound(ToolkitError):
    """No such version in the environment's model package group."""

    exit_code = 2


_NOT_KEY = re.compile(r"[^a-z0-9]")


def package_arn(env: Environment, version: int) -> str:
    """A version's ARN, derived from the group ARN (the package lives in the registry account)."""
    group_arn = env.model_package_group_arn
    return group_arn.replace(":model-package-group/", ":model-package/") + f"/{int(version)}"


@functools.lru_cache(maxsize=4096)
def _key(name: str) -> str:
    # cached: a status of 1,000 versions normalises the same few dozen keys ~50,000 times
    return _NOT_KEY.sub("", name.lower())


def metadata(package: dict, *names: str) -> str | None:
    """A CustomerMetadataProperties value under any of the spellings pipelines use (git-commit, GitCommit...)."""
    props = {_key(k): v for k, v in (package.get("CustomerMetadataProperties") or {}).items()}
    for name in names:
        if _key(name) in props:
            return props[_key(name)]
    return None


def person(principal: str | None) -> str | None:
    """A readable name for a principal: an assumed-role ARN's session name (`<who>@<purpose>`), or the
    name itself. For display only: who acted is decided by source identities, never by this."""
    if not principal:
        return None
    if ":assumed-role/" in principal:
        principal = principal.rsplit("/", 1)[1]
    return principal.split("@", 1)[0].lower()


def registered_by(package: dict) -> str | None:
    """Who registered a version, as SageMaker recorded it (CreatedBy.IamIdentity): the source identity
    when the session had one, else the principal (a pipeline's execution role)."""
    created = (package.get("CreatedBy") or {}).get("IamIdentity") or {}
    if created.get("SourceIdentity"):
        return created["SourceIdentity"]
    execution = registering_execution(package)
    return f"pipeline:{execution.rsplit('/', 1)[-1]}" if execution else person(created.get("Arn"))


class ProvenanceUnverified(ToolkitError):
    """Who started the run that registered a version cannot be read from AWS's records: fail closed."""


@dataclass(frozen=True)
class Provenance:
    """The pipeline execution that registered a version and who started it, per AWS's own records."""

    execution_arn: str
    started_by: str | None  # the starter's STS source identity; None when EventBridge started it
    starter_arn: str  # the principal in CloudTrail's StartPipelineExecution record
    by_rule: bool = False

    def describe(self) -> str:
        return f"EventBridge ({self.starter_arn})" if self.by_rule else str(self.started_by)


_EXECUTION_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:(\d{12}):pipeline/([^/]+)/execution/([^/]+)$")
# CloudTrail delivers within about 15 minutes of the call; the execution's CreationTime is within
# seconds of it, so the record is searched in a window around that time.
_TRAIL_WINDOW = timedelta(minutes=30)


def registering_execution(package: dict) -> str | None:
    meta = package.get("MetadataProperties") or {}
    return meta.get("GeneratedBy") or metadata(
        package, "pipeline_execution_arn", "pipeline-execution-arn", "pipeline-execution", "execution-arn"
    )


def provenance(env: Environment, sessions: Sessions, approver_session: Any, package: dict) -> Provenance:
    """Read, as the read-only audit role of the account where it ran, which execution registered the
    version (its RegisterModel step names this package) and who started it (CloudTrail)."""
    from botocore.exceptions import ClientError

    arn, version = package["ModelPackageArn"], version_of(package)
    execution = registering_execution(package) or ""
    match = _EXECUTION_ARN.match(execution)
    if not match or match.group(1) not in env.workload_accounts.values():
        raise ProvenanceUnverified(
            f"version {version} names no pipeline execution of {', '.join(env.workload_accounts)} "
            f"({execution or 'none'}): cannot verify who trained it, so nobody may decide on it"
        )
    account = match.group(1)
    audit = sessions.assume(env.role_arn("audit", account), purpose=f"audit-v{version}", source=approver_session)
    sm, trail = sessions.client("sagemaker", audit), sessions.client("cloudtrail", audit)
    try:
        described = sm.describe_pipeline_execution(PipelineExecutionArn=execution)
        steps = _all(sm.list_pipeline_execution_steps, "PipelineExecutionSteps", PipelineExecutionArn=execution)
    except ClientError as exc:
        raise ProvenanceUnverified(
            f"version {version}: cannot read {execution}: {exc.response['Error'].get('Message', '')}"
        ) from None
    registered = {((st.get("Metadata") or {}).get("RegisterModel") or {}).get("Arn") for st in steps}
    if arn not in registered:
        raise ProvenanceUnverified(
            f"version {version} was not registered by {execution} (no RegisterModel step of it created {arn}): "
            "cannot verify who trained it"
        )
    record = _start_record(trail, execution, described["CreationTime"])
    if record is None:
        raise ProvenanceUnverified(
            f"no CloudTrail record of who started {execution} in account {account} "
            "(CloudTrail can take up to 15 minutes): try again later"
        )
    identity = record.get("userIdentity") or {}
    context = identity.get("sessionContext") or {}
    starter_arn = identity.get("arn", "")
    source_identity = context.get("sourceIdentity")
    if source_identity:
        return Provenance(execution, source_identity, starter_arn)
    issuer = (context.get("sessionIssuer") or {}).get("arn")
    if issuer == env.role_arn("events", account):
        # Only events.amazonaws.com can assume the events role (its trust policy): the retrain rule or
        # the schedule started it, no person chose to train this version.
        return Provenance(execution, None, starter_arn, by_rule=True)
    raise ProvenanceUnverified(
        f"{execution} was started by {starter_arn or 'an unknown principal'} without a source identity: "
        "cannot verify who trained it"
    )


def _all(call, key: str, **kwargs) -> list:
    found, token = [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        found += page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return found


def start_records(trail: Any, start: datetime, end: datetime | None = None) -> Iterator[dict]:
    """CloudTrail's StartPipelineExecution records from `start` (to `end`, or now), every page, parsed."""
    token = None
    while True:
        kwargs: dict = {
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "StartPipelineExecution"}],
            "StartTime": start,
            "MaxResults": 50,
        }
        if end is not None:
            kwargs["EndTime"] = end
        if token:
            kwargs["NextToken"] = token
        page = trail.lookup_events(**kwargs)
        for event in page.get("Events", []):
            yield json.loads(event.get("CloudTrailEvent") or "{}")
        token = page.get("NextToken")
        if not token:
            return


def _start_record(trail, execution: str, created) -> dict | None:
    for record in start_records(trail, created - _TRAIL_WINDOW, created + _TRAIL_WINDOW):
        if (record.get("responseElements") or {}).get("pipelineExecutionArn") == execution:
            return record
    return None


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != "" and a.lower() == b.lower()


def check_separation_of_duties(package: dict, approver: str, origin: Provenance) -> None:
    """Refuse when the approver's source identity started the registering run or created the version."""
    created = ((package.get("CreatedBy") or {}).get("IamIdentity") or {}).get("SourceIdentity")
    for who, what in ((origin.started_by, f"started {origin.execution_arn}"), (created, "created it")):
        if _same(who, approver):
            raise SeparationOfDuties(
                f"{approver} {what}, which registered {package['ModelPackageArn']}, and may not also decide "
                "on it: ask another approver"
            )


# -- reading the registry -------------------------------------------------------------------------
@dataclass
class Registry:
    """The environment's model package group, reached by ARN as the approver role."""

    env: Environment
    sessions: Sessions
    purpose: str = "registry-read"
    _session: Any = field(default=None, repr=False)

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = self.sessions.as_role("approver", purpose=self.purpose)
        return self._session

    _clients: dict = field(default_factory=dict, repr=False)

    def _client(self, service: str) -> Any:
        # one client per service for the registry's life: creating a boto3 client costs more than a call
        if service not in self._clients:
            self._clients[service] = self.sessions.client(service, self.session)
        return self._clients[service]

    @property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @property
    def s3(self) -> Any:
        return self._client("s3")

    def identity(self) -> str:
        return self._client("sts").get_caller_identity()["Arn"]

    def summaries(self) -> list[dict]:
        """Every version of the group, newest first (ListModelPackages by group ARN, all pages)."""
        summaries = _all_pages(
            self.sagemaker,
            "list_model_packages",
            "ModelPackageSummaryList",
            ModelPackageGroupName=self.env.model_package_group_arn,
            SortBy="CreationTime",
            SortOrder="Descending",
        )
        return sorted(summaries, key=version_of, reverse=True)

    def packages(self) -> list[dict]:
        """Every version of the group with everything DescribeModelPackage answers (metadata, metrics
        URIs, who created and last modified it), newest first: SageMaker Search over ModelPackage, 100 a
        page, instead of one DescribeModelPackage per version. Search reaches the caller's own account,
        which is the group's for the approver role. Its index can lag a write by seconds, so it serves
        views (status, finding a pin); a decision reads the version with DescribeModelPackage."""
        group = self.env.model_package_group_arn.rsplit("/", 1)[1]
        results = _all_pages(
            self.sagemaker,
            "search",
            "Results",
            Resource="ModelPackage",
            SearchExpression={"Filters": [{"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": group}]},
            SortBy="CreationTime",
            SortOrder="Descending",
        )
        packages = [r["ModelPackage"] for r in results if r.get("ModelPackage")]
        return sorted(packages, key=version_of, reverse=True)

    def describe(self, version: int) -> dict:
        from botocore.exceptions import ClientError

        arn = package_arn(self.env, version)
        try:
            return self.sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") in ("ValidationException", "ResourceNotFound") and (
                "not found" in err.get("Message", "").lower() or "does not exist" in err.get("Message", "").lower()
            ):
                raise VersionNotFound(
                    f"--version: no version {version} in {self.env.model_package_group_arn}"
                ) from None
            raise (AccessDenied.from_client_error(exc) or exc) from None

    def read_bytes(self, s3_uri: str | None) -> bytes | None:
        """An S3 object the pipeline registered (evaluation report, baseline); None if absent."""
        if not s3_uri or not s3_uri.startswith("s3://"):
            return None
        from botocore.exceptions import ClientError

        bucket, _, key = s3_uri[5:].partition("/")
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                return None
            raise (AccessDenied.from_client_error(exc) or exc) from None

    def read_json(self, s3_uri: str | None) -> dict | None:
        body = self.read_bytes(s3_uri)
        return json.loads(body) if body is not None else None

    def metrics(self, package: dict) -> Metrics:
        """The version's metrics from its evaluation report, once the report's sha256 is the one recorded
        at registration (ArtefactChanged otherwise): a report never shows metrics someone rewrote."""
        uri = metrics_uri(package)
        body = self.read_bytes(uri)
        if uri and body is not None:
            verify_sha256(package, uri, body, "evaluation_sha256")
        return Metrics.from_report(json.loads(body) if body is not None else None, uri)

    def champion(self, exclude_version: int | None = None, skipped: list | None = None) -> dict | None:
        """The newest Approved version other than `exclude_version` that has registered metrics: what runs
        in prod today and can be compared with. Approved versions without ModelMetrics are appended to
        `skipped` as {"version", "reason"}: they cannot be compared and must not stop a report."""
        for summary in self.summaries():
            if summary.get("ModelApprovalStatus") == "Approved" and version_of(summary) != exclude_version:
                package = self.describe(version_of(summary))
                reason = None if metrics_uri(package) else "no ModelMetrics.ModelQuality.Statistics"
                if reason is None:
                    try:
                        self.metrics(package)
                    except ArtefactChanged as exc:
                        reason = f"an evaluation report that fails verification ({exc})"
                if reason:
                    if skipped is not None:
                        skipped.append({"version": version_of(package), "reason": reason})
                    continue
                return package
        return None


def verify_sha256(package: dict, uri: str, body: bytes, entry: str) -> None:
    """ArtefactChanged unless `body` hashes to the sha256 the version recorded under `entry`."""
    recorded, actual = metadata(package, entry), hashlib.sha256(body).hexdigest()
    version = version_of(package)
    if not recorded:
        raise ArtefactChanged(f"version {version} records no {entry} for {uri}: its content cannot be verified")
    if actual != recorded:
        raise ArtefactChanged(
            f"version {version}: {uri} has sha256 {actual}, not the {recorded} recorded at registration"
        )


def recorded_metrics(package: dict) -> dict:
    """The metrics the pipeline recorded on the version at registration (`auc`, and any of f1, accuracy,
    precision, recall it recorded), as numbers; {} when it recorded none."""
    values = {}
    for name in Metrics.NAMES:
        text = metadata(package, name)
        try:
            if text:
                values[name] = float(text)
        except ValueError:
            continue
    return values


def metrics_uri(package: dict) -> str | None:
    """Where the version's evaluation report is (ModelMetrics.ModelQuality.Statistics), if registered."""
    return (((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")


def version_of(package: dict) -> int:
    return int(package.get("ModelPackageVersion") or package["ModelPackageArn"].rsplit("/", 1)[1])


def _call(func, **kwargs):
    from botocore.exceptions import ClientError

    try:
        return func(**kwargs)
    except ClientError as exc:
        raise (AccessDenied.from_client_error(exc) or exc) from None


def _all_pages(client: Any, operation: str, key: str, **kwargs: Any) -> list:
    """Every item under `key` of every page of `operation`, 100 a page (the most SageMaker answers)."""
    pages = client.get_paginator(operation).paginate(**kwargs, PaginationConfig={"PageSize": 100})
    return _call(lambda: [item for page in pages for item in page.get(key, [])])  # the calls run as it reads


# -- metrics from the evaluation report -----------------------------------------------------------
@dataclass
class Metrics:
    """Binary-classification metrics of one version, from its registered evaluation report."""

    source: str | None = None
    values: dict = field(default_factory=dict)  # auc, accuracy, precision, recall, f1
    confusion_matrix: list | None = None  # [[tn, fp], [fn, tp]]
    roc: tuple | None = None  # (fpr list, tpr list)

    NAMES = ("auc", "accuracy", "precision", "recall", "f1")

    @classmethod
    def from_report(cls, doc: dict | None, source: str | None = None) -> Metrics:
        """Reads SageMaker's model-quality layout ({"binary_classification_metrics": {"auc": {"value": ..}}})
        and the flat one ({"auc": .., "roc": {"fpr": [..], "tpr": [..]}}) alike."""
        if not doc:
            return cls(source)
        body = doc.get("binary_classification_metrics") or doc.get("metrics") or doc
        values = {}
        aliases = {
            "auc": ("auc", "roc_auc"),
            "accuracy": ("accuracy",),
            "precision": ("precision",),
            "recall": ("recall",),
            "f1": ("f1", "f1_score", "f1score"),
        }
        for name, keys in aliases.items():
            for key in keys:
                if key in body:
                    value = body[key]
                    value = value.get("value") if isinstance(value, dict) else value
                    if isinstance(value, (int, float)):
                        values[name] = float(value)
                        break
        return cls(source, values, _confusion(body), _roc(body))

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            **self.values,
            "confusion_matrix": self.confusion_matrix,
            "roc_points": len(self.roc[0]) if self.roc else 0,
        }


def _confusion(body: dict) -> list | None:
    cm = body.get("confusion_matrix")
    if isinstance(cm, list) and len(cm) == 2 and all(isinstance(r, list) and len(r) == 2 for r in cm):
        return [[int(v) for v in row] for row in cm]
    if isinstance(cm, dict):
        # SageMaker's layout: {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}} (actual -> predicted)
        try:
            return [[int(cm[a][p]) for p in ("0", "1")] for a in ("0", "1")]
        except (KeyError, TypeError, ValueError):
            pass
        keys = {k.lower(): v for k, v in cm.items()}
        if {"tn", "fp", "fn", "tp"} <= set(keys):
            return [[int(keys["tn"]), int(keys["fp"])], [int(keys["fn"]), int(keys["tp"])]]
    return None


def _roc(body: dict):
    for key in ("receiver_operating_characteristic_curve", "roc_curve", "roc"):
        curve = body.get(key)
        if isinstance(curve, dict):
            fpr = curve.get("false_positive_rates") or curve.get("fpr")
            tpr = curve.get("true_positive_rates") or curve.get("tpr")
            if isinstance(fpr, list) and isinstance(tpr, list) and len(fpr) == len(tpr) and fpr:
                return [float(v) for v in fpr], [float(v) for v in tpr]
        if isinstance(curve, list) and curve and isinstance(curve[0], (list, tuple, dict)):
            points = [(p["fpr"], p["tpr"]) if isinstance(p, dict) else (p[0], p[1]) for p in curve]
            return [float(p[0]) for p in points], [float(p[1]) for p in points]
    return None


# -- decisions: approve / reject with an audit trail ----------------------------------------------
def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _build() -> str:
    return os.environ.get("BUILD_URL") or os.environ.get("BUILD_TAG") or "local"


def decisions(package: dict) -> list[dict]:
    """The version's recorded approvals/rejections, oldest first."""
    found = []
    for key, value in (package.get("CustomerMetadataProperties") or {}).items():
        if key.startswith("decision:") and key[len("decision:") :].isdigit():
            try:
                entry = json.loads(value)
            except ValueError:
                entry = {"note": value}
            found.append((int(key.split(":")[1]), entry))
    return [entry for _, entry in sorted(found, key=lambda kv: kv[0])]


def deployments(package: dict) -> dict:
    """{environment: where/when} from the version's `deployed:<env>` entries."""
    return {
        k.split(":", 1)[1]: v
        for k, v in (package.get("CustomerMetadataProperties") or {}).items()
        if k.startswith("deployed:")
    }


def decide(env: Environment, sessions: Sessions, version: int, decision: str, reason: str) -> dict:
    """Approve or reject `version` as the approver role; returns what was recorded."""
    if decision not in DECISIONS:
        raise ConfigError(f"'{decision}' is not one of {', '.join(DECISIONS)}", field="decision")
    reason = (reason or "").strip()
    if not reason:
        raise ConfigError("a reason is required: it is recorded on the version", field="--reason")
    if len(reason) > 900:
        raise ConfigError(
            f"{len(reason)} characters is too long (at most 900: it must fit ApprovalDescription)", field="--reason"
        )
    registry = Registry(env, sessions, purpose=f"{decision}-v{version}")
    package = registry.describe(version)
    status = DECISIONS[decision]
    approver_arn = registry.identity()
    # who decides is the source identity STS returned for the approver session (the approver role's trust
    # policy admits no session without one), never a name the caller chose
    approver = sessions.source_identity(registry.session)
    if not approver:
        raise AccessDenied(
            f"{approver_arn} carries no source identity: sign in as a person (SSO, or --as/MLOPS_AS) to decide"
        )
    board = (metadata(package, "review_board_approval_required") or "").lower() == "true"
    current_status = package.get("ModelApprovalStatus")
    first = first_board_approval(env, package) if board and current_status == "PendingManualApproval" else None
    if current_status == status:
        return {
            "version": version,
            "arn": package["ModelPackageArn"],
            "status": status,
            "changed": False,
            "decision": decisions(package)[-1] if decisions(package) else None,
        }
    origin = provenance(env, sessions, registry.session, package)
    check_separation_of_duties(package, approver, origin)
    if first and decision == "approve" and _same(first, approver):
        raise SeparationOfDuties(
            f"{approver} already approved version {version} for the review board, which needs a second approval "
            "from another person"
        )

    at, build = _now(), _build()
    entry = {
        "status": status,
        "by": approver,
        "principal": approver_arn,
        "at": at,
        "started_by": origin.describe(),
        "build": build,
        "reason": reason,
    }
    pending_board = board and decision == "approve" and not first
    if board and decision == "approve":
        entry["board"] = "2/2" if first else "1/2"
    number = len(decisions(package)) + 1
    properties = dict(package.get("CustomerMetadataProperties") or {})
    properties[f"decision:{number}"] = _fit_json(entry)
    if pending_board:
        description = f"Review board: approved by {approver} at {at} (1 of 2, build {build}): {reason}"
    elif first and decision == "approve":
        description = f"{status} by {approver} and {first} (review board) at {at} (build {build}): {reason}"
    else:
        description = f"{status} by {approver} at {at} (build {build}): {reason}"
    update = {
        "ModelPackageArn": package["ModelPackageArn"],
        "ApprovalDescription": description[:_APPROVAL_DESCRIPTION_MAX],
        "CustomerMetadataProperties": properties,
    }
    if not pending_board:
        update["ModelApprovalStatus"] = status
    _call(registry.sagemaker.update_model_package, **update)
    return {
        "version": version,
        "arn": package["ModelPackageArn"],
        "status": current_status if pending_board else status,
        "changed": True,
        "decision": entry,
        "approval_description": update["ApprovalDescription"],
        "review_board": entry.get("board"),
    }


def first_board_approval(env: Environment, package: dict) -> str | None:
    """The first review-board approval of a pending version, if AWS says the approver role made it: the
    last `decision:<n>` entry is a 1/2 board approval and SageMaker's LastModifiedBy is an approver-role
    session with that source identity (workload roles cannot update packages; a forged entry written at
    registration is not the approver's and does not count)."""
    modified = (package.get("LastModifiedBy") or {}).get("IamIdentity") or {}
    approver_sessions = f"arn:{env.partition}:sts::{env.registry_account_id}:assumed-role/{env.roles.approver}/"
    entries = decisions(package)
    if not entries or not modified.get("Arn", "").startswith(approver_sessions):
        return None
    last = entries[-1]
    if last.get("board") != "1/2" or last.get("status") != "Approved":
        return None
    return last.get("by") if _same(last.get("by"), modified.get("SourceIdentity")) else None


def _fit_json(entry: dict) -> str:
    """The decision as JSON within the 256 characters a metadata value may hold (reason shortened)."""
    text = json.dumps(entry, separators=(",", ":"))
    if len(text) <= _METADATA_VALUE_MAX:
        return text
    slim = {k: v for k, v in entry.items() if k != "principal"}
    overflow = len(json.dumps(slim, separators=(",", ":"))) - _METADATA_VALUE_MAX
    if overflow > 0:
        slim["reason"] = slim["reason"][: max(0, len(slim["reason"]) - overflow - 1)] + "…"
    return json.dumps(slim, separators=(",", ":"), ensure_ascii=False)[:_METADATA_VALUE_MAX]


def record_deployment(sagemaker: Any, package: dict, environment: str, where: str) -> None:
    """Record on the version that `environment` runs it (`deployed:<env>` = "<time> <where>").

    Call with a client allowed sagemaker:UpdateModelPackage on the group's packages. All properties are
    sent, so the record is the same whether the service merges or replaces them.
    """
    properties = dict(package.get("CustomerMetadataProperties") or {})
    properties[f"deployed:{environment}"] = f"{_now()} {where}"[:_METADATA_VALUE_MAX]
    _call(
        sagemaker.update_model_package,
        ModelPackageArn=package["ModelPackageArn"],
        CustomerMetadataProperties=properties,
    )


# -- views: list, status, lineage -----------------------------------------------------------------
def _iso(value) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return str(value or "")


def list_versions(env: Environment, sessions: Sessions) -> list[dict]:
    registry = Registry(env, sessions)
    return [
        {
            "version": version_of(s),
            "status": s.get("ModelApprovalStatus", ""),
            "created": _iso(s.get("CreationTime")),
            "arn": s["ModelPackageArn"],
        }
        for s in registry.summaries()
    ]


def status(env: Environment, sessions: Sessions, registry: Registry | None = None) -> list[dict]:
    """Each version with its metrics, who registered and decided on it, and where it runs: one Search
    page per 100 versions. Metrics are those the pipeline recorded on the version at registration (no
    workload role can change them afterwards); a version that records none shows its evaluation
    report's, once the report's sha256 is the one recorded (else `integrity` says why not)."""
    registry = registry or Registry(env, sessions)
    rows = []
    for package in registry.packages():
        values, integrity = recorded_metrics(package), ""
        if not values:  # registered before the pipeline recorded its metrics: read the (verified) report
            try:
                values = registry.metrics(package).values
            except ArtefactChanged as exc:  # one version's changed report must not hide the others
                values, integrity = {}, str(exc)
        last = (decisions(package) or [{}])[-1]
        rows.append(
            {
                "version": version_of(package),
                "status": package.get("ModelApprovalStatus", ""),
                "created": _iso(package.get("CreationTime")),
                "registered_by": registered_by(package) or "",
                "decided_by": last.get("by", ""),
                "decided_at": last.get("at", ""),
                "metrics": values,
                "integrity": integrity,
                "deployed": deployments(package),
                "arn": package["ModelPackageArn"],
                "metadata_keys": sorted(package.get("CustomerMetadataProperties") or {}),
            }
        )
    return rows


def lineage(
    env: Environment, sessions: Sessions, version: int, registry: Registry | None = None, package: dict | None = None
) -> dict:
    """Where a version came from and where it went: data, code, run, metrics, baseline, decisions, use."""
    registry = registry or Registry(env, sessions, purpose=f"lineage-v{version}")
    package = package or registry.describe(version)
    meta_props = package.get("MetadataProperties") or {}
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    baselines = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics_uri = (baselines.get("Statistics") or {}).get("S3Uri")
    constraints_uri = (baselines.get("Constraints") or {}).get("S3Uri")
    metrics = registry.metrics(package)
    return {
        "version": version_of(package),
        "arn": package["ModelPackageArn"],
        "group_arn": env.model_package_group_arn,
        "status": package.get("ModelApprovalStatus", ""),
        "approval_description": package.get("ApprovalDescription", ""),
        "created": _iso(package.get("CreationTime")),
        "registered_by": registered_by(package),
        "dataset": dataset_snapshot(package, registry),
        "git_commit": meta_props.get("CommitId") or metadata(package, "git-commit", "git_commit", "GitCommit"),
        "repository": meta_props.get("Repository"),
        "build": metadata(package, "build", "build-id", "build_id", "build-url", "build_url"),
        "pipeline_execution": meta_props.get("GeneratedBy")
        or metadata(package, "pipeline-execution", "pipeline-execution-arn", "pipeline_execution_arn", "execution-arn"),
        "hyperparameters": _maybe_json(metadata(package, "hyperparameters")),
        "model_data_url": containers[0].get("ModelDataUrl"),
        "image": containers[0].get("Image"),
        "metrics": metrics.as_dict(),
        "baseline": {
            "statistics_uri": statistics_uri,
            "constraints_uri": constraints_uri,
            **baseline_summary(registry.read_json(statistics_uri), registry.read_json(constraints_uri)),
        },
        "decisions": decisions(package),
        "deployed": deployments(package),
    }


def dataset_snapshot(package: dict, registry: Registry) -> dict:
    """The data a version was trained on: the dataset URI, its digest and, per part, key, version id,
    ETag, sha256 and rows, from the snapshot the training run recorded next to the model."""
    snapshot_uri = metadata(package, "dataset_snapshot")
    snapshot = registry.read_json(snapshot_uri) or {}
    rows = metadata(package, "dataset_rows")
    return {
        "uri": metadata(package, "dataset-uri", "dataset_uri", "dataset", "DatasetUri"),
        "sha256": metadata(
            package, "dataset-sha256", "dataset_sha256", "dataset-hash", "dataset_hash", "DatasetSha256"
        ),
        "rows": int(rows) if rows and rows.isdigit() else snapshot.get("rows"),
        "snapshot_uri": snapshot_uri,
        "parts": snapshot.get("parts") or [],
        "skipped": snapshot.get("skipped") or [],
        "trigger": metadata(package, "trigger") if metadata(package, "trigger") not in (None, "none") else None,
    }


def compare_datasets(candidate: dict, champion: dict | None) -> dict:
    """What changed in the data between the champion and the candidate: parts added or removed (by content
    hash, so a part re-delivered under another key is the same part), rows on each side."""
    ours = {p["sha256"]: p for p in candidate.get("parts") or []}
    theirs = {p["sha256"]: p for p in (champion or {}).get("parts") or []}
    return {
        "candidate_rows": candidate.get("rows"),
        "champion_rows": (champion or {}).get("rows"),
        "same_data": bool(champion) and candidate.get("sha256") == (champion or {}).get("sha256"),
        "added": [ours[h] for h in ours if h not in theirs],
        "removed": [theirs[h] for h in theirs if h not in ours],
        "kept": [ours[h] for h in ours if h in theirs],
    }


def _maybe_json(value):
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def baseline_summary(statistics: dict | None, constraints: dict | None) -> dict:
    """The drift baseline at a glance: rows, features and per-feature statistics (Model Monitor schema)."""
    summary: dict[str, Any] = {"item_count": None, "features": []}
    if statistics:
        summary["item_count"] = (statistics.get("dataset") or {}).get("item_count")
        for feature in statistics.get("features", []):
            numbers = feature.get("numerical_statistics") or {}
            common = numbers.get("common") or (feature.get("string_statistics") or {}).get("common") or {}
            summary["features"].append(
                {
                    "name": feature.get("name"),
                    "type": feature.get("inferred_type"),
                    "mean": numbers.get("mean"),
                    "std_dev": numbers.get("std_dev"),
                    "min": numbers.get("min"),
                    "max": numbers.get("max"),
                    "missing": common.get("num_missing"),
                }
            )
    if constraints:
        summary["constraints"] = len(constraints.get("features", []))
        summary["monitoring_config"] = constraints.get("monitoring_config") or {}
    return summary


# -- rendering for people -------------------------------------------------------------------------
def render_versions(rows: list[dict]) -> str:
    return table(rows, ["version", "status", "created"]) if rows else "no versions registered yet"


def render_status(env: Environment, rows: list[dict]) -> str:
    if not rows:
        return f"no versions in {env.model_package_group_arn}"
    flat = [
        {
            "version": r["version"],
            "status": r["status"],
            "created": r["created"],
            "auc": _fmt(r["metrics"].get("auc")),
            "f1": _fmt(r["metrics"].get("f1")),
            "registered by": r["registered_by"],
            "decided by": r["decided_by"],
            "runs in": ", ".join(sorted(set(r.get("runs_in", [])) | set(r["deployed"]))) or "-",
            "pinned for": ", ".join(r.get("pinned_for", [])) or "-",
        }
        for r in rows
    ]
    return f"{env.model_package_group_arn}\n" + table(
        flat, ["version", "status", "created", "auc", "f1", "registered by", "decided by", "runs in", "pinned for"]
    )


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _part_lines(dataset: dict) -> list:
    lines = []
    for i, part in enumerate(dataset.get("parts") or [], 1):
        version = f"  version {part['version_id']}" if part.get("version_id") else ""
        etag = f"  etag {part['etag']}" if part.get("etag") else ""
        lines.append(
            f"    part {i}      {part.get('uri') or part.get('key')}{version}{etag}  sha256 {part.get('sha256')}  "
            f"{part.get('rows')} rows"
        )
    for skipped in dataset.get("skipped") or []:
        lines.append(f"    skipped     {skipped.get('key')}: {skipped.get('reason')}")
    if dataset.get("trigger"):
        lines.append(f"    started by  {dataset['trigger']}")
    return lines


def render_lineage(info: dict) -> str:
    lines = [
        f"version {info['version']}  {info['status']}  {info['arn']}",
        f"  registered    {info['created']} by {info['registered_by'] or 'unknown'}",
        f"  dataset       {info['dataset']['uri'] or '-'}  sha256 {info['dataset']['sha256'] or '-'}"
        + (f"  {info['dataset']['rows']} rows" if info["dataset"].get("rows") is not None else ""),
        *_part_lines(info["dataset"]),
        f"  git commit    {info['git_commit'] or '-'}",
        f"  build         {info['build'] or '-'}",
        f"  pipeline run  {info['pipeline_execution'] or '-'}",
        f"  model data    {info['model_data_url'] or '-'}",
    ]
    metrics = {k: v for k, v in info["metrics"].items() if k in Metrics.NAMES}
    lines.append("  metrics       " + (", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "-"))
    base = info["baseline"]
    lines.append(
        f"  baseline      {base['statistics_uri'] or '-'} ({len(base['features'])} features, "
        f"{base['item_count'] if base['item_count'] is not None else '?'} rows)"
    )
    lines.append("  decisions     " + ("" if info["decisions"] else "none"))
    for d in info["decisions"]:
        lines.append(
            f"    {d.get('status')} by {d.get('by')} at {d.get('at')} (build {d.get('build')}): {d.get('reason', '')}"
        )
    lines.append(
        "  runs in       " + (", ".join(f"{k} ({v})" for k, v in sorted(info["deployed"].items())) or "nowhere yet")
    )
    runs = info.get("runs")
    if runs is not None:
        lines.append("  ran           " + ("" if runs else "no recorded inference"))
        for r in runs:
            lines.append(f"    {r['at']} in {r['environment']} (account {r['account']}), execution {r['execution']}")
    pins = info.get("pins")
    if pins:
        lines.append(
            "  pins          " + (f"pinned for {', '.join(info['pinned_for'])}" if info.get("pinned_for") else "")
        )
        for p in pins:
            lines.append(
                f"    {p.get('action')} {p.get('environment')} by {p.get('by')} at {p.get('at')} "
                f"(build {p.get('build')}): {p.get('reason', '')}"
            )
    return "\n".join(lines)
