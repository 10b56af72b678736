"""The three SageMaker pipelines (train, train-with-HPO, inference) built from an environment with the
SageMaker Python SDK 2.x, as PipelineSpecs (contract 1): definition JSON plus what must exist first.

Building is pure: no AWS call (the SDK session's clients refuse to send), no account id, bucket or key
in the definition except as parameter defaults taken from the environment. Code is content-addressed:
changed step scripts mean new S3 URIs, hence a changed definition.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_core.config import Environment
from mlops_core.errors import ConfigError
from pipelines import metrics
from pipelines.contracts import contract_upload
from pipelines.datasets import locate
from pipelines.specs import CodeUpload, LambdaFunction, PipelineSpec

PIPELINES = ("train", "hpo", "inference", "quality")
STEPS_DIR = Path(__file__).resolve().parent / "steps"
LAMBDA_SOURCE = Path(__file__).resolve().parent / "inference" / "latest_approved.py"
ARRIVAL_SOURCE = Path(__file__).resolve().parent / "triggers" / "start_on_arrival.py"
ARRIVAL_FUNCTION = "start-on-arrival"
RUN_METRICS_SOURCE = Path(__file__).resolve().parent / "triggers" / "run_metrics.py"
RUN_METRICS_FUNCTION = "run-metrics"
XGBOOST_VERSION = "1.7-1"
LAMBDA_RUNTIME = "python3.12"
OBJECTIVE_METRIC = "validation:auc"
METRIC_DEFINITIONS = [
    {"Name": "validation:auc", "Regex": r"validation-auc:([0-9\.]+)"},
    {"Name": "train:auc", "Regex": r"train-auc:([0-9\.]+)"},
]
# The SDK's Model.create() insists on a literal role ARN (it expands role names with an IAM call), so the
# CreateModel step gets this placeholder, replaced by the ExecutionRoleArn parameter in the JSON.
ROLE_PLACEHOLDER = "arn:aws:iam::000000000000:role/placeholder-for-ExecutionRoleArn-parameter"
CONTRACT_DIR = "/opt/ml/processing/input/contract"
# A sharded check (inference.instance_count.checks > 1): each instance writes <current_host>.json under
# PARTIALS_DIR, read from the file SageMaker Processing writes in every instance
# (https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html#byoc-config);
# the merge step reads all of them from MERGE_DIR.
PARTIALS_DIR = "/opt/ml/processing/partials"
MERGE_DIR = "/opt/ml/processing/input/partials"
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
# Fixed timestamp inside archives so the same code always yields the same bytes (and S3 URI).
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Steps whose container must reach the network: network isolation (no network at all, not even VPC
# endpoints) would break them. Every other job runs isolated when the environment's network says so.
NEEDS_NETWORK = {
    "Preprocess": "it reads the dataset's parts from S3 itself, at the versions listed when the run starts",
    "Evaluate": "its container calls the SageMaker API (the champion lookup in the registry)",
    "Seal": "its container writes the sealed copies to the registry bucket itself, with If-None-Match",
    "CreateModel": "the serving container downloads its inference code from S3 (SAGEMAKER_SUBMIT_DIRECTORY)",
    "LatestApprovedModel": "it is a Lambda function calling the SageMaker API; Lambda has no network isolation",
    "ModelQuality": "its container reads the labels and predictions from S3 and the version's baseline from the "
    "registry (which batch is labelled is known only from the labels' key)",
    "RecordRun": "it is a Lambda function writing to S3; Lambda has no network isolation",
    "PublishDataValidationMetrics": "it publishes the isolated DataValidation step's metrics to CloudWatch",
    "PublishDataDriftCheckMetrics": "it publishes the isolated DataDriftCheck step's metrics to CloudWatch",
}
# A step that publishes run metrics (pipelines/metrics.py) always writes them to metrics.json in its output
# and calls PutMetricData itself when it has the network; a network-isolated one cannot, so the definition
# adds a small Publish<step>Metrics job (with the network, the same role) that publishes its file, and the
# check's condition waits for it (a Fail step ends the execution: a failed check's metrics must be out first).
PUBLISH_STEP = "Publish{}Metrics"


class OfflineBuildError(RuntimeError):
    """Something tried to call AWS while building a definition: a bug, since building must be pure."""


@dataclass(frozen=True)
class CodeBundle:
    """The step scripts as uploaded: one prefix of files for processing, one tarball for training/serving."""

    sha256: str
    steps_prefix: str
    sourcedir: str
    uploads: tuple


def code_bundle(env: Environment) -> CodeBundle:
    files = sorted(p for p in STEPS_DIR.glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    sha = digest.hexdigest()
    base = f"s3://{env.buckets.artifacts}/code/{sha}"
    uploads = [CodeUpload(f"{base}/steps/{p.name}", p.read_bytes()) for p in files]
    uploads.append(CodeUpload(f"{base}/sourcedir.tar.gz", _tarball(files)))
    return CodeBundle(sha, f"{base}/steps/", f"{base}/sourcedir.tar.gz", tuple(uploads))


def _tarball(files) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))

    return gzip.compress(raw.getvalue(), mtime=0)


def latest_approved_function(env: Environment) -> LambdaFunction:
    """The inference pipeline's Lambda: resolves the latest Approved package at run time."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("latest_approved.py", date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        archive.writestr(info, LAMBDA_SOURCE.read_bytes())
    body = raw.getvalue()
    return LambdaFunction(
        name=env.lambda_function_name,
        role_arn=env.role_arn("lambda"),
        handler="latest_approved.handler",
        runtime=LAMBDA_RUNTIME,
        zip_bytes=body,
        sha256=hashlib.sha256(body).hexdigest(),
    )


