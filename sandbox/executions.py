"""SageMaker pipeline executions that really run: status lifecycle (Executing -> Succeeded / Failed /
Stopped), ListPipelineExecutionSteps, StopPipelineExecution, RetryPipelineExecution, pipelines
addressed by ARN, and StartPipelineExecution handing the stored definition to the step engine."""

from __future__ import annotations

import json
import re
import shutil
import threading
from typing import Any

from sandbox import clock, journal
from sandbox.engine import executor, expressions, preload, retries, runtime
from sandbox.journal import durable
from sandbox.patching import Patch, Route
from sandbox.protocol import InvalidInput, NotFound

TERMINAL = ("Succeeded", "Failed", "Stopped")
_started_here: set[str] = set()  # executions this server process runs; others were cut by a restart


def _pipeline_name(name_or_arn: str) -> str:
    if isinstance(name_or_arn, str) and name_or_arn.startswith("arn:") and ":pipeline/" in name_or_arn:
        return name_or_arn.split(":pipeline/", 1)[1].split("/")[0]
    return name_or_arn


def _validation(message: str):
    from moto.sagemaker.exceptions import ValidationError

    return ValidationError(message=message)


def _interrupted(record) -> None:
    # replay rebuilds the state as it was; what the restart cut short is marked after it (mark_interrupted)
    if not journal.replaying():
        _mark_interrupted(record)


def _mark_interrupted(record) -> None:
    # a snapshot restores executions whose worker threads died with the previous server process
    if record.pipeline_execution_status in ("Executing", "Stopping") and record.arn not in _started_here:
        record.pipeline_execution_status = "Failed"
        record.pipeline_execution_failure_reason = "the sandbox server stopped while this execution ran"
        for step in getattr(record, "sandbox_steps", []):
            if step.get("StepStatus") in ("Starting", "Executing", "Stopping"):
                step["StepStatus"] = "Failed"
                step["FailureReason"] = "the sandbox server stopped while this step ran"


@durable("engine.interrupted")
def mark_interrupted() -> None:
    """After a restart nothing runs: every execution left Executing or Stopping failed with it."""
    from moto.sagemaker.models import sagemaker_backends

    for account_backends in list(sagemaker_backends.values()):
        for backend in list(account_backends.values()):
            for pipeline in list(getattr(backend, "pipelines", {}).values()):
                for record in list(pipeline.pipeline_executions.values()):
                    with executor.LOCK:
                        _mark_interrupted(record)


