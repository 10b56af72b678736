"""Environment files (environments/<name>.yaml): loading, validation, and the names derived from them.

Every command reads one environment. A bad file fails with one line naming the file, the field and
the value (ConfigError, exit code 2) before anything touches AWS or the sandbox.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from mlops_core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sandbox", "aws")
# dev-like (trains; branch namespaces) or prod-like (versions are promoted to it); any number of each
KINDS = ("dev", "prod")
# An environment file is a page of settings: limits that keep a mistaken or hostile file from costing
# seconds of parsing or a RecursionError before the one-line error.
MAX_FILE_BYTES = 256 * 1024
MAX_NESTING = 16

_ACCOUNT_ID = re.compile(r"^[0-9]{12}$", re.ASCII)
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$", re.ASCII)
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$", re.ASCII)
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$", re.ASCII)
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(role|user)/[\w+=,.@/-]{1,512}$", re.ASCII)
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", re.ASCII)
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$", re.ASCII)
_KMS_ALIAS = re.compile(r"^alias/(?!aws/)[A-Za-z0-9/_-]{1,250}$", re.ASCII)
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", re.ASCII)
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$", re.ASCII)
_CONTRACT = re.compile(r"^[^:*?]+\.ya?ml$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", re.ASCII)
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$", re.ASCII)
_CRON = re.compile(r"^cron\((.+)\)$", re.ASCII)
_DATASET = re.compile(r"^(builtin:[a-z0-9-]+|s3://[a-z0-9.-]{3,63}/.*|[^:]+)$", re.ASCII)
_DATASET_WHAT = "a dataset (builtin:NAME, s3://BUCKET/PREFIX-OR-KEY, or a local CSV file, folder or glob)"
_PARAMETER = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,255}$", re.ASCII)
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/=-]{1,512}$", re.ASCII)
_KEY_SUFFIX = re.compile(r"^[A-Za-z0-9!_.*'()/=-]{0,255}$", re.ASCII)
# EC2 ids: a prefix and 8 (older) or 17 hexadecimal digits; an ARN names the region and account too.
_EC2_ID = {
    "subnet": re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$", re.ASCII),
    "sg": re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$", re.ASCII),
}
_EC2_ARN = re.compile(r"^arn:aws[a-z-]*:ec2:([a-z0-9-]+):(\d{12}):(subnet|security-group)/(.+)$", re.ASCII)
_STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$", re.ASCII)
# AWS's limits: VpcConfig takes 1-16 subnets and 1-5 security groups
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_VpcConfig.html); a step retry policy
# 1-20 attempts, IntervalSeconds up to 43200 (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html).
MAX_SUBNETS, MAX_SECURITY_GROUPS = 16, 5
MAX_RETRY_ATTEMPTS, MAX_RETRY_INTERVAL_SECONDS = 20, 43200

# The steps of each pipeline as pipelines/definitions.py builds them (tests/pipelines/test_definitions.py
# checks this table against the built definitions; the *Merge steps exist when inference.instance_count
# shards a check, the Publish*Metrics steps when a check runs network-isolated): what a notification rule
# may name.
PIPELINE_STEPS = {
    "train": (
        "Preprocess",
        "Train",
        "Evaluate",
        "CheckModelQuality",
        "Seal",
        "Register-RegisterModel",
        "ModelQualityBelowThreshold",
    ),
    "hpo": (
        "Preprocess",
        "Tune",
        "Evaluate",
        "CheckModelQuality",
        "Seal",
        "Register-RegisterModel",
        "ModelQualityBelowThreshold",
    ),
    "inference": (
        "LatestApprovedModel",
        "DataValidation",
        "CheckDataValidation",
        "DataValidationMerge",
        "PublishDataValidationMetrics",
        "DataValidationFailed",
        "DataDriftCheck",
        "DataDriftCheckMerge",
        "PublishDataDriftCheckMetrics",
        "CheckDataDrift",
        "DataDriftDetected",
        "CreateModel-CreateModel",
        "BatchTransform",
        "RecordRun",
    ),
    "quality": ("ModelQuality", "ModelQualityMerge", "CheckModelQuality", "ModelQualityBelowThreshold"),
}
# The failures the pipelines name (their Fail steps): each step event's failureReason starts with its name.
FAILURE_REASONS = ("DataValidationFailed", "DataDriftDetected", "ModelQualityBelowThreshold")
# Status values as SageMaker's EventBridge events carry them: PipelineExecutionStatus and StepStatus
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionSummary.html,
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionStep.html) and a model
# package's ModelApprovalStatus.
EXECUTION_STATUSES = ("Executing", "Stopping", "Stopped", "Failed", "Succeeded")
STEP_STATUSES = ("Starting", "Executing", "Stopping", "Stopped", "Failed", "Succeeded")
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
# The named fields a notification message may use: {environment} and {project} are the environment's,
# the others come from the event (an input transformer's input paths).
EXECUTION_FIELDS = ("environment", "project", "account", "region", "pipeline", "execution", "status", "time")
STEP_FIELDS = EXECUTION_FIELDS + ("step", "failure_reason")
REGISTRY_FIELDS = ("environment", "project", "account", "region", "group", "version", "model_package", "status", "time")
# Names mlops-infra/ gives its own rules and topics: a notification rule or topic may not take them.
RESERVED_NOTIFICATION_NAMES = (
    "inference-schedule",
    "retrain-on-inference-failure",
    "hpo-on-quality-drop",
    "notifications",
)
MAX_MESSAGE = 1000
# PutMetricAlarm: Period x EvaluationPeriods at most 7 days for periods of an hour or more
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html).
MAX_ALARM_WINDOW_MINUTES = 7 * 24 * 60
_NOTIFICATION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,27}$", re.ASCII)
_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$", re.ASCII)


@dataclass(frozen=True)
class Roles:
    execution: str
    lambda_: str
    events: str
    jenkins: str
    approver: str


@dataclass(frozen=True)
class Jenkins:
    principal_arn: str
    external_id: str

    @property
    def account_id(self) -> str:
        return self.principal_arn.split(":")[4]


@dataclass(frozen=True)
class Buckets:
    artifacts: str
    registry: str
    terraform_state: str


@dataclass(frozen=True)
class HpoRange:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: tuple = ()


@dataclass(frozen=True)
class Training:
    dataset: str = "builtin:breast-cancer"
    target: str = "diagnosis"
    features: tuple | str = "all"
    categorical: tuple = ()
    missing_values: tuple = ("?",)
    instance_type: str = "ml.m5.large"
    auc_threshold: float = 0.9
    champion_tolerance: float = 0.02
    hyperparameters: dict = field(default_factory=lambda: {"max_depth": 4, "eta": 0.2, "num_round": 60})
    hpo_max_jobs: int = 4
    hpo_max_parallel_jobs: int = 2
    hpo_ranges: tuple = (
        HpoRange("max_depth", "integer", 2, 6),
        HpoRange("eta", "continuous", 0.05, 0.5),
    )
    # The data contract (YAML; in the file relative to it, here resolved): `run-pipeline contract` proposes one.
    contract: str | None = None


@dataclass(frozen=True)
class Inference:
    input: str = "builtin:breast-cancer-batch"
    instance_type: str = "ml.m5.large"
    # False-alarm rate of the whole drift check per clean batch (all features and checks together).
    drift_significance: float = 0.01
    # Column of the batch that identifies a record (passed through to the predictions); None: the toolkit
    # numbers the rows (1, 2, ... in each batch object, header excluded) and that number is the record id
    # (`<object>:<row>` when the batch is several objects or the checks run on several instances).
    id_column: str | None = None
    # Model quality against ground truth: labels (id,label) land under <env>/ground-truth/<inference run>/;
    # a metric fails when it is below the registered baseline minus its tolerance, beyond sampling noise
    # at this false-alarm rate (for all metrics of a batch together).
    quality_tolerance: dict = field(
        default_factory=lambda: {m: 0.05 for m in ("auc", "f1", "precision", "recall", "accuracy")}
    )
    quality_significance: float = 0.01
    # Instances per job (inference.instance_count). More than 1 splits the batch by S3 object
    # (ShardedByS3Key): the checks (DataValidation, DataDriftCheck, ModelQuality) run N instances writing
    # partial results and a 1-instance merge; the transform spreads the objects over N instances.
    check_instance_count: int = 1
    transform_instance_count: int = 1


@dataclass(frozen=True)
class Network:
    """Where the jobs run: the VPC subnets and security groups of every job and model, and which steps
    run network-isolated (True: every step whose container allows it; a tuple: only those steps)."""

    subnets: tuple
    security_groups: tuple
    isolation: bool | tuple = True

    def isolates(self, step: str) -> bool:
        return step in self.isolation if isinstance(self.isolation, tuple) else bool(self.isolation)


@dataclass(frozen=True)
class RetryPolicy:
    """One SageMaker Pipelines retry policy: MaxAttempts retries after the first attempt, the first after
    IntervalSeconds, each next one BackoffRate times longer."""

    max_attempts: int
    interval_seconds: int
    backoff_rate: float


@dataclass(frozen=True)
class Retries:
    """service: Step.SERVICE_FAULT and Step.THROTTLING (a call to a service failed), on every step that
    takes a retry policy; jobs: SageMaker.JOB_INTERNAL_ERROR, CAPACITY_ERROR and RESOURCE_LIMIT, on
    the steps that run jobs. max_parallel_steps: the pipeline's ParallelismConfiguration."""

    service: RetryPolicy = RetryPolicy(max_attempts=5, interval_seconds=5, backoff_rate=2.0)
    jobs: RetryPolicy = RetryPolicy(max_attempts=3, interval_seconds=60, backoff_rate=2.0)
    max_parallel_steps: int = 10