def _zipped(*paths: Path) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            info = zipfile.ZipInfo(path.name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return raw.getvalue()


def _project_function(env: Environment, name: str, handler: str, *paths: Path) -> LambdaFunction:
    """A project-wide function `<project>-<name>` of the environment's Lambda role, `paths` zipped."""
    body = _zipped(*paths)
    return LambdaFunction(
        name=f"{env.project}-{name}",
        role_arn=env.role_arn("lambda"),
        handler=handler,
        runtime=LAMBDA_RUNTIME,
        zip_bytes=body,
        sha256=hashlib.sha256(body).hexdigest(),
        timeout=30,
    )


def arrival_function(env: Environment) -> LambdaFunction:
    """The function the arrival rules of mlops-infra/ invoke: starts the pipeline with the object's URI."""
    return _project_function(env, ARRIVAL_FUNCTION, "start_on_arrival.handler", ARRIVAL_SOURCE)


def run_metrics_function(env: Environment) -> LambdaFunction:
    """The function the run-metrics rules of mlops-infra/ invoke when an execution ends: PipelineRuns and
    PipelineDuration. It carries the metric contract (metric_data.py) in its zip."""
    return _project_function(
        env, RUN_METRICS_FUNCTION, "run_metrics.handler", RUN_METRICS_SOURCE, STEPS_DIR / "metric_data.py"
    )


def lambda_arn(env: Environment, function: LambdaFunction) -> str:
    return f"arn:{env.partition}:lambda:{env.region}:{env.account_id}:function:{function.name}"


def build_record() -> dict:
    """Git commit and build recorded as parameter defaults (Jenkins sets GIT_COMMIT, BUILD_TAG, BUILD_URL).

    Read from the environment only, never from `git`: the same inputs must give the same definition,
    or every re-run would plan an update.
    """
    return {
        "GitCommit": os.environ.get("GIT_COMMIT") or "unknown",
        "BuildId": os.environ.get("BUILD_TAG") or "local",
        "BuildUrl": os.environ.get("BUILD_URL") or "none",
    }


# ---- the SDK, offline -------------------------------------------------------------------------

_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def _quiet_sdk():
    """Import the SDK without its deprecation banners and INFO lines on stdout (--dry-run prints JSON there)."""

    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    for name in ("sagemaker", "sagemaker.config"):
        logging.getLogger(name).setLevel(logging.ERROR)

    warnings.filterwarnings("ignore", module=r"sagemaker(\..*)?")
    import sagemaker  # noqa: F401

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("sagemaker"):
            logging.getLogger(name).setLevel(logging.ERROR)


def offline_session(env: Environment) -> Any:  # a sagemaker PipelineSession
    """A PipelineSession that can build definitions but whose every AWS request raises OfflineBuildError."""
    _quiet_sdk()
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    boto_session = boto3.Session(aws_access_key_id="offline", aws_secret_access_key="offline", region_name=env.region)

    def refuse(event_name=None, **_):
        raise OfflineBuildError(f"building a pipeline definition tried to call AWS ({event_name})")

    boto_session.events.register("before-send", refuse)
    session = PipelineSession(
        boto_session=boto_session, default_bucket=env.buckets.artifacts, sagemaker_config=_SDK_CONFIG
    )
    # default_bucket() would check the bucket exists (an S3 call); every location here is explicit anyway.
    session._default_bucket = env.buckets.artifacts
    return session


# ---- shared pieces of the definitions ---------------------------------------------------------


class _Builder:
    """Parameters and step factories shared by the three pipelines of one environment."""

    def __init__(self, env, which: str, session, code: CodeBundle):
        from sagemaker import image_uris
        from sagemaker.workflow.parameters import ParameterFloat, ParameterString

        self.env, self.which, self.session, self.code = env, which, session, code
        self.network, self.retries = env.network, env.retries
        self.pipeline_name = env.pipelines[which]
        # Images live in AWS-owned ECR registries (account ids like 683313688378 belong to AWS, not to us).
        self.image = image_uris.retrieve("xgboost", env.region, version=XGBOOST_VERSION)
        # Role, registry group and key carry account ids: parameters, defaulting to this environment's.
        self.role = ParameterString("ExecutionRoleArn", default_value=env.role_arn("execution"))
        self.kms = ParameterString("KmsKeyId", default_value=env.kms_key_alias)
        # Inference reads the main group's approved versions; training registers in env.register_group
        # (on a branch: a group where nothing can be approved, so branch versions never reach prod).
        group = env.model_package_group_arn if which == "inference" else env.register_group_arn
        self.group = ParameterString("ModelPackageGroupArn", default_value=group)
        self.artifacts_bucket = ParameterString("ArtifactsBucket", default_value=env.buckets.artifacts)
        self.registry_bucket = ParameterString("ModelArtifactsBucket", default_value=env.buckets.registry)
        self.processing_instance = ParameterString("ProcessingInstanceType", default_value=env.training.instance_type)
        self.parameters = [
            self.role,
            self.kms,
            self.group,
            self.artifacts_bucket,
            self.registry_bucket,
            self.processing_instance,
        ]
        self.ParameterFloat, self.ParameterString = ParameterFloat, ParameterString

    def add(self, parameter):
        self.parameters.append(parameter)
        return parameter

    def location(self, bucket, *parts):
        """s3://<bucket parameter>/<env>/<pipeline>/<execution id>/<parts>: one place per run and step."""
        from sagemaker.workflow.execution_variables import ExecutionVariables
        from sagemaker.workflow.functions import Join

        return Join(
            on="/",
            values=[
                "s3:/",
                bucket,
                self.env.outputs_prefix if bucket is self.artifacts_bucket else self.env.account,
                self.pipeline_name,
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                *parts,
            ],
        )

    # -- what every job gets: VPC, isolation, inter-container encryption, KMS (one place) --------------
    def isolated(self, step: str) -> bool:
        """Whether `step`'s job runs network-isolated; asking for it on a step that needs the network is
        bad input (one line naming the step and why)."""
        net = self.network
        if net is None or not net.isolates(step):
            return False
        if step in NEEDS_NETWORK:
            if isinstance(net.isolation, tuple):
                raise ConfigError(
                    f"'{step}' cannot run network-isolated: {NEEDS_NETWORK[step]}",
                    source=self.env.source,
                    field=f"network.isolation[{net.isolation.index(step)}]",
                )
            return False
        return True

    def network_config(self, step: str):
        """NetworkConfig of a processing job, or None without a `network:` block (definitions as before)."""
        if self.network is None:
            return None
        from sagemaker.network import NetworkConfig

        return NetworkConfig(
            enable_network_isolation=self.isolated(step),
            security_group_ids=list(self.network.security_groups),
            subnets=list(self.network.subnets),
            encrypt_inter_container_traffic=True,
        )

    def job_network(self, step: str) -> dict:
        """Estimator keyword arguments for the VPC, isolation and inter-container encryption."""
        if self.network is None:
            return {}
        return {
            "subnets": list(self.network.subnets),
            "security_group_ids": list(self.network.security_groups),
            "enable_network_isolation": self.isolated(step),
            "encrypt_inter_container_traffic": True,
        }

    def model_network(self, step: str) -> dict:
        """Model keyword arguments: the VPC its containers (and a transform using it) run in."""
        if self.network is None:
            return {}
        return {
            "vpc_config": {
                "Subnets": list(self.network.subnets),
                "SecurityGroupIds": list(self.network.security_groups),
            },
            "enable_network_isolation": self.isolated(step),
        }

    def processor(self, script: str, step: str, instance_count: int = 1):
        from sagemaker.processing import Processor

        return Processor(
            role=self.role,
            image_uri=self.image,
            instance_count=instance_count,
            instance_type=self.processing_instance,
            entrypoint=["python3", f"/opt/ml/processing/input/code/{script}"],
            volume_kms_key=self.kms,
            output_kms_key=self.kms,
            sagemaker_session=self.session,
            env={"PYTHONUNBUFFERED": "1"},
            network_config=self.network_config(step),
        )

    def metric_arguments(self, step: str) -> list:
        """The arguments of a step that publishes run metrics: namespace, Environment and Pipeline dimensions,
        and --publish-metrics unless the step runs network-isolated (then publishing_step() publishes)."""
        return [
            "--metrics-namespace",
            metrics.namespace(self.env.project),
            "--metrics-environment",
            self.env.name,
            "--metrics-pipeline",
            self.which,
            *([] if self.isolated(step) else ["--publish-metrics"]),
        ]

    def publishing_step(self, check: str, step: Any, output: str) -> list:
        """[] when the check publishes its own metrics; else the job that publishes the metrics.json that
        `step` (the check's deciding step) wrote to its output `output`."""
        from sagemaker.processing import ProcessingInput
        from sagemaker.workflow.steps import ProcessingStep

        if not self.isolated(check):
            return []
        name = PUBLISH_STEP.format(check)
        return [
            ProcessingStep(
                name=name,
                step_args=self.processor("publish_metrics.py", name).run(
                    inputs=[
                        self.code_input(),
                        ProcessingInput(
                            source=step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri,
                            destination="/opt/ml/processing/input/metrics",
                            input_name="metrics",
                        ),
                    ],
                    arguments=[
                        "--input",
                        "/opt/ml/processing/input/metrics",
                        "--failure-file",
                        "/opt/ml/output/message",
                    ],
                ),
            )
        ]

    def code_input(self):
        from sagemaker.processing import ProcessingInput

        return ProcessingInput(
            source=self.code.steps_prefix, destination="/opt/ml/processing/input/code", input_name="code"
        )

    def contract_input(self, contract) -> list:
        """The data contract as a processing input (none when the environment names no contract)."""
        from sagemaker.processing import ProcessingInput

        if contract is None:
            return []
        return [ProcessingInput(source=contract.s3_uri, destination=CONTRACT_DIR, input_name="contract")]

    def check(
        self,
        name: str,
        script: str,
        *,
        inputs: list,
        outputs: list,
        arguments: list,
        summary: Any,
        where: str,
        shard_outputs: Sequence = (),
    ) -> tuple[list, Any]:
        """A check as its steps and the step whose summary the condition reads. One instance: one step, as
        always. N instances (inference.instance_count.checks): the check runs on N instances, each seeing its
        share of the batch (input "batch", ShardedByS3Key) and writing a partial result, then a 1-instance
        `<name>Merge` step merges the partials into the same outputs and summary one instance writes.
        The step that decides (the one, or the merge) publishes the check's metrics, never a shard; when it
        runs network-isolated, a Publish<name>Metrics step after it does (publishing_step)."""
        from sagemaker.processing import ProcessingInput, ProcessingOutput
        from sagemaker.workflow.steps import ProcessingStep

        count = self.env.inference.check_instance_count
        if count == 1:
            step = ProcessingStep(
                name=name,
                step_args=self.processor(script, name).run(
                    inputs=inputs,
                    outputs=[*outputs, *shard_outputs],
                    arguments=[*arguments, *self.metric_arguments(name)],
                ),
                property_files=[summary],
            )
            return [step, *self.publishing_step(name, step, summary.output_name)], step
        sharded = [
            ProcessingInput(
                source=i.source,
                destination=i.destination,
                input_name=i.input_name,
                s3_data_distribution_type="ShardedByS3Key",
            )
            if i.input_name == "batch"
            else i
            for i in inputs
        ]
        partials = ProcessingOutput(
            output_name="partials",
            source=PARTIALS_DIR,
            destination=self.location(self.artifacts_bucket, where, "partials"),
        )
        shards = ProcessingStep(
            name=name,
            step_args=self.processor(script, name, instance_count=count).run(
                inputs=sharded,
                outputs=[partials, *shard_outputs],
                arguments=[*arguments, "--shard-output", PARTIALS_DIR, "--resource-config", RESOURCE_CONFIG],
            ),
        )
        merge_arguments = list(arguments)
        if "--input" in merge_arguments:  # the partials replace the batch
            at = merge_arguments.index("--input")
            merge_arguments[at : at + 2] = ["--merge-partials", MERGE_DIR]
        else:
            merge_arguments += ["--merge-partials", MERGE_DIR]
        merge_arguments += self.metric_arguments(name)
        merge = ProcessingStep(
            name=f"{name}Merge",
            step_args=self.processor(script, name).run(
                inputs=[
                    *(i for i in inputs if i.input_name != "batch"),
                    ProcessingInput(
                        source=shards.properties.ProcessingOutputConfig.Outputs["partials"].S3Output.S3Uri,
                        destination=MERGE_DIR,
                        input_name="partials",
                    ),
                ],
                outputs=outputs,
                arguments=merge_arguments,
            ),
            property_files=[summary],
        )
        return [shards, merge, *self.publishing_step(name, merge, summary.output_name)], merge

    def estimator(self, hyperparameters: dict, instance_type, step: str):
        from sagemaker.workflow.functions import Join
        from sagemaker.xgboost import XGBoost

        output = Join(on="/", values=["s3:/", self.registry_bucket, self.env.account, self.pipeline_name, "models"])
        return XGBoost(
            entry_point="train.py",
            source_dir=self.code.sourcedir,
            framework_version=XGBOOST_VERSION,
            role=self.role,
            instance_count=1,
            instance_type=instance_type,
            output_path=output,
            code_location=self.code.sourcedir.rsplit("/", 1)[0],
            output_kms_key=self.kms,
            volume_kms_key=self.kms,
            hyperparameters=dict(hyperparameters),
            metric_definitions=METRIC_DEFINITIONS,
            disable_profiler=True,
            debugger_hook_config=False,
            sagemaker_session=self.session,
            **self.job_network(step),
        )

    def model(self, step: str, **kwargs):
        from sagemaker.model import Model

        return Model(sagemaker_session=self.session, **kwargs, **self.model_network(step))

    # -- what every step gets: retry policies ---------------------------------------------------------
    def retry_policies(self, step) -> list:
        """Service faults and throttling on every step that takes a retry policy; job failures (internal
        error, capacity, resource limit) on the steps that run a job."""
        from sagemaker.workflow.retry import (
            SageMakerJobExceptionTypeEnum,
            SageMakerJobStepRetryPolicy,
            StepExceptionTypeEnum,
            StepRetryPolicy,
        )
        from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TransformStep, TuningStep

        service, jobs = self.retries.service, self.retries.jobs
        policies = [
            StepRetryPolicy(
                exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                max_attempts=service.max_attempts,
                interval_seconds=service.interval_seconds,
                backoff_rate=service.backoff_rate,
            )
        ]
        if isinstance(step, (ProcessingStep, TrainingStep, TuningStep, TransformStep)):
            policies.append(
                SageMakerJobStepRetryPolicy(
                    exception_types=[SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT],
                    failure_reason_types=[
                        SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                        SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                    ],
                    max_attempts=jobs.max_attempts,
                    interval_seconds=jobs.interval_seconds,
                    backoff_rate=jobs.backoff_rate,
                )
            )
        return policies

    def _with_retries(self, steps) -> None:
        from sagemaker.workflow.condition_step import ConditionStep
        from sagemaker.workflow.step_collections import StepCollection
        from sagemaker.workflow.steps import ConfigurableRetryStep

        for step in steps:
            if isinstance(step, ConditionStep):
                self._with_retries([*step.if_steps, *step.else_steps])
            elif isinstance(step, StepCollection):
                self._with_retries(step.steps)
            elif isinstance(step, ConfigurableRetryStep) and not step.retry_policies:
                step.retry_policies = self.retry_policies(step)

    def pipeline(self, steps, description: str) -> PipelineSpec:
        from sagemaker.workflow.pipeline import Pipeline

        self._with_retries(steps)
        pipeline = Pipeline(
            name=self.pipeline_name,
            parameters=self.parameters,
            steps=steps,
            sagemaker_session=self.session,
            pipeline_experiment_config=None,
        )
        document = _substitute(
            json.loads(pipeline.definition()), ROLE_PLACEHOLDER, {"Get": f"Parameters.{self.role.name}"}
        )
        _drop_build_time_job_names(document, self.pipeline_name)
        definition = json.dumps(document, sort_keys=True, separators=(",", ":"))
        defaults = {p.name: p.default_value for p in self.parameters}
        return PipelineSpec(
            name=self.pipeline_name,
            definition=definition,
            parameters=defaults,
            role_arn=self.env.role_arn("execution"),
            uploads=list(self.code.uploads),
            lambda_functions=[],
            description=description,
            parallelism={"MaxParallelExecutionSteps": self.retries.max_parallel_steps},
        )


def _drop_build_time_job_names(node, pipeline_name: str) -> None:
    """The SDK stamps the build's clock into a tuning job's `sagemaker_job_name` hyperparameter; the same
    code must give the same definition, so it becomes the pipeline's name (SageMaker names the jobs)."""
    if isinstance(node, dict):
        if "sagemaker_job_name" in node:
            node["sagemaker_job_name"] = json.dumps(pipeline_name)
        for value in node.values():
            _drop_build_time_job_names(value, pipeline_name)
    elif isinstance(node, list):
        for value in node:
            _drop_build_time_job_names(value, pipeline_name)


def _substitute(node, literal: str, replacement):
    if node == literal:
        return replacement
    if isinstance(node, dict):
        return {k: _substitute(v, literal, replacement) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, literal, replacement) for v in node]
    return node