def patch_pipeline_executions() -> None:
    from moto.core.responses import ActionResult
    from moto.sagemaker import models, utils
    from moto.sagemaker.responses import SageMakerResponse

    by_name = utils.get_pipeline_from_name

    def get_pipeline_from_name(pipelines, pipeline_name):
        return by_name(pipelines, _pipeline_name(pipeline_name))

    models.get_pipeline_from_name = get_pipeline_from_name
    utils.get_pipeline_from_name = get_pipeline_from_name

    backend_cls = models.SageMakerModelBackend
    original_start = backend_cls.start_pipeline_execution
    original_describe = backend_cls.describe_pipeline_execution
    original_list = backend_cls.list_pipeline_executions

    def start_pipeline_execution(
        self, pipeline_name, display_name, parameters, description, parallelism_configuration, client_request_token
    ):
        pipeline = get_pipeline_from_name(self.pipelines, pipeline_name)
        definition = pipeline.pipeline_definition
        try:
            definition = json.loads(definition) if isinstance(definition, str) else dict(definition)
            values = expressions.resolve_parameters(definition.get("Parameters") or [], parameters)
        except ValueError as exc:
            raise _validation(f"Pipeline definition is not valid JSON: {exc}") from None
        except expressions.EvaluationError as exc:
            raise _validation(str(exc)) from None
        result = original_start(
            self,
            pipeline.pipeline_name,
            display_name,
            parameters,
            description,
            parallelism_configuration,
            client_request_token,
        )
        record = pipeline.pipeline_executions[result["PipelineExecutionArn"]]
        # on the sandbox clock, like the engine's step times and the events (moto stamps the wall clock)
        record.creation_time = record.start_time = record.last_modified_time = clock.instant().replace(tzinfo=None)
        record.pipeline_execution_status = "Executing"
        record.sandbox_steps = []
        record.sandbox_properties = {}
        record.sandbox_run_args = dict(
            pipeline_arn=pipeline.arn,
            pipeline_name=pipeline.pipeline_name,
            role_arn=pipeline.role_arn,
            definition=definition,
            parameters=values,
            account=self.account_id,
            region=self.region_name,
        )
        _launch(record)
        return result

    def _launch(record):
        if journal.replaying():  # the start is replayed (its events included), not the run
            executor.ExecutionRun(executor.ENGINE, record, **record.sandbox_run_args).started()
            return
        if preload.enabled():  # warm the step-script zygote while the first steps set up, not on demand
            threading.Thread(target=runtime.zygote, name="sandbox-preload", daemon=True).start()
        _started_here.add(record.arn)
        executor.ENGINE.start(executor.ExecutionRun(executor.ENGINE, record, **record.sandbox_run_args))

    def _record(self, arn):
        record = utils.get_pipeline_execution_from_arn(self.pipelines, arn)
        with executor.LOCK:
            if not hasattr(record, "sandbox_steps"):
                record.sandbox_steps = []
            _interrupted(record)
        return record

    def describe_pipeline_execution(self, arn):
        record = _record(self, arn)
        with executor.LOCK:
            response = original_describe(self, arn)
            response["PipelineExecutionStatus"] = record.pipeline_execution_status
            response["LastModifiedTime"] = record.last_modified_time
            if record.pipeline_execution_failure_reason:
                response["FailureReason"] = record.pipeline_execution_failure_reason
            else:
                response.pop("FailureReason", None)
        return response

    def list_pipeline_executions(self, pipeline_name):
        pipeline = get_pipeline_from_name(self.pipelines, pipeline_name)
        response = original_list(self, pipeline.pipeline_name)
        for summary in response["PipelineExecutionSummaries"]:
            _record(self, summary["PipelineExecutionArn"])
            record = pipeline.pipeline_executions[summary["PipelineExecutionArn"]]
            summary["PipelineExecutionStatus"] = record.pipeline_execution_status
            if record.pipeline_execution_failure_reason:
                summary["PipelineExecutionFailureReason"] = record.pipeline_execution_failure_reason
            else:
                summary.pop("PipelineExecutionFailureReason", None)
        response["PipelineExecutionSummaries"].sort(key=lambda s: s["StartTime"], reverse=True)
        return response

    def list_pipeline_execution_steps(self, arn, sort_order=None, next_token=None, max_results=None):
        record = _record(self, arn)
        with executor.LOCK:
            items = [json.loads(json.dumps(_api_step(s), default=_keep)) for s in record.sandbox_steps]
            for item, step in zip(items, record.sandbox_steps):
                item["StartTime"] = step["StartTime"]
                if step.get("EndTime"):
                    item["EndTime"] = step["EndTime"]
        items.sort(key=lambda s: s["StartTime"], reverse=(sort_order or "Descending") == "Descending")
        start = int(next_token or 0)
        size = int(max_results or 50)
        page = items[start : start + size]
        response: dict[str, Any] = {"PipelineExecutionSteps": page}
        if start + size < len(items):
            response["NextToken"] = str(start + size)
        return response

    def stop_pipeline_execution(self, arn, client_request_token=None):  # noqa: ARG001 (moto's signature)
        record = _record(self, arn)
        with executor.LOCK:
            if record.pipeline_execution_status in TERMINAL:
                raise _validation(
                    f"Pipeline execution with ARN {arn} is in status "
                    f"{record.pipeline_execution_status} and cannot be stopped."
                )
            record.pipeline_execution_status = "Stopping"
            for step in record.sandbox_steps:
                if step.get("StepStatus") == "Executing":
                    step["StepStatus"] = "Stopping"
        executor.ENGINE.stop(arn)
        return {"PipelineExecutionArn": arn}

    def retry_pipeline_execution(self, arn, client_request_token=None, parallelism_configuration=None):  # noqa: ARG001
        record = _record(self, arn)
        with executor.LOCK:
            if record.pipeline_execution_status != "Failed":
                raise _validation(
                    f"Pipeline execution with ARN {arn} is in status "
                    f"{record.pipeline_execution_status}; only a Failed execution can be retried."
                )
            if not hasattr(record, "sandbox_run_args"):
                raise _validation(f"Pipeline execution with ARN {arn} cannot be retried.")
            record.sandbox_steps = [s for s in record.sandbox_steps if s.get("StepStatus") == "Succeeded"]
            record.pipeline_execution_status = "Executing"
            record.pipeline_execution_failure_reason = None
            if parallelism_configuration:
                record.parallelism_configuration = parallelism_configuration
        _launch(record)
        return {"PipelineExecutionArn": arn}

    backend_cls.start_pipeline_execution = start_pipeline_execution
    backend_cls.describe_pipeline_execution = describe_pipeline_execution
    backend_cls.list_pipeline_executions = list_pipeline_executions
    backend_cls.list_pipeline_execution_steps = list_pipeline_execution_steps
    backend_cls.stop_pipeline_execution = stop_pipeline_execution
    backend_cls.retry_pipeline_execution = retry_pipeline_execution

    def r_list_steps(self):
        return ActionResult(
            self.sagemaker_backend.list_pipeline_execution_steps(
                self._get_param("PipelineExecutionArn"),
                self._get_param("SortOrder"),
                self._get_param("NextToken"),
                self._get_param("MaxResults"),
            )
        )

    def r_stop(self):
        return ActionResult(
            self.sagemaker_backend.stop_pipeline_execution(
                self._get_param("PipelineExecutionArn"), self._get_param("ClientRequestToken")
            )
        )

    def r_retry(self):
        return ActionResult(
            self.sagemaker_backend.retry_pipeline_execution(
                self._get_param("PipelineExecutionArn"),
                self._get_param("ClientRequestToken"),
                self._get_param("ParallelismConfiguration"),
            )
        )

    SageMakerResponse.list_pipeline_execution_steps = r_list_steps
    SageMakerResponse.stop_pipeline_execution = r_stop
    SageMakerResponse.retry_pipeline_execution = r_retry