@dataclass(frozen=True)
class Arrival:
    """An S3 object landing under `prefix` (and ending in `suffix`) in the artifacts bucket starts
    `pipeline` with `parameter` set to the object's s3:// URI (EventBridge "Object Created")."""

    name: str
    prefix: str
    suffix: str
    pipeline: str
    parameter: str


@dataclass(frozen=True)
class NotificationRule:
    """Which events of which pipeline (or of the model registry) send which message to whom.

    pipeline: train, hpo, inference, quality or any; None for a registry rule (a version's approval
    status changed). step: None for the execution's own status, "any" or a step name for a step's status.
    topic: the environment topic the message goes to ("default", one of notifications.topics, or
    "rule-<name>" for a rule with its own recipients)."""

    name: str
    statuses: tuple
    message: str
    pipeline: str | None = None
    step: str | None = None
    failure_reasons: tuple = ()
    except_failure_reasons: tuple = ()
    recipients: tuple = ()
    topic: str = "default"

    @property
    def kind(self) -> str:
        """registry, execution or step: which SageMaker event the rule matches."""
        if self.pipeline is None:
            return "registry"
        return "execution" if self.step is None else "step"

    @property
    def fields(self) -> tuple:
        return {"registry": REGISTRY_FIELDS, "execution": EXECUTION_FIELDS, "step": STEP_FIELDS}[self.kind]


@dataclass(frozen=True)
class Notifications:
    """notifications: emails (the environment topic's subscribers), topics (more topics, each with its
    subscribers) and rules."""

    emails: tuple = ()
    topics: dict = field(default_factory=dict)
    rules: tuple = ()


@dataclass(frozen=True)
class Monitoring:
    """The alarms of mlops-infra/ besides the quality floor (training.auc_threshold): a check's violations
    above `violations_limit` in one run; no successful inference for the schedule's period (or
    `inference_period_minutes`) plus `missed_inference_slack_minutes`."""

    violations_limit: int = 0
    missed_inference_slack_minutes: int = 120
    inference_period_minutes: int | None = None