# ---- train and train-with-HPO -----------------------------------------------------------------


def _training_pipeline(env, session, code: CodeBundle, tuned: bool) -> PipelineSpec:
    from sagemaker.drift_check_baselines import DriftCheckBaselines
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TuningStep

    which = "hpo" if tuned else "train"
    b = _Builder(env, which, session, code)
    t = env.training
    dataset = locate(env, t.dataset, "training.dataset")
    input_data = b.add(b.ParameterString("InputDataUri", default_value=dataset.s3_uri))
    training_instance = b.add(b.ParameterString("TrainingInstanceType", default_value=t.instance_type))
    auc_threshold = b.add(b.ParameterFloat("AucThreshold", default_value=t.auc_threshold))
    tolerance = b.add(b.ParameterFloat("ChampionTolerance", default_value=t.champion_tolerance))
    # What started the run when it was not a person: the delivery marker's S3 URI (arrival trigger).
    trigger = b.add(b.ParameterString("DeliveryUri", default_value="none"))
    record = build_record()
    commit, build_id, build_url = (b.add(b.ParameterString(k, default_value=v)) for k, v in record.items())

    features = "all" if t.features == "all" else ",".join(t.features)
    splits = ("train", "validation", "test")
    contract = contract_upload(env)
    preprocess_report = PropertyFile(name="PreprocessReport", output_name="report", path="preprocess.json")
    preprocess = ProcessingStep(
        name="Preprocess",
        step_args=b.processor("preprocess.py", "Preprocess").run(
            # The dataset is read by the step itself (not a ProcessingInput): it lists the parts when the run
            # starts and reads each at the version it listed, so the snapshot it records is exactly what it read.
            inputs=[b.code_input(), *b.contract_input(contract)],
            outputs=[
                *(
                    ProcessingOutput(
                        output_name=s,
                        source=f"/opt/ml/processing/{s}",
                        destination=b.location(b.artifacts_bucket, "preprocess", s),
                    )
                    for s in splits
                ),
                # The baseline goes with the model to the registry bucket: prod's drift check reads it.
                ProcessingOutput(
                    output_name="baseline",
                    source="/opt/ml/processing/baseline",
                    destination=b.location(b.registry_bucket, "baseline"),
                ),
                ProcessingOutput(
                    output_name="report",
                    source="/opt/ml/processing/report",
                    destination=b.location(b.artifacts_bucket, "preprocess", "report"),
                ),
                # The data snapshot (every part's key, version, ETag, sha256, rows) goes with the model.
                ProcessingOutput(
                    output_name="snapshot",
                    source="/opt/ml/processing/snapshot",
                    destination=b.location(b.registry_bucket, "snapshot"),
                ),
            ],
            arguments=[
                "--input",
                input_data,
                "--dataset-uri",
                input_data,
                "--snapshot-dir",
                "/opt/ml/processing/snapshot",
                "--target",
                t.target,
                "--features",
                features,
                "--categorical",
                ",".join(t.categorical),
                "--missing-values",
                ",".join(t.missing_values),
                *(a for s in splits for a in (f"--{s}-dir", f"/opt/ml/processing/{s}")),
                "--baseline-dir",
                "/opt/ml/processing/baseline",
                "--report-dir",
                "/opt/ml/processing/report",
                *(["--contract", CONTRACT_DIR] if contract else []),
                "--failure-file",
                "/opt/ml/output/message",
            ],
        ),
        property_files=[preprocess_report],
    )

    def channel(split):
        return TrainingInput(
            preprocess.properties.ProcessingOutputConfig.Outputs[split].S3Output.S3Uri, content_type="text/csv"
        )

    channels = {"train": channel("train"), "validation": channel("validation")}
    if tuned:
        from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner, IntegerParameter

        tuned_names = {r.name for r in t.hpo_ranges}
        static = {k: v for k, v in t.hyperparameters.items() if k not in tuned_names}
        ranges = {}
        for r in t.hpo_ranges:
            if r.type == "integer":
                ranges[r.name] = IntegerParameter(int(r.min), int(r.max))
            elif r.type == "continuous":
                ranges[r.name] = ContinuousParameter(r.min, r.max)
            else:
                ranges[r.name] = CategoricalParameter(list(r.values))
        tuner = HyperparameterTuner(
            b.estimator(static, training_instance, "Tune"),
            objective_metric_name=OBJECTIVE_METRIC,
            hyperparameter_ranges=ranges,
            metric_definitions=METRIC_DEFINITIONS,
            objective_type="Maximize",
            max_jobs=t.hpo_max_jobs,
            max_parallel_jobs=t.hpo_max_parallel_jobs,
            strategy="Random",
            random_seed=42,
        )
        fit = TuningStep(name="Tune", step_args=tuner.fit(inputs=channels))
        model_data = fit.get_top_model_s3_uri(
            top_k=0, s3_bucket=b.registry_bucket, prefix=f"{env.account}/{b.pipeline_name}/models"
        )
        hyperparameter_record = {
            "hyperparameters": Join(
                on="",
                values=[
                    "tuned by ",
                    fit.properties.HyperParameterTuningJobName,
                    "; best job ",
                    fit.properties.BestTrainingJob.TrainingJobName,
                ],
            ),
            "hyperparameter_ranges": json.dumps(
                {r.name: ([r.min, r.max] if r.type != "categorical" else list(r.values)) for r in t.hpo_ranges},
                sort_keys=True,
            ),
            # Tuned hyperparameters differ from the reviewed ones: the review board must look first.
            "review_board_approval_required": "true",
            "review_reason": "hyperparameters chosen by tuning",
        }
    else:
        fit = TrainingStep(
            name="Train", step_args=b.estimator(t.hyperparameters, training_instance, "Train").fit(channels)
        )
        model_data = fit.properties.ModelArtifacts.S3ModelArtifacts
        hyperparameter_record = {
            "hyperparameters": json.dumps(t.hyperparameters, sort_keys=True),
            "review_board_approval_required": "false",
        }

    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        step_args=b.processor("evaluate.py", "Evaluate").run(
            inputs=[
                b.code_input(),
                ProcessingInput(source=model_data, destination="/opt/ml/processing/model", input_name="model"),
                ProcessingInput(
                    source=preprocess.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                    destination="/opt/ml/processing/test",
                    input_name="test",
                ),
            ],
            outputs=[
                ProcessingOutput(
                    output_name="evaluation",
                    source="/opt/ml/processing/evaluation",
                    destination=b.location(b.registry_bucket, "evaluation"),
                )
            ],
            arguments=[
                "--model",
                "/opt/ml/processing/model",
                "--test",
                "/opt/ml/processing/test",
                "--output",
                "/opt/ml/processing/evaluation",
                "--auc-threshold",
                auc_threshold,
                "--champion-tolerance",
                tolerance,
                # The environment's floors, literal in the definition: a run's parameters may raise the
                # quality bar but not lower it, however the run was started.
                "--auc-floor",
                str(t.auc_threshold),
                "--max-champion-tolerance",
                str(t.champion_tolerance),
                "--model-package-group-arn",
                b.group,
                "--failure-file",
                "/opt/ml/output/message",
                *b.metric_arguments("Evaluate"),
            ],
        ),
        property_files=[evaluation_report],
    )

    def output_uri(step, name, filename):
        return Join(on="/", values=[step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri, filename])

    # What the version will point at is first copied write-once under sealed/ with its sha256 recorded:
    # the workload roles may not overwrite or delete anything there (registry bucket policy), and
    # inference and the reports verify each hash before use.
    sealed_report = PropertyFile(name="SealedArtefacts", output_name="sealed", path="sealed.json")
    seal = ProcessingStep(
        name="Seal",
        step_args=b.processor("seal.py", "Seal").run(
            inputs=[
                b.code_input(),
                ProcessingInput(source=model_data, destination="/opt/ml/processing/model", input_name="model"),
                ProcessingInput(
                    source=evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
                    destination="/opt/ml/processing/evaluation",
                    input_name="evaluation",
                ),
                ProcessingInput(
                    source=preprocess.properties.ProcessingOutputConfig.Outputs["baseline"].S3Output.S3Uri,
                    destination="/opt/ml/processing/baseline",
                    input_name="baseline",
                ),
            ],
            outputs=[
                ProcessingOutput(
                    output_name="sealed",
                    source="/opt/ml/processing/sealed",
                    destination=b.location(b.artifacts_bucket, "sealed"),
                )
            ],
            arguments=[
                "--model",
                "/opt/ml/processing/model",
                "--evaluation",
                "/opt/ml/processing/evaluation",
                "--baseline",
                "/opt/ml/processing/baseline",
                "--destination",
                Join(
                    on="/",
                    values=[
                        "s3:/",
                        b.registry_bucket,
                        "sealed",
                        env.account,
                        b.pipeline_name,
                        ExecutionVariables.PIPELINE_EXECUTION_ID,
                    ],
                ),
                "--kms-key-id",
                b.kms,
                "--output",
                "/opt/ml/processing/sealed",
                "--failure-file",
                "/opt/ml/output/message",
            ],
        ),
        property_files=[sealed_report],
    )

    def sealed(name, field):
        return JsonGet(step_name=seal.name, property_file=sealed_report, json_path=f"{name}.{field}")

    statistics = MetricsSource(s3_uri=sealed("statistics", "s3_uri"), content_type="application/json")
    constraints = MetricsSource(s3_uri=sealed("constraints", "s3_uri"), content_type="application/json")
    auc = JsonGet(
        step_name=evaluate.name, property_file=evaluation_report, json_path="binary_classification_metrics.auc.value"
    )
    # A model package carries no network settings: whoever deploys a version gives its model a VPC.
    model = Model(
        image_uri=b.image,
        model_data=sealed("model", "s3_uri"),
        role=b.role,
        sagemaker_session=session,
        env={"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": code.sourcedir},
    )
    register = ModelStep(
        name="Register",
        step_args=model.register(
            content_types=["text/csv"],
            response_types=["text/csv"],
            inference_instances=[env.inference.instance_type],
            transform_instances=[env.inference.instance_type],
            model_package_group_name=b.group,
            # never a parameter: a version is registered pending and only the approver role approves
            # (the registry's policies refuse anything else from a workload role)
            approval_status="PendingManualApproval",
            description=f"{env.project}: trained by {b.pipeline_name} in {env.name}",
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=sealed("evaluation", "s3_uri"), content_type="application/json"),
                model_data_statistics=statistics,
                model_data_constraints=constraints,
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=statistics, model_data_constraints=constraints
            ),
            customer_metadata_properties={
                "git_commit": commit,
                "build_id": build_id,
                "build_url": build_url,
                "dataset_uri": input_data,
                "dataset_sha256": JsonGet(
                    step_name=preprocess.name, property_file=preprocess_report, json_path="dataset.sha256"
                ),
                "dataset_rows": Join(
                    on="",
                    values=[
                        JsonGet(step_name=preprocess.name, property_file=preprocess_report, json_path="dataset.rows")
                    ],
                ),
                "dataset_parts": Join(
                    on="",
                    values=[
                        JsonGet(
                            step_name=preprocess.name, property_file=preprocess_report, json_path="dataset.part_count"
                        )
                    ],
                ),
                "dataset_snapshot": output_uri(preprocess, "snapshot", "snapshot.json"),
                "trigger": trigger,
                "pipeline_execution_arn": ExecutionVariables.PIPELINE_EXECUTION_ARN,
                "pipeline": b.pipeline_name,
                "environment": env.name,
                "code_sha256": code.sha256,
                # what inference and the reports check the sealed bytes against
                "model_sha256": sealed("model", "sha256"),
                "evaluation_sha256": sealed("evaluation", "sha256"),
                "statistics_sha256": sealed("statistics", "sha256"),
                "constraints_sha256": sealed("constraints", "sha256"),
                "auc": Join(on="", values=[auc]),
                **hyperparameter_record,
            },
        ),
    )

    rejected = FailStep(
        name="ModelQualityBelowThreshold",
        error_message=Join(
            on="",
            values=[
                "ModelQualityBelowThreshold: ",
                JsonGet(step_name=evaluate.name, property_file=evaluation_report, json_path="decision.message"),
                "; nothing was registered",
            ],
        ),
    )
    check = ConditionStep(
        name="CheckModelQuality",
        conditions=[
            ConditionGreaterThanOrEqualTo(left=auc, right=auc_threshold),
            # The environment's floor as a literal: holds even for a run started with AucThreshold=0.0.
            ConditionGreaterThanOrEqualTo(left=auc, right=float(t.auc_threshold)),
            # 0 when no approved champion exists, else champion AUC minus ChampionTolerance.
            ConditionGreaterThanOrEqualTo(
                left=auc,
                right=JsonGet(
                    step_name=evaluate.name, property_file=evaluation_report, json_path="decision.champion_minimum_auc"
                ),
            ),
        ],
        if_steps=[seal, register],
        else_steps=[rejected],
    )
    spec = b.pipeline(
        [preprocess, fit, evaluate, check],
        "preprocess -> " + ("tune" if tuned else "train") + " -> evaluate -> seal and register if good enough",
    )
    spec.uploads.extend(dataset.uploads)
    if contract:
        spec.uploads.append(contract)
    return spec