def _api_step(step: dict) -> dict:
    # the attempt history is the sandbox's own record (`sandbox attempts`); AWS shows AttemptCount only
    return {k: v for k, v in step.items() if (v not in (None, "") or k == "StepStatus") and not k.startswith("Sandbox")}


def _keep(value):
    return str(value)


def _attach_engine(server):
    runtime.attach(server)


def _reset(_server):
    retries.clear()
    executor.ENGINE.stop_all()
    _started_here.clear()
    shutil.rmtree(runtime.work_root(), ignore_errors=True)


def _fault(_server, body):
    """Inject a fault: {"pipeline", "step", "error", "times"}; {"clear": true}; {} lists the pending ones."""

    if body.get("clear"):
        retries.clear()
    elif body.get("pipeline"):
        times = body.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise InvalidInput(f"{times!r} is not a whole number of at least 1", field="times")
        if not re.match(r"^[A-Za-z][A-Za-z0-9]{2,127}$", str(body.get("error") or "")):
            raise InvalidInput(f"not an error code: {body.get('error')!r}", field="error")
        retries.inject(body["pipeline"], str(body.get("step") or ""), body["error"], times)
    return 200, {"faults": retries.pending()}


def _attempts(_server, body):
    """Every attempt of every step of one execution (start, end, failure, the wait before the next)."""
    from moto.sagemaker import utils
    from moto.sagemaker.models import sagemaker_backends

    arn = str(body.get("execution_arn") or "")
    parts = arn.split(":")
    if len(parts) < 6 or "/execution/" not in arn:
        raise InvalidInput(f"not a pipeline execution ARN: {arn!r}")
    try:
        record = utils.get_pipeline_execution_from_arn(sagemaker_backends[parts[4]][parts[3]].pipelines, arn)
    except Exception:  # moto answers a missing execution with several error types
        raise NotFound(f"no pipeline execution {arn}") from None

    with executor.LOCK:
        steps = [
            {
                "StepName": s["StepName"],
                "AttemptCount": s.get("AttemptCount", 1),
                "Attempts": s.get("SandboxAttempts", []),
            }
            for s in getattr(record, "sandbox_steps", [])
        ]
    return 200, {"execution_arn": arn, "steps": steps}


PATCH = Patch(
    name="pipeline-executions",
    adds=(
        "pipeline executions run their definition (Executing -> Succeeded/Failed/Stopped); list steps, stop, "
        "retry; pipelines by ARN"
    ),
    overrides=(
        "moto.sagemaker.models.get_pipeline_from_name",
        "moto.sagemaker.utils.get_pipeline_from_name",
        "moto.sagemaker.models.SageMakerModelBackend.start_pipeline_execution",
        "moto.sagemaker.models.SageMakerModelBackend.describe_pipeline_execution",
        "moto.sagemaker.models.SageMakerModelBackend.list_pipeline_executions",
        "moto.sagemaker.models.SageMakerModelBackend.list_pipeline_execution_steps",
        "moto.sagemaker.models.SageMakerModelBackend.stop_pipeline_execution",
        "moto.sagemaker.models.SageMakerModelBackend.retry_pipeline_execution",
        "moto.sagemaker.responses.SageMakerResponse.list_pipeline_execution_steps",
        "moto.sagemaker.responses.SageMakerResponse.stop_pipeline_execution",
        "moto.sagemaker.responses.SageMakerResponse.retry_pipeline_execution",
    ),
    apply=patch_pipeline_executions,
    routes={
        "fault": Route(_fault),
        "attempts": Route(_attempts),
    },
    start=_attach_engine,
    reset=_reset,
)