@dataclass(frozen=True)
class Environment:
    """One validated environment file. Names (ARNs, role names) are derived here and nowhere else."""

    name: str
    kind: str
    backend: str
    region: str
    project: str
    accounts: dict
    account: str
    roles: Roles
    jenkins: Jenkins
    buckets: Buckets
    terraform_lock_table: str
    kms_key_alias: str
    model_package_group: str
    pipelines: dict
    schedule: str
    notification_emails: tuple
    training: Training
    inference: Inference
    source: Path
    network: Network | None = None
    retries: Retries = Retries()
    arrivals: tuple = ()  # of Arrival
    notifications: Notifications = Notifications()
    monitoring: Monitoring = Monitoring()
    # A git branch's namespace inside a dev-like environment (mlops_core.branches.branch_environment)
    branch: str | None = None
    namespace: str | None = None
    base_name: str | None = None

    @property
    def account_id(self) -> str:
        return self.accounts[self.account]

    @property
    def registry_account_id(self) -> str:
        return self.accounts["registry"]

    @property
    def workload_accounts(self) -> dict:
        """Accounts on the promotion path that train or serve (every account but the registry)."""
        return {k: v for k, v in self.accounts.items() if k != "registry"}

    @property
    def partition(self) -> str:
        return "aws-us-gov" if "-gov-" in self.region else "aws"

    @property
    def audit_role(self) -> str:
        """The read-only role in each workload account through which the approver reads who started the
        run that registered a version (CloudTrail, pipeline executions)."""
        return f"{self.project}-registration-audit"

    def role_arn(self, role: str, account_id: str | None = None) -> str:
        """ARN of one of the environment's roles (`execution`, `lambda`, `events`, `jenkins`, `approver`,
        `audit`)."""
        name = self.audit_role if role == "audit" else getattr(self.roles, "lambda_" if role == "lambda" else role)
        if account_id is None:
            account_id = self.registry_account_id if role == "approver" else self.account_id
        return f"arn:{self.partition}:iam::{account_id}:role/{name}"

    @property
    def lambda_function_name(self) -> str:
        """The inference pipeline's latest-approved-model Lambda (one per branch namespace)."""
        return f"{self.project}-{self.namespace + '-' if self.namespace else ''}latest-approved-model"

    @property
    def outputs_prefix(self) -> str:
        """First part of the S3 keys pipeline steps write in the artifacts bucket."""
        return f"branches/{self.namespace}" if self.namespace else self.account

    @property
    def predictions_prefix(self) -> str:
        """First part of the S3 keys batch predictions are written under."""
        return f"branches/{self.namespace}" if self.namespace else self.name

    @property
    def register_group(self) -> str:
        """The group train runs register in: a branch's own group, where nothing can be approved."""
        return f"{self.model_package_group}-branches" if self.namespace else self.model_package_group

    @property
    def register_group_arn(self) -> str:
        return self.model_package_group_arn.rsplit("/", 1)[0] + "/" + self.register_group

    @property
    def model_package_group_arn(self) -> str:
        return (
            f"arn:{self.partition}:sagemaker:{self.region}:{self.registry_account_id}:"
            f"model-package-group/{self.model_package_group}"
        )

    def pipeline_arn(self, which: str) -> str:
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account_id}:pipeline/{self.pipelines[which]}"

    @property
    def sandbox_accounts(self) -> dict:
        """Every account this environment touches, with a label: what the sandbox must pre-seed."""
        accounts = dict(self.accounts)
        accounts.setdefault("jenkins", self.jenkins.account_id)
        return accounts


def schedule_period_minutes(schedule: str) -> int | None:
    """The longest time between two runs of a schedule expression, in minutes, when it can be read off: any
    rate(...), and a cron(...) that runs hourly, every N hours, daily or weekly; None otherwise."""
    rate = _RATE.fullmatch(schedule)
    if rate:
        count, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        return count * {"minute": 1, "hour": 60, "day": 1440}[unit]
    cron = _CRON.fullmatch(schedule)
    if not cron or len(cron.group(1).split()) != 6:
        return None
    minute, hour, day_of_month, month, day_of_week, year = cron.group(1).split()
    every_day = day_of_month in ("*", "?") and day_of_week in ("*", "?")
    if not minute.isdigit() or month != "*" or year != "*":
        return None
    if every_day and hour == "*":
        return 60
    if every_day and re.fullmatch(r"(\*|0)/([1-9][0-9]?)", hour):
        step = int(hour.split("/")[1])
        return step * 60 if 24 % step == 0 else None
    if every_day and hour.isdigit():
        return 1440
    weekday = re.fullmatch(r"[1-7]|SUN|MON|TUE|WED|THU|FRI|SAT", day_of_week)
    if hour.isdigit() and day_of_month == "?" and weekday:
        return 7 * 1440
    return None


def environments_dir(env_dir: str | os.PathLike | None = None) -> Path:
    """Where environment files live: --env-dir, $MLOPS_ENV_DIR, ./environments, or the repository's."""
    if env_dir:
        return Path(env_dir)
    if os.environ.get("MLOPS_ENV_DIR"):
        return Path(os.environ["MLOPS_ENV_DIR"])
    local = Path.cwd() / "environments"
    return local if local.is_dir() else REPO_ROOT / "environments"


def environment_path(name_or_path: str, env_dir: str | os.PathLike | None = None) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    directory = environments_dir(env_dir)
    path = directory / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ConfigError(
            f"no environment '{name_or_path}' in {directory} (known: {', '.join(known) or 'none'})", field="--env"
        )
    return path


def list_environments(env_dir: str | os.PathLike | None = None) -> list[str]:
    return sorted(p.stem for p in environments_dir(env_dir).glob("*.yaml"))


def load_environment(
    name_or_path: str, env_dir: str | os.PathLike | None = None, backend: str | None = None
) -> Environment:
    """Load and validate one environment. `backend` (from --backend) overrides the file's value."""
    path = environment_path(name_or_path, env_dir)
    display = _display_path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # never more: a huge file fails without being read whole
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=display) from None
    _check_size(len(raw), display)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"byte {exc.start}: not UTF-8 text", source=display) from None
    return parse_environment(text, display, path, backend=backend)


def _check_size(size: int, display: str) -> None:
    if size > MAX_FILE_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB, the limit for an environment file",
            source=display,
        )


def parse_environment(text: str, display: str, path: Path | None = None, backend: str | None = None) -> Environment:
    import yaml  # only commands that read config pay for it

    _check_size(len(text.encode("utf-8", "surrogatepass")), display)
    try:
        data = _strict_load(text)
    except _StrictYamlError as exc:
        raise ConfigError(str(exc), source=display) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "document"
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})", source=display) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of fields at the top level", source=display)
    env = _Validator(data, display).environment(path or Path(display))
    if backend is not None:
        if backend not in BACKENDS:
            raise ConfigError(f"'{backend}' is not one of {', '.join(BACKENDS)}", field="--backend")
        env = _replace(env, backend=backend)
    return env


class _StrictYamlError(Exception):
    """A YAML document that parses but that an environment file must not be (duplicate key, too deep)."""