# ---- inference with the drift check ------------------------------------------------------------


def _inference_pipeline(env, session, code: CodeBundle) -> PipelineSpec:
    from sagemaker.lambda_helper import Lambda
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.transformer import Transformer
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import TransformStep

    b = _Builder(env, "inference", session, code)
    i = env.inference
    dataset = locate(env, i.input, "inference.input")
    function = latest_approved_function(env)
    input_data = b.add(b.ParameterString("InputDataUri", default_value=dataset.s3_uri))
    output_bucket = b.add(b.ParameterString("PredictionsBucket", default_value=env.buckets.artifacts))
    drift_significance = b.add(b.ParameterFloat("DriftSignificance", default_value=i.drift_significance))
    transform_instance = b.add(b.ParameterString("TransformInstanceType", default_value=i.instance_type))
    function_arn = b.add(b.ParameterString("LatestApprovedFunctionArn", default_value=lambda_arn(env, function)))

    outputs = [
        "model_package_arn",
        "model_version",
        "model_data_url",
        "image_uri",
        "baseline_statistics_uri",
        "baseline_constraints_uri",
    ]
    resolve = LambdaStep(
        name="LatestApprovedModel",
        lambda_func=Lambda(function_arn=function_arn, session=session),
        # the environment whose pin (`promote pin`) decides the version; a branch follows its dev environment
        inputs={"model_package_group_arn": b.group, "environment": env.base_name or env.name},
        outputs=[LambdaOutput(output_name=o, output_type=LambdaOutputTypeEnum.String) for o in outputs],
    )
    approved = {o: resolve.properties.Outputs[o] for o in outputs}

    # The data contract first: a batch that breaks it is DataValidationFailed (notify), never drift (retrain).
    contract = contract_upload(env)
    validation_summary = PropertyFile(name="DataValidationResult", output_name="validation", path="validation.json")
    validation_steps, validation_result = b.check(
        "DataValidation",
        "validate.py",
        inputs=[
            b.code_input(),
            ProcessingInput(source=input_data, destination="/opt/ml/processing/input/data", input_name="batch"),
            ProcessingInput(
                source=approved["baseline_statistics_uri"],
                destination="/opt/ml/processing/baseline/statistics",
                input_name="statistics",
            ),
            *b.contract_input(contract),
        ],
        outputs=[
            ProcessingOutput(
                output_name="validation",
                source="/opt/ml/processing/output",
                destination=b.location(b.artifacts_bucket, "data-validation"),
            ),
        ],
        # The checked rows with their record ids: what the batch transform scores (sharded: each
        # instance writes those of its objects).
        shard_outputs=[
            ProcessingOutput(
                output_name="records",
                source="/opt/ml/processing/records",
                destination=b.location(b.artifacts_bucket, "data-validation", "records"),
            ),
        ],
        arguments=[
            "--input",
            "/opt/ml/processing/input/data",
            "--baseline-statistics",
            "/opt/ml/processing/baseline/statistics",
            *(["--contract", CONTRACT_DIR] if contract else []),
            "--records-dir",
            "/opt/ml/processing/records",
            *(["--id-column", i.id_column] if i.id_column else []),
            "--output",
            "/opt/ml/processing/output",
            "--missing-values",
            ",".join(env.training.missing_values),
            "--failure-file",
            "/opt/ml/output/message",
        ],
        summary=validation_summary,
        where="data-validation",
    )
    validation = validation_steps[0]

    drift_summary = PropertyFile(name="DriftCheckResult", output_name="drift", path="drift_check.json")
    drift_steps, drift = b.check(
        "DataDriftCheck",
        "drift_check.py",
        inputs=[
            b.code_input(),
            ProcessingInput(source=input_data, destination="/opt/ml/processing/input/data", input_name="batch"),
            ProcessingInput(
                source=approved["baseline_statistics_uri"],
                destination="/opt/ml/processing/baseline/statistics",
                input_name="statistics",
            ),
            ProcessingInput(
                source=approved["baseline_constraints_uri"],
                destination="/opt/ml/processing/baseline/constraints",
                input_name="constraints",
            ),
        ],
        outputs=[
            ProcessingOutput(
                output_name="drift",
                source="/opt/ml/processing/output",
                destination=b.location(b.artifacts_bucket, "drift-check"),
            )
        ],
        arguments=[
            "--input",
            "/opt/ml/processing/input/data",
            "--baseline-statistics",
            "/opt/ml/processing/baseline/statistics",
            "--baseline-constraints",
            "/opt/ml/processing/baseline/constraints",
            "--output",
            "/opt/ml/processing/output",
            "--significance",
            drift_significance,
            "--missing-values",
            ",".join(env.training.missing_values),
            "--model-version",
            approved["model_version"],
            "--failure-file",
            "/opt/ml/output/message",
        ],
        summary=drift_summary,
        where="drift-check",
    )

    model = b.model(
        "CreateModel",
        image_uri=approved["image_uri"],
        model_data=approved["model_data_url"],
        role=ROLE_PLACEHOLDER,
        env={
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": code.sourcedir,
            "MODEL_VERSION": approved["model_version"],
            "MODEL_PACKAGE_ARN": approved["model_package_arn"],
            # Each input line starts with its record id (the validation step writes them so): pass it through.
            "RECORD_IDS": "first-column",
        },
    )
    create_model = ModelStep(name="CreateModel", step_args=model.create(instance_type=transform_instance))

    # Predictions land under the version that made them: s3://<bucket>/<env>/predictions/model-version=N/<run>/
    predictions = Join(
        on="/",
        values=[
            "s3:/",
            output_bucket,
            env.predictions_prefix,
            "predictions",
            Join(on="=", values=["model-version", approved["model_version"]]),
            ExecutionVariables.PIPELINE_EXECUTION_ID,
        ],
    )
    transformer = Transformer(
        model_name=create_model.properties.ModelName,
        # Each object of the records goes to one instance (sharded validation writes one per batch object);
        # each object is sent in mini-batches of whole lines within MaxPayloadInMB.
        instance_count=i.transform_instance_count,
        instance_type=transform_instance,
        output_path=predictions,
        accept="text/csv",
        assemble_with="Line",
        strategy="MultiRecord",
        max_payload=6,
        output_kms_key=b.kms,
        volume_kms_key=b.kms,
        sagemaker_session=session,
    )
    transform = TransformStep(
        name="BatchTransform",
        step_args=transformer.transform(
            data=validation.properties.ProcessingOutputConfig.Outputs["records"].S3Output.S3Uri,
            content_type="text/csv",
            split_type="Line",
        ),
    )

    # After a successful transform: where this version ran, appended to the registry bucket under this
    # account's prefix (what `promote status` shows as RUNS IN and `promote lineage` as history).
    record = LambdaStep(
        name="RecordRun",
        lambda_func=Lambda(function_arn=function_arn, session=session),
        inputs={
            "action": "record",
            "environment": env.name,
            "model_version": approved["model_version"],
            "model_package_arn": approved["model_package_arn"],
            "execution_arn": ExecutionVariables.PIPELINE_EXECUTION_ARN,
            "runs_bucket": b.registry_bucket,
            "runs_prefix": f"{env.account}/runs/{env.name}/",
            "kms_key_id": b.kms,
        },
        outputs=[LambdaOutput(output_name="record_uri", output_type=LambdaOutputTypeEnum.String)],
        depends_on=[transform],
    )

    check = _fail_on_violations(
        "CheckDataDrift",
        "DataDriftDetected",
        drift,
        drift_summary,
        "drift",
        "constraint_violations.json",
        if_steps=[create_model, transform, record],
        after=_publishing(drift_steps),
    )
    valid = _fail_on_violations(
        "CheckDataValidation",
        "DataValidationFailed",
        validation_result,
        validation_summary,
        "validation",
        "contract_violations.json",
        if_steps=[*drift_steps, check],
        after=_publishing(validation_steps),
    )
    spec = b.pipeline(
        [resolve, *validation_steps, valid],
        "latest approved model -> data contract -> drift check -> batch transform, or fail with "
        "DataValidationFailed / DataDriftDetected",
    )
    spec.lambda_functions.append(function)
    spec.uploads.extend(dataset.uploads)
    if contract:
        spec.uploads.append(contract)
    return spec


# ---- model quality against ground truth ----------------------------------------------------------


def ground_truth_prefix(env: Environment) -> str:
    """Where labels for a scored batch land: <env>/ground-truth/<inference execution id>/<file>.csv."""
    return f"{env.name}/ground-truth/"


def _quality_pipeline(env: Environment, session: Any, code: CodeBundle) -> PipelineSpec:
    from sagemaker.processing import ProcessingOutput
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.properties import PropertyFile

    b = _Builder(env, "quality", session, code)
    i = env.inference
    # The labels' S3 URI: what their arrival trigger (or `run-pipeline --param LabelsUri=...`) passes.
    labels = b.add(b.ParameterString("LabelsUri", default_value="none"))
    predictions_bucket = b.add(b.ParameterString("PredictionsBucket", default_value=env.buckets.artifacts))
    significance = b.add(b.ParameterFloat("QualitySignificance", default_value=i.quality_significance))
    summary = PropertyFile(name="ModelQualityResult", output_name="quality", path="quality.json")
    measure_steps, measure = b.check(
        "ModelQuality",
        "quality.py",
        inputs=[b.code_input()],
        outputs=[
            ProcessingOutput(
                output_name="quality",
                source="/opt/ml/processing/output",
                destination=b.location(b.artifacts_bucket, "model-quality"),
            )
        ],
        arguments=[
            "--labels-uri",
            labels,
            "--ground-truth-prefix",
            ground_truth_prefix(env),
            "--predictions-prefix",
            Join(on="/", values=["s3:/", predictions_bucket, env.name, "predictions/"]),
            "--model-package-group-arn",
            b.group,
            "--tolerances",
            ",".join(f"{m}={v}" for m, v in sorted(i.quality_tolerance.items())),
            "--significance",
            significance,
            "--output",
            "/opt/ml/processing/output",
            "--failure-file",
            "/opt/ml/output/message",
        ],
        summary=summary,
        where="model-quality",
    )
    check = _fail_on_violations(
        "CheckModelQuality",
        "ModelQualityBelowThreshold",
        measure,
        summary,
        "quality",
        "constraint_violations.json",
        if_steps=[],
        after=_publishing(measure_steps),
    )
    return b.pipeline(
        [*measure_steps, check],
        "labels joined with the batch's predictions -> AUC/F1/precision/recall/accuracy against the version's "
        "baseline, or fail with ModelQualityBelowThreshold",
    )