def _strict_load(text: str) -> Any:
    """yaml.safe_load, refusing duplicate keys (YAML forbids them; PyYAML keeps the last silently) and
    nesting deeper than MAX_NESTING (PyYAML's composer recurses: 1,000 levels is a RecursionError)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    mark = self.peek_event().start_mark
                    raise _StrictYamlError(
                        f"line {mark.line + 1}: nested deeper than {MAX_NESTING} levels: not an environment file"
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` may be overridden by explicit keys, as YAML allows
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # an unhashable key fails in the constructor with its own message
                if first != key_node.start_mark.line + 1:
                    raise _StrictYamlError(
                        f"line {key_node.start_mark.line + 1}: duplicate key {_show(key)} (first at line {first})"
                    )
            return super().construct_mapping(node, deep=deep)

    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _replace(env: Environment, **changes: Any) -> Environment:
    return replace(env, **changes)


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_TOP_LEVEL = {
    "environment",
    "kind",
    "backend",
    "region",
    "project",
    "accounts",
    "account",
    "roles",
    "jenkins",
    "buckets",
    "terraform",
    "kms",
    "model_package_group",
    "pipelines",
    "schedule",
    "notifications",
    "training",
    "inference",
    "network",
    "retry",
    "arrivals",
    "monitoring",
}


class _Validator:
    """Walks the parsed YAML; each check names the dotted field path and the offending value."""

    def __init__(self, data: dict, source: str):
        self.data = data
        self.source = source

    def fail(self, field_path: str, message: str) -> NoReturn:
        raise ConfigError(message, source=self.source, field=field_path)

    def section(self, data: dict, path: str, allowed: set, required: set) -> dict:
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping, got {_show(data)}")
        for key in data:
            if key not in allowed:
                self.fail(
                    f"{path}.{key}" if path else str(key),
                    f"unknown field (expected one of: {', '.join(sorted(allowed))})",
                )
        for key in sorted(required):
            if data.get(key) is None:
                self.fail(f"{path}.{key}" if path else key, "required field is missing")
        return data

    def match(self, value: Any, path: str, pattern: re.Pattern, what: str) -> str:
        # fullmatch: `$` alone accepts a trailing newline ("111111111111\n" as an account id)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.fail(path, f"{_show(value)} is not {what}")
        return value

    def number(self, value: Any, path: str, low: float, high: float, integer: bool = False) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not (low <= value <= high):
            kind = "a whole number" if integer else "a number"
            self.fail(path, f"{_show(value)} is not {kind} between {low} and {high}")
        return value

    def at_least(self, value: Any, path: str, low: float, integer: bool = False) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or value < low:
            self.fail(path, f"{_show(value)} is not {'a whole number' if integer else 'a number'} of at least {low}")
        return value

    def string_list(self, value: Any, path: str, pattern: re.Pattern | None = None, what: str = "") -> tuple:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_show(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or (pattern and not pattern.fullmatch(item)):
                self.fail(f"{path}[{i}]", f"{_show(item)} is not {what or 'a string'}")
        return tuple(value)

    def account_id(self, value: Any, path: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(path, f"{value} must be quoted: account ids are 12-digit strings (a number loses leading zeros)")
        return self.match(value, path, _ACCOUNT_ID, "a 12-digit AWS account id")

    def environment(self, path: Path) -> Environment:
        d = self.section(
            self.data,
            "",
            _TOP_LEVEL,
            _TOP_LEVEL - {"training", "inference", "notifications", "network", "retry", "arrivals", "monitoring"},
        )
        name = self.match(d["environment"], "environment", _ENV_NAME, "an environment name (lowercase, digits, -)")
        if path.stem != name and path.suffix in (".yaml", ".yml"):
            self.fail("environment", f"'{name}' does not match the file name '{path.name}'")
        kind = d["kind"]
        if kind not in KINDS:
            self.fail("kind", f"{_show(kind)} is not one of {', '.join(KINDS)}")
        backend = d["backend"]
        if backend not in BACKENDS:
            self.fail("backend", f"{_show(backend)} is not one of {', '.join(BACKENDS)}")
        region = self.match(d["region"], "region", _REGION, "an AWS region name like eu-west-1")
        project = self.match(d["project"], "project", _PROJECT, "a project name (3-32 lowercase letters, digits, -)")

        accounts = self.section(
            d["accounts"], "accounts", set(d["accounts"]) if isinstance(d["accounts"], dict) else set(), {"registry"}
        )
        for label, value in accounts.items():
            self.match(label, f"accounts.{label}", _ENV_NAME, "an account label (lowercase, digits, -)")
            self.account_id(value, f"accounts.{label}")
        account = d["account"]
        if account not in accounts or account == "registry":
            choices = ", ".join(k for k in accounts if k != "registry")
            self.fail("account", f"{_show(account)} is not a workload account in 'accounts' (one of: {choices})")
        if accounts[account] == accounts["registry"]:
            self.fail(
                "accounts.registry",
                f"'{accounts['registry']}' is the same account as accounts.{account}: "
                "the registry must be a separate account",
            )
        owner: dict = {}
        for label, value in accounts.items():
            other = owner.setdefault(value, label)
            if other != label:
                why = (
                    "the registry must be a separate account"
                    if "registry" in (label, other)
                    else "each stage of the promotion path needs its own account"
                )
                self.fail(f"accounts.{label}", f"'{value}' is the same account as accounts.{other}: {why}")

        r = self.section(
            d["roles"],
            "roles",
            {"execution", "lambda", "events", "jenkins", "approver"},
            {"execution", "lambda", "events", "jenkins", "approver"},
        )
        roles = Roles(
            **{
                ("lambda_" if k == "lambda" else k): self.match(v, f"roles.{k}", _ROLE_NAME, "an IAM role name")
                for k, v in r.items()
            }
        )

        j = self.section(d["jenkins"], "jenkins", {"principal_arn", "external_id"}, {"principal_arn", "external_id"})
        jenkins = Jenkins(
            principal_arn=self.match(
                j["principal_arn"],
                "jenkins.principal_arn",
                _PRINCIPAL_ARN,
                "an IAM role or user ARN (arn:aws:iam::123456789012:role/NAME)",
            ),
            external_id=self.match(
                j["external_id"],
                "jenkins.external_id",
                _EXTERNAL_ID,
                "an ExternalId (2-1224 characters of letters, digits and +=,.@:/-)",
            ),
        )

        if jenkins.account_id in owner:
            self.fail(
                "jenkins.principal_arn",
                f"account '{jenkins.account_id}' is the same account as accounts.{owner[jenkins.account_id]}: "
                "Jenkins must act from its own account",
            )

        b = self.section(
            d["buckets"],
            "buckets",
            {"artifacts", "registry", "terraform_state"},
            {"artifacts", "registry", "terraform_state"},
        )
        buckets = Buckets(**{k: self.match(v, f"buckets.{k}", _BUCKET, "a valid S3 bucket name") for k, v in b.items()})
        if len({buckets.artifacts, buckets.registry, buckets.terraform_state}) < 3:
            self.fail("buckets", "artifacts, registry and terraform_state must be three different buckets")

        t = self.section(d["terraform"], "terraform", {"lock_table"}, {"lock_table"})
        lock_table = self.match(t["lock_table"], "terraform.lock_table", _TABLE, "a DynamoDB table name")
        k = self.section(d["kms"], "kms", {"key_alias"}, {"key_alias"})
        key_alias = self.match(
            k["key_alias"], "kms.key_alias", _KMS_ALIAS, "a customer-managed KMS alias (alias/NAME, not alias/aws/...)"
        )
        group = self.match(
            d["model_package_group"],
            "model_package_group",
            _SAGEMAKER_NAME,
            "a model package group name (letters, digits, -; at most 63)",
        )
        p = self.section(
            d["pipelines"], "pipelines", {"train", "hpo", "inference", "quality"}, {"train", "hpo", "inference"}
        )
        # The model-quality pipeline came later: files without it get a name derived from the project.
        p = {**p, "quality": p.get("quality", f"{project}-model-quality")}
        pipelines = {
            k: self.match(v, f"pipelines.{k}", _SAGEMAKER_NAME, "a pipeline name (letters, digits, -; at most 63)")
            for k, v in p.items()
        }
        if len(set(pipelines.values())) < len(pipelines):
            self.fail("pipelines", "train, hpo, inference and quality must have different names")
        schedule = self._schedule(d["schedule"])

        notifications = self._notifications(d.get("notifications") or {})

        return Environment(
            name=name,
            kind=kind,
            backend=backend,
            region=region,
            project=project,
            accounts=dict(accounts),
            account=account,
            roles=roles,
            jenkins=jenkins,
            buckets=buckets,
            terraform_lock_table=lock_table,
            kms_key_alias=key_alias,
            model_package_group=group,
            pipelines=pipelines,
            schedule=schedule,
            notification_emails=notifications.emails,
            training=self._training(d.get("training") or {}, path),
            inference=self._inference(d.get("inference") or {}),
            source=path,
            network=self._network(d["network"], region, accounts[account]) if d.get("network") is not None else None,
            retries=self._retries(d.get("retry") or {}),
            arrivals=self._arrivals(d.get("arrivals") or [], pipelines),
            notifications=notifications,
            monitoring=self._monitoring(d.get("monitoring") or {}, schedule),
        )

    def _network(self, data: Any, region: str, account_id: str) -> Network:
        n = self.section(data, "network", {"subnets", "security_groups", "isolation"}, set())
        for present, missing in (("subnets", "security_groups"), ("security_groups", "subnets")):
            if n.get(present) and not n.get(missing):
                self.fail(
                    f"network.{missing}",
                    f"required with network.{present}: a job in a VPC needs both subnets and security groups",
                )
        if not n.get("subnets"):
            self.fail(
                "network.subnets", "required field is missing (a network block names subnets and security groups)"
            )
        subnets = self._ec2_ids(n["subnets"], "network.subnets", "subnet", MAX_SUBNETS, region, account_id)
        groups = self._ec2_ids(
            n["security_groups"], "network.security_groups", "sg", MAX_SECURITY_GROUPS, region, account_id
        )
        isolation = n.get("isolation", True)
        if isinstance(isolation, list):
            isolation = self.string_list(isolation, "network.isolation", _STEP_NAME, "a pipeline step name")
        elif not isinstance(isolation, bool):
            self.fail("network.isolation", f"{_show(isolation)} is not true, false or a list of step names")
        return Network(subnets, groups, isolation)

    def _ec2_ids(self, value: Any, path: str, kind: str, limit: int, region: str, account_id: str) -> tuple:
        what = {
            "subnet": "a subnet id (subnet-0123456789abcdef0) or subnet ARN",
            "sg": "a security group id (sg-0123456789abcdef0) or security-group ARN",
        }[kind]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(path, f"expected a list of ids, got {_show(value)}")
        if len(value) > limit:
            self.fail(path, f"{len(value)} entries: SageMaker's VpcConfig accepts at most {limit}")
        ids = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            arn = _EC2_ARN.fullmatch(item) if isinstance(item, str) else None
            if arn:
                arn_region, arn_account, arn_kind, item = arn.groups()
                if arn_kind != {"subnet": "subnet", "sg": "security-group"}[kind]:
                    self.fail(item_path, f"{_show(value[i])} is a {arn_kind}, not {what}")
                if arn_region != region:
                    self.fail(
                        item_path,
                        f"{_show(value[i])} is in region {arn_region}; jobs of this environment run in {region}",
                    )
                if arn_account != account_id:
                    self.fail(
                        item_path,
                        f"{_show(value[i])} belongs to account {arn_account}; jobs of this environment run in "
                        f"{account_id}",
                    )
            if not isinstance(item, str) or not _EC2_ID[kind].fullmatch(item):
                self.fail(item_path, f"{_show(value[i])} is not {what}")
            if item in ids:
                self.fail(item_path, f"{_show(item)} is listed twice")
            ids.append(item)
        return tuple(ids)

    def _retries(self, data: Any) -> Retries:
        r = self.section(data, "retry", {"service", "jobs", "max_parallel_steps"}, set())
        default = Retries()
        policies = {}
        for key in ("service", "jobs"):
            base = getattr(default, key)
            p = self.section(
                r.get(key) or {}, f"retry.{key}", {"max_attempts", "interval_seconds", "backoff_rate"}, set()
            )
            policies[key] = RetryPolicy(
                max_attempts=self.number(
                    p.get("max_attempts", base.max_attempts), f"retry.{key}.max_attempts", 1, MAX_RETRY_ATTEMPTS, True
                ),
                interval_seconds=self.number(
                    p.get("interval_seconds", base.interval_seconds),
                    f"retry.{key}.interval_seconds",
                    1,
                    MAX_RETRY_INTERVAL_SECONDS,
                    True,
                ),
                # below 1 each retry would come sooner than the last: not a backoff
                backoff_rate=float(
                    self.at_least(p.get("backoff_rate", base.backoff_rate), f"retry.{key}.backoff_rate", 1)
                ),
            )
        parallel = self.at_least(
            r.get("max_parallel_steps", default.max_parallel_steps), "retry.max_parallel_steps", 1, integer=True
        )
        return Retries(policies["service"], policies["jobs"], parallel)

    def _arrivals(self, data: Any, pipelines: dict) -> tuple:
        if not isinstance(data, list):
            self.fail("arrivals", f"expected a list of triggers, got {_show(data)}")
        out, names = [], set()
        for i, item in enumerate(data):
            path = f"arrivals[{i}]"
            a = self.section(
                item,
                path,
                {"name", "prefix", "suffix", "pipeline", "parameter"},
                {"name", "prefix", "pipeline", "parameter"},
            )
            name = self.match(
                a["name"], f"{path}.name", re.compile(r"^[a-z][a-z0-9-]{0,30}$"), "a short name like inference-inbox"
            )
            if name in names:
                self.fail(f"{path}.name", f"{name!r} is used by another trigger")
            names.add(name)
            prefix = self.match(a["prefix"], f"{path}.prefix", _KEY_PREFIX, "an S3 key prefix like prod/inbox/")
            suffix = self.match(a.get("suffix", ""), f"{path}.suffix", _KEY_SUFFIX, "an S3 key suffix like .csv")
            if a["pipeline"] not in pipelines:
                self.fail(f"{path}.pipeline", f"{_show(a['pipeline'])} is not one of {', '.join(sorted(pipelines))}")
            parameter = self.match(a["parameter"], f"{path}.parameter", _PARAMETER, "a pipeline parameter name")
            out.append(Arrival(name, prefix, suffix, a["pipeline"], parameter))
        return tuple(out)

    def _monitoring(self, data: Any, schedule: str) -> Monitoring:
        m = self.section(
            data,
            "monitoring",
            {"violations_limit", "missed_inference_slack_minutes", "inference_period_minutes"},
            set(),
        )
        default = Monitoring()
        limit = self.number(
            m.get("violations_limit", default.violations_limit), "monitoring.violations_limit", 0, 1e9, True
        )
        slack = self.number(
            m.get("missed_inference_slack_minutes", default.missed_inference_slack_minutes),
            "monitoring.missed_inference_slack_minutes",
            0,
            MAX_ALARM_WINDOW_MINUTES,
            True,
        )
        period = m.get("inference_period_minutes")
        if period is not None:
            period = self.number(period, "monitoring.inference_period_minutes", 1, MAX_ALARM_WINDOW_MINUTES, True)
        elif schedule_period_minutes(schedule) is None:
            self.fail(
                "monitoring.inference_period_minutes",
                f"required: the period of schedule {schedule!r} cannot be derived (a rate(...), a daily, hourly "
                "or weekly cron can): give the longest time between two scheduled runs, in minutes",
            )
        window = (period or schedule_period_minutes(schedule) or 0) + slack
        if window > MAX_ALARM_WINDOW_MINUTES:
            self.fail(
                "monitoring.missed_inference_slack_minutes",
                f"the schedule's period plus the slack is {window} minutes: a CloudWatch alarm looks back at most "
                f"{MAX_ALARM_WINDOW_MINUTES} (7 days)",
            )
        return Monitoring(limit, slack, period)

    def _notifications(self, data: Any) -> Notifications:
        n = self.section(data, "notifications", {"emails", "topics", "rules"}, set())
        emails = self.string_list(n.get("emails", []), "notifications.emails", _EMAIL, "an email address")
        topics = {}
        given = n.get("topics") or {}
        if not isinstance(given, dict):
            self.fail(
                "notifications.topics", f"expected a mapping of topic name to email addresses, got {_show(given)}"
            )
        for name, subscribers in given.items():
            path = f"notifications.topics.{name}"
            if not isinstance(name, str) or not _NOTIFICATION_NAME.fullmatch(name) or name.startswith("rule-"):
                self.fail(path, f"{_show(name)} is not a topic name (a-z, 0-9, -; at most 28; not rule-...)")
            if name in RESERVED_NOTIFICATION_NAMES or name == "default":
                self.fail(
                    path, f"{name!r} is the environment's own topic: list its subscribers in notifications.emails"
                )
            topics[name] = self._recipients(subscribers, path)
        rules, names = [], set()
        given_rules = n.get("rules") or []
        if not isinstance(given_rules, list):
            self.fail("notifications.rules", f"expected a list of rules, got {_show(given_rules)}")
        for i, item in enumerate(given_rules):
            rule = self._notification_rule(item, f"notifications.rules[{i}]", topics)
            if rule.name in names:
                self.fail(f"notifications.rules[{i}].name", f"{rule.name!r} is used by another rule")
            names.add(rule.name)
            rules.append(rule)
        for name in topics:
            if not any(rule.topic == name for rule in rules):
                self.fail(
                    f"notifications.topics.{name}", "no rule sends to this topic (give a rule topic: " + name + ")"
                )
        return Notifications(emails, topics, tuple(rules))

    def _recipients(self, value: Any, path: str) -> tuple:
        if not isinstance(value, list) or not value:
            self.fail(path, f"expected a non-empty list of email addresses, got {_show(value)}")
        return self.string_list(value, path, _EMAIL, "an email address")

    def _notification_rule(self, data: Any, path: str, topics: dict) -> NotificationRule:
        allowed = {
            "name",
            "pipeline",
            "registry",
            "step",
            "statuses",
            "failure_reasons",
            "except_failure_reasons",
            "recipients",
            "topic",
            "message",
        }
        r = self.section(data, path, allowed, {"name", "statuses", "message"})
        name = self.match(r["name"], f"{path}.name", _NOTIFICATION_NAME, "a rule name (a-z, 0-9, -; at most 28)")
        if name in RESERVED_NOTIFICATION_NAMES:
            self.fail(f"{path}.name", f"{name!r} is the name of a rule mlops-infra/ creates itself")
        path = f"notifications.rules[{name}]"
        registry = r.get("registry", False)
        if not isinstance(registry, bool):
            self.fail(f"{path}.registry", f"{_show(registry)} is not true or false")
        if registry == ("pipeline" in r):
            self.fail(
                path,
                "name either a pipeline (train, hpo, inference, quality or any) or registry: true "
                "(the model package group's versions)",
            )
        pipeline, step = None, None
        known_statuses: tuple[str, ...]
        if registry:
            for key in ("step", "failure_reasons", "except_failure_reasons"):
                if key in r:
                    self.fail(f"{path}.{key}", "a registry rule matches a version's approval status: no steps")
            known_statuses = APPROVAL_STATUSES
        else:
            pipeline = r["pipeline"]
            if pipeline != "any" and pipeline not in PIPELINE_STEPS:
                self.fail(f"{path}.pipeline", f"{_show(pipeline)} is not one of {', '.join(PIPELINE_STEPS)} or any")
            step = r.get("step")
            if step is not None and step != "any":
                steps = (
                    PIPELINE_STEPS[pipeline]
                    if pipeline != "any"
                    else tuple(dict.fromkeys(s for names in PIPELINE_STEPS.values() for s in names))
                )
                if step not in steps:
                    where = f"of {pipeline}" if pipeline != "any" else "of any pipeline"
                    self.fail(f"{path}.step", f"{_show(step)} is not a step {where} (steps: {', '.join(steps)})")
            known_statuses = EXECUTION_STATUSES if step is None else STEP_STATUSES
        statuses = r["statuses"]
        if not isinstance(statuses, list) or not statuses:
            self.fail(f"{path}.statuses", f"expected a non-empty list of statuses, got {_show(statuses)}")
        for i, status in enumerate(statuses):
            if status not in known_statuses:
                event = (
                    "a version's approval status"
                    if registry
                    else "a pipeline execution's status"
                    if step is None
                    else "a step's status"
                )
                self.fail(
                    f"{path}.statuses[{i}]", f"{_show(status)} is not {event} (one of: {', '.join(known_statuses)})"
                )
        reasons = {}
        for key in ("failure_reasons", "except_failure_reasons"):
            if key not in r:
                continue
            if step is None:
                self.fail(
                    f"{path}.{key}",
                    "failure reasons are in step events only (the execution's event has none): add step: any",
                )
            value = r[key]
            if not isinstance(value, list) or not value:
                self.fail(f"{path}.{key}", f"expected a non-empty list of failure reasons, got {_show(value)}")
            for i, reason in enumerate(value):
                if reason not in FAILURE_REASONS:
                    self.fail(
                        f"{path}.{key}[{i}]",
                        f"{_show(reason)} is not a failure the pipelines name (one of: {', '.join(FAILURE_REASONS)})",
                    )
            reasons[key] = tuple(value)
        if len(reasons) == 2:
            self.fail(path, "give failure_reasons or except_failure_reasons, not both")
        if "recipients" in r and "topic" in r:
            self.fail(path, "give recipients (the rule's own topic) or topic, not both")
        recipients, topic = (), "default"
        if "recipients" in r:
            recipients = self._recipients(r["recipients"], f"{path}.recipients")
            topic = f"rule-{name}"
        elif "topic" in r:
            topic = r["topic"]
            if topic != "default" and topic not in topics:
                self.fail(
                    f"{path}.topic",
                    f"{_show(topic)} is not default or a topic in notifications.topics "
                    f"({', '.join(sorted(topics)) or 'none declared'})",
                )
        rule = NotificationRule(
            name=name,
            statuses=tuple(statuses),
            message="",
            pipeline=pipeline,
            step=step,
            failure_reasons=reasons.get("failure_reasons", ()),
            except_failure_reasons=reasons.get("except_failure_reasons", ()),
            recipients=recipients,
            topic=topic,
        )
        return replace(rule, message=self._message(r["message"], f"{path}.message", rule.fields))

    def _message(self, value: Any, path: str, fields: tuple) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"{_show(value)} is not a message")
        if len(value) > MAX_MESSAGE:
            self.fail(path, f"{len(value)} characters: a message has at most {MAX_MESSAGE}")
        if "<" in value or ">" in value:
            self.fail(path, "'<' and '>' are EventBridge's placeholder brackets: write fields as {name}")
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            self.fail(path, f"not a message template ({exc}; a literal brace is written {{{{ or }}}})")
        for _, field_name, spec, conversion in parsed:
            if field_name is None:
                continue
            if field_name not in fields:
                self.fail(path, f"unknown field {{{field_name}}} (this rule's fields: {', '.join(fields)})")
            if spec or conversion:
                self.fail(path, f"{{{field_name}}} takes no format: write {{{field_name}}}")
        return value

    def _schedule(self, value: Any) -> str:
        if not isinstance(value, str):
            self.fail("schedule", f"{_show(value)} is not a cron(...) or rate(...) expression")
        rate = _RATE.fullmatch(value)
        if rate:
            count, unit = int(rate.group(1)), rate.group(2)
            if count == 0 or (count == 1) != (not unit.endswith("s")):
                self.fail(
                    "schedule", f"{_show(value)} is not a valid rate: use 'rate(1 hour)' or 'rate(N hours)', N >= 1"
                )
            return value
        cron = _CRON.fullmatch(value)
        if not cron:
            self.fail("schedule", f"{_show(value)} is not a cron(...) or rate(...) expression")
        fields = cron.group(1).split()
        if len(fields) != 6:
            self.fail(
                "schedule",
                f"{_show(value)} has {len(fields)} fields; EventBridge cron needs 6 "
                "(minutes hours day-of-month month day-of-week year)",
            )
        if "?" not in (fields[2], fields[4]):
            self.fail("schedule", f"{_show(value)}: one of day-of-month or day-of-week must be '?'")
        allowed = re.compile(r"^[0-9A-Za-z*?,/#L W-]+$")
        for part in fields:
            if not allowed.fullmatch(part):
                self.fail("schedule", f"{_show(value)}: field '{part}' has characters cron does not accept")
        return value

    def _training(self, data: Any, path: Path) -> Training:
        allowed = {
            "dataset",
            "target",
            "features",
            "categorical",
            "missing_values",
            "instance_type",
            "auc_threshold",
            "champion_tolerance",
            "hyperparameters",
            "hpo",
            "contract",
        }
        t = self.section(data, "training", allowed, set())
        default = Training()
        values: dict[str, Any] = {}
        if "dataset" in t:
            values["dataset"] = self.match(
                t["dataset"],
                "training.dataset",
                _DATASET,
                _DATASET_WHAT,
            )
        if "target" in t:
            values["target"] = self.match(t["target"], "training.target", re.compile(r"^\S.{0,127}$"), "a column name")
        if "features" in t:
            values["features"] = (
                "all"
                if t["features"] == "all"
                else self.string_list(t["features"], "training.features", None, "a column name")
            )
        for key in ("categorical", "missing_values"):
            if key in t:
                values[key] = self.string_list(t[key], f"training.{key}")
        if "instance_type" in t:
            values["instance_type"] = self.match(
                t["instance_type"],
                "training.instance_type",
                _INSTANCE_TYPE,
                "a SageMaker instance type like ml.m5.large",
            )
        for key in ("auc_threshold", "champion_tolerance"):
            if key in t:
                values[key] = float(self.number(t[key], f"training.{key}", 0, 1))
        if "hyperparameters" in t:
            hp = t["hyperparameters"]
            if not isinstance(hp, dict):
                self.fail("training.hyperparameters", f"expected a mapping, got {_show(hp)}")
            for key, value in hp.items():
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    self.fail(f"training.hyperparameters.{key}", f"{_show(value)} is not a number or string")
            values["hyperparameters"] = dict(hp)
        if "hpo" in t:
            values.update(self._hpo(t["hpo"], default))
        if "contract" in t:
            contract = Path(
                self.match(t["contract"], "training.contract", _CONTRACT, "a path to a contract file (.yaml)")
            )
            if not contract.is_absolute():
                # Relative to the environment file, else to the environments directory (a copy of an environment
                # file elsewhere still finds the team's contract); resolved now, so two files naming one
                # contract name the same file.
                candidates = [path.parent / contract, environments_dir() / contract]
                contract = next((c for c in candidates if c.exists()), candidates[0]).resolve()
            values["contract"] = str(contract)
        return Training(**{**default.__dict__, **values})

    def _hpo(self, data: Any, default: Training) -> dict:
        h = self.section(data, "training.hpo", {"max_jobs", "max_parallel_jobs", "ranges"}, set())
        max_jobs = self.number(h.get("max_jobs", default.hpo_max_jobs), "training.hpo.max_jobs", 1, 100, integer=True)
        parallel = self.number(
            h.get("max_parallel_jobs", default.hpo_max_parallel_jobs),
            "training.hpo.max_parallel_jobs",
            1,
            max_jobs,
            integer=True,
        )
        ranges = default.hpo_ranges
        if "ranges" in h:
            if not isinstance(h["ranges"], dict) or not h["ranges"]:
                self.fail("training.hpo.ranges", f"expected a non-empty mapping, got {_show(h['ranges'])}")
            parsed = []
            for name, spec in h["ranges"].items():
                path = f"training.hpo.ranges.{name}"
                s = self.section(spec, path, {"type", "min", "max", "values"}, {"type"})
                if s["type"] in ("integer", "continuous"):
                    integer = s["type"] == "integer"
                    if "min" not in s or "max" not in s:
                        self.fail(path, f"a {s['type']} range needs min and max")
                    low = self.number(s["min"], f"{path}.min", -1e12, 1e12, integer)
                    high = self.number(s["max"], f"{path}.max", -1e12, 1e12, integer)
                    if low >= high:
                        self.fail(path, f"min {low} must be below max {high}")
                    parsed.append(HpoRange(name, s["type"], low, high))
                elif s["type"] == "categorical":
                    parsed.append(
                        HpoRange(name, "categorical", values=self.string_list(s.get("values"), f"{path}.values"))
                    )
                else:
                    self.fail(f"{path}.type", f"{_show(s['type'])} is not one of integer, continuous, categorical")
            ranges = tuple(parsed)
        return {"hpo_max_jobs": max_jobs, "hpo_max_parallel_jobs": parallel, "hpo_ranges": ranges}

    def _inference(self, data: Any) -> Inference:
        if isinstance(data, dict) and "drift_threshold" in data:
            self.fail(
                "inference.drift_threshold",
                "replaced by inference.drift_significance: the false-alarm rate of the whole drift check per "
                "batch (default 0.01), which accounts for the batch size where a fixed distance did not",
            )
        i = self.section(
            data,
            "inference",
            {
                "input",
                "instance_type",
                "instance_count",
                "drift_significance",
                "id_column",
                "quality_tolerance",
                "quality_significance",
            },
            set(),
        )
        counts = self._instance_counts(i.get("instance_count", {}))
        default = Inference()
        tolerance = dict(default.quality_tolerance)
        if "quality_tolerance" in i:
            given = i["quality_tolerance"]
            if isinstance(given, (int, float)) and not isinstance(given, bool):
                given = {m: given for m in tolerance}
            if not isinstance(given, dict):
                self.fail(
                    "inference.quality_tolerance",
                    f"expected a number or a mapping of metric to number, got {_show(given)}",
                )
            for metric, value in given.items():
                if metric not in tolerance:
                    self.fail(
                        f"inference.quality_tolerance.{metric}",
                        f"unknown metric (expected one of: {', '.join(sorted(tolerance))})",
                    )
                tolerance[metric] = float(self.number(value, f"inference.quality_tolerance.{metric}", 0, 1))
        return Inference(
            check_instance_count=counts["checks"],
            transform_instance_count=counts["transform"],
            id_column=(
                self.match(i["id_column"], "inference.id_column", re.compile(r"^\S.{0,127}$"), "a column name")
                if i.get("id_column") is not None
                else None
            ),
            quality_tolerance=tolerance,
            quality_significance=float(
                self.number(
                    i.get("quality_significance", default.quality_significance),
                    "inference.quality_significance",
                    1e-9,
                    0.5,
                )
            ),
            input=self.match(
                i.get("input", default.input),
                "inference.input",
                _DATASET,
                _DATASET_WHAT,
            ),
            instance_type=self.match(
                i.get("instance_type", default.instance_type),
                "inference.instance_type",
                _INSTANCE_TYPE,
                "a SageMaker instance type like ml.m5.large",
            ),
            drift_significance=float(
                self.number(
                    i.get("drift_significance", default.drift_significance),
                    "inference.drift_significance",
                    1e-9,
                    0.5,
                )
            ),
        )

    def _instance_counts(self, data: Any) -> dict:
        """inference.instance_count: {checks: N, transform: N}; SageMaker takes 1 to 100 instances per job
        (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingClusterConfig.html,
        https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformResources.html)."""
        counts = self.section(data, "inference.instance_count", {"checks", "transform"}, set())
        return {
            key: self.number(counts.get(key, 1), f"inference.instance_count.{key}", 1, 100, integer=True)
            for key in ("checks", "transform")
        }


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return repr(value)