@contextlib.contextmanager
def _sdk_config_checked_once():
    """The SDK re-validates its config against the full JSON schema on every one of ~150 lookups per build
    (seconds each on a busy 2-core machine). The Session constructor already validated ours: skip repeats."""
    import sagemaker.utils as sdk_utils

    original = sdk_utils.validate_sagemaker_config
    sdk_utils.validate_sagemaker_config = lambda *_, **__: None
    try:
        yield
    finally:
        sdk_utils.validate_sagemaker_config = original


def build_pipelines(env: Environment, which: str | Sequence[str] = PIPELINES) -> dict:
    """PipelineSpecs keyed by "train" / "hpo" / "inference" / "quality" (which: a name, "all", or a sequence)."""
    if isinstance(which, str):
        which = PIPELINES if which == "all" else (which,)
    unknown = [w for w in which if w not in PIPELINES]
    if unknown:
        raise ConfigError(f"'{unknown[0]}' is not one of {', '.join(PIPELINES)}", field="--pipeline")
    session = offline_session(env)
    code = code_bundle(env)
    specs = {}
    with _sdk_config_checked_once():
        for name in which:
            if name == "inference":
                specs[name] = _inference_pipeline(env, session, code)
            elif name == "quality":
                specs[name] = _quality_pipeline(env, session, code)
            else:
                specs[name] = _training_pipeline(env, session, code, tuned=(name == "hpo"))
    # The pipelines an arrival trigger starts carry the arrival function, deployed with them.
    for name in sorted({a.pipeline for a in getattr(env, "arrivals", ())} & set(specs)):
        specs[name].lambda_functions.append(arrival_function(env))
    # Every pipeline carries the run-metrics function: whichever is deployed, its runs are counted.
    for spec in specs.values():
        spec.lambda_functions.append(run_metrics_function(env))
    return specs


def definition_text(spec: PipelineSpec) -> str:
    """The definition as a person reads it (indented); the upserted JSON is the same document."""
    return json.dumps(json.loads(spec.definition), indent=2, sort_keys=True)


def dry_run_document(specs: dict) -> dict:
    """What --dry-run prints: per pipeline its name, parameter defaults, definition and prerequisites."""
    return {
        which: {
            "name": spec.name,
            "role_arn": spec.role_arn,
            "parameters": spec.parameters,
            "definition": json.loads(spec.definition),
            "uploads": [{"s3_uri": u.s3_uri, "bytes": len(u.body)} for u in spec.uploads],
            "lambda_functions": [
                {"name": f.name, "handler": f.handler, "runtime": f.runtime, "role_arn": f.role_arn, "sha256": f.sha256}
                for f in spec.lambda_functions
            ],
        }
        for which, spec in specs.items()
    }


def _publishing(steps: list) -> list:
    """The Publish<check>Metrics job among a check's steps (there when the check runs network-isolated)."""
    return [s for s in steps if s.name.startswith("Publish") and s.name.endswith("Metrics")]


def _fail_on_violations(
    check_name: str,
    failure: str,
    step: Any,
    summary: Any,
    output: str,
    violations_file: str,
    *,
    if_steps: list,
    after: Sequence = (),
) -> Any:
    """Go on with `if_steps` when the check step's summary counts no violation; otherwise fail as `failure`
    (the reason the notification and retrain rules match), with the check's message and its violations file.
    `after`: steps that must end first (an isolated check's publishing job: a Fail step ends the execution,
    and the metrics of a failed check are the ones the alarms need)."""
    # the SDK is imported where definitions are built, never on a command's --help path
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionEquals
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet

    failed = FailStep(
        name=failure,
        error_message=Join(
            on="",
            values=[
                f"{failure}: ",
                JsonGet(step_name=step.name, property_file=summary, json_path="message"),
                "; violations: ",
                step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri,
                f"/{violations_file}",
            ],
        ),
    )
    return ConditionStep(
        name=check_name,
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=step.name, property_file=summary, json_path="violation_count"), right=0
            )
        ],
        if_steps=if_steps,
        else_steps=[failed],
        depends_on=list(after) or None,
    )
