"""Runs one pipeline execution: the step graph (DependsOn, data dependencies, Condition branches)
scheduled on a bounded thread pool, each step's status, metadata and failure reason recorded on
the execution, and status-change events put on the pipeline account's default bus."""

from __future__ import annotations

import os
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from sandbox import clock, events
from sandbox.engine import expressions, retries, runtime
from sandbox.engine import steps as step_types
from sandbox.journal import durable

LOCK = threading.RLock()  # guards every execution record the engine and the API share
FAILED_STEPS = "Step failure: One or multiple steps failed."


def utcnow() -> datetime:
    # the sandbox clock (`sandbox tick` moves it): executions line up with schedules, events and metrics
    return clock.instant()


class DefinitionError(Exception):
    """The definition cannot run at all (unsupported step type, unknown dependency...)."""


def flatten(definition: dict) -> dict:
    """name -> (step, gate): gate is (condition step, branch) for steps inside If/ElseSteps."""
    found: dict = {}

    def visit(items, gate):
        for step in items or []:
            name, kind = step.get("Name"), step.get("Type")
            if name in found:
                raise DefinitionError(f"step name {name} is used twice")
            if kind not in step_types.RUNNERS:
                raise DefinitionError(
                    f"step {name}: step type '{kind}' is not supported by the sandbox engine "
                    f"(supported: {', '.join(sorted(step_types.RUNNERS))})"
                )
            found[name] = (step, gate)
            if kind == "Condition":
                args = step.get("Arguments") or {}
                visit(args.get("IfSteps"), (name, True))
                visit(args.get("ElseSteps"), (name, False))

    visit(definition.get("Steps"), None)
    return found


def dependencies(step: dict, gate: Any) -> set[str]:
    deps = set(step.get("DependsOn") or []) | expressions.references(step.get("FunctionArn"))
    args = step.get("Arguments") or {}
    if step.get("Type") == "Condition":
        deps |= expressions.references(args.get("Conditions"))
    else:
        deps |= expressions.references(args)
    if gate:
        deps.add(gate[0])
    return deps


class ExecutionRun:
    """The engine's side of one execution; `record` is the moto execution object it reports into."""

    def __init__(
        self,
        engine,
        record,
        *,
        pipeline_arn: str,
        pipeline_name: str,
        role_arn: str,
        definition: dict,
        parameters: dict,
        account: str,
        region: str,
    ):
        self.engine, self.record = engine, record
        self.arn = record.arn
        self.execution_id = self.arn.rsplit("/", 1)[-1]
        self.pipeline_arn, self.pipeline_name, self.role_arn = pipeline_arn, pipeline_name, role_arn
        self.definition, self.parameters = definition, parameters
        self.account, self.region = account, region
        self.stop = threading.Event()
        self.workdir = runtime.work_root() / self.execution_id
        started = record.start_time
        self.expr = expressions.Context(
            parameters=parameters,
            execution={
                "PipelineExecutionId": self.execution_id,
                "PipelineExecutionArn": self.arn,
                "PipelineName": pipeline_name,
                "PipelineArn": pipeline_arn,
                "StartDateTime": started.isoformat() if started else utcnow().isoformat(),
                "CurrentDateTime": utcnow().isoformat(),
            },
            steps=dict(getattr(record, "sandbox_properties", {}) or {}),
        )
        self.expr.read_s3 = self._read_s3
        self.max_parallel = int(((record.parallelism_configuration or {}).get("MaxParallelExecutionSteps")) or 50)

    # -- the graph ------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # an engine bug must end the execution visibly, never leave it Executing
            traceback.print_exc()
            self._finish("Failed", f"InternalError: sandbox engine: {type(exc).__name__}: {exc}")

    def _run(self) -> None:
        try:
            graph = flatten(self.definition)
            deps = {name: dependencies(step, gate) for name, (step, gate) in graph.items()}
            for name, needs in deps.items():
                unknown = needs - set(graph)
                if unknown:
                    raise DefinitionError(f"step {name} depends on unknown step(s) {', '.join(sorted(unknown))}")
        except (DefinitionError, expressions.EvaluationError) as exc:
            self._finish("Failed", str(exc))
            return
        state = {name: "Pending" for name in graph}
        for name in self.expr.steps:  # a retry keeps what already succeeded
            if name in state:
                state[name] = "Succeeded"
        outcomes = {n: p.get("Outcome") for n, p in self.expr.steps.items() if "Outcome" in p}
        running: dict = {}
        while True:
            progressed = True
            while progressed:
                progressed = False
                for name, (step, gate) in graph.items():
                    if state[name] != "Pending":
                        continue
                    needs = deps[name]
                    blocked = any(state[d] in ("Failed", "Skipped", "Stopped") for d in needs)
                    if gate and state[gate[0]] == "Succeeded" and outcomes.get(gate[0]) != gate[1]:
                        blocked = True
                    if blocked or self.stop.is_set():
                        state[name] = "Skipped"
                        progressed = True
                    elif all(state[d] == "Succeeded" for d in needs) and len(running) < self.max_parallel:
                        state[name] = "Running"
                        running[self.engine.pool.submit(self._run_step, step)] = name
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                status, props = future.result()
                state[name] = status
                if status == "Succeeded":
                    self.expr.steps[name] = props
                    if "Outcome" in props:
                        outcomes[name] = props["Outcome"]
        self._properties = dict(self.expr.steps)
        if self.stop.is_set():
            self._finish("Stopped", None)
        elif any(s in ("Failed", "Stopped") for s in state.values()):
            self._finish("Failed", FAILED_STEPS)
        else:
            self._finish("Succeeded", None)
            if not os.environ.get("MLOPS_SANDBOX_KEEP_WORKDIRS"):
                step_types.cleanup(self.workdir)

    # -- one step -------------------------------------------------------------------------------
    def _run_step(self, step: dict):
        name, kind = step["Name"], step["Type"]
        entry = {
            "StepName": name,
            "StepDisplayName": step.get("DisplayName") or name,
            "StepDescription": step.get("Description") or "",
            "StepStatus": "Executing",
            "StartTime": utcnow(),
            "Metadata": {},
            "AttemptCount": 1,
        }
        self._report(append=entry, raised=[self._step_event(step, entry, "Starting")])
        policies = step.get("RetryPolicies") or []
        history: list[dict] = []
        retried: dict[int, int] = {}  # policy index -> retries made
        first = time.monotonic()
        while True:
            started = utcnow()
            status, props, reason, metadata = self._attempt(step)
            attempt = {"Attempt": len(history) + 1, "StartTime": started.isoformat(), "EndTime": utcnow().isoformat()}
            attempt.update({"StepStatus": status, **({"FailureReason": reason} if reason else {})})
            history.append(attempt)
            if status != "Failed" or self.stop.is_set():
                break
            kind_of_error = retries.exception_type(reason, kind)
            policy = retries.matching_policy(policies, kind_of_error, kind)
            if policy is None:
                break
            index = policies.index(policy)
            if not retries.may_retry(policy, retried.get(index, 0), (time.monotonic() - first) / 60):
                break
            retried[index] = retried.get(index, 0) + 1
            wait_seconds = retries.delay(policy, retried[index])
            attempt.update(ExceptionType=kind_of_error, RetryAfterSeconds=wait_seconds)
            with LOCK:
                entry["Metadata"] = metadata
                entry["SandboxAttempts"] = list(history)
            if self.stop.wait(wait_seconds):
                status, reason = "Stopped", None
                break
            step_types.cleanup(self.workdir / name)  # a new attempt is a new job: no output of the last one
            with LOCK:
                entry["AttemptCount"] = len(history) + 1
        if self.stop.is_set() and status == "Succeeded" and kind not in ("Condition", "Fail"):
            status = "Stopped"
        with LOCK:
            index = next(i for i, e in enumerate(self.record.sandbox_steps) if e is entry)
            fields = {**entry, "StepStatus": status, "EndTime": utcnow(), "Metadata": metadata}
            fields["SandboxAttempts"] = history
            if reason:
                fields["FailureReason"] = reason
        self._report(update=[index, fields], raised=[self._step_event(step, fields, "Executing")])
        return status, props

    def _attempt(self, step: dict):
        """One attempt of a step: (status, properties, failure reason, metadata)."""
        name, kind = step["Name"], step["Type"]
        ctx = step_types.StepContext(
            account=self.account,
            region=self.region,
            execution_id=self.execution_id,
            execution_arn=self.arn,
            pipeline_name=self.pipeline_name,
            role_arn=self.role_arn,
            workdir=self.workdir / name,
            expr=self.expr,
            stop=self.stop,
            step_name=name,
        )
        self.expr.execution["CurrentDateTime"] = utcnow().isoformat()
        status, props, reason, metadata = "Succeeded", {}, None, {}
        try:
            injected = retries.take(self.pipeline_name, name, kind)
            if injected:
                raise step_types.StepFailed(injected)
            raw = step.get("Arguments") or {}
            args = raw if kind in step_types.RAW_ARGUMENTS else expressions.evaluate(raw, self.expr)
            result = step_types.RUNNERS[kind](step, args, ctx)
            props, metadata = result.properties, result.metadata
        except step_types.StepStopped:
            status, metadata = "Stopped", ctx.metadata
        except (step_types.StepFailed, expressions.EvaluationError) as exc:
            status, reason, metadata = "Failed", str(exc), ctx.metadata
            if kind == "Fail":
                metadata = {"Fail": {"ErrorMessage": reason}}
        except Exception as exc:  # an engine bug fails the step, visibly, instead of hanging the execution
            status, reason, metadata = (
                "Failed",
                f"InternalError: sandbox engine: {type(exc).__name__}: {exc}",
                ctx.metadata,
            )
            traceback.print_exc()
        return status, props, reason, metadata

    def _read_s3(self, uri: str) -> bytes:
        creds = runtime.role_credentials(
            self.role_arn, "sagemaker.amazonaws.com", f"SageMaker-{self.execution_id}", self.region
        )
        bucket, key = runtime.split_s3(uri)
        return runtime.client("s3", creds, self.region).get_object(Bucket=bucket, Key=key)["Body"].read()

    # -- reporting ------------------------------------------------------------------------------
    def _finish(self, status: str, reason: str | None) -> None:
        # Rules react before the final status shows: whoever sees "Failed" can rely on the retrain
        # rule having fired (on AWS the order is not observable; here it makes tests deterministic).
        with LOCK:
            previous = self.record.pipeline_execution_status
        detail = {
            "pipelineExecutionDisplayName": self.record.pipeline_execution_display_name or self.execution_id,
            "pipelineExecutionArn": self.arn,
            "pipelineArn": self.pipeline_arn,
            "executionStartTime": _iso(self.record.start_time),
            "executionEndTime": _iso(utcnow()),
            "previousPipelineExecutionStatus": previous,
            "currentPipelineExecutionStatus": status,
        }
        # AWS's execution event carries no failure reason (the failed step's event does, as failureReason):
        # https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
        if self.record.pipeline_execution_description:
            detail["pipelineExecutionDescription"] = self.record.pipeline_execution_description
        event = {
            "detail_type": "SageMaker Model Building Pipeline Execution Status Change",
            "resources": [self.pipeline_arn, self.arn],
            "detail": detail,
        }
        self._report(
            properties=getattr(self, "_properties", None),
            raised=[event],
            finish={"status": status, "reason": reason, "at": utcnow()},
        )
        self.engine.finished(self)

    def _report(self, **change) -> None:
        """One change of the execution (a step started or ended, the end) and the events it raises,
        as one journaled operation of the sandbox (replayed as is after a restart)."""
        record_execution_change(account=self.account, region=self.region, arn=self.arn, **change)

    def started(self) -> None:
        detail = {
            "pipelineExecutionDisplayName": self.record.pipeline_execution_display_name or self.execution_id,
            "pipelineExecutionArn": self.arn,
            "pipelineArn": self.pipeline_arn,
            "executionStartTime": _iso(self.record.start_time),
            "previousPipelineExecutionStatus": None,
            "currentPipelineExecutionStatus": "Executing",
        }
        _emit(
            self.account,
            self.region,
            "SageMaker Model Building Pipeline Execution Status Change",
            [self.pipeline_arn, self.arn],
            detail,
        )

    def _step_event(self, step: dict, entry: dict, previous: str) -> dict:
        detail = {
            "stepName": entry["StepName"],
            "stepType": step["Type"],
            "pipelineArn": self.pipeline_arn,
            "pipelineExecutionArn": self.arn,
            "stepStartTime": _iso(entry["StartTime"]),
            "previousStepStatus": previous,
            "currentStepStatus": entry["StepStatus"],
            # the event spells metadata in lower camel case ({"processingJob": {"arn": ...}}), unlike the API
            "metadata": _camel(entry.get("Metadata") or {}),
        }
        if entry.get("EndTime"):
            detail["stepEndTime"] = _iso(entry["EndTime"])
        if entry.get("FailureReason"):
            detail["failureReason"] = entry["FailureReason"]
        return {
            "detail_type": "SageMaker Model Building Pipeline Execution Step Status Change",
            "resources": [self.pipeline_arn, self.arn],
            "detail": detail,
        }


def _camel(value):
    if isinstance(value, dict):
        return {(k[:1].lower() + k[1:] if isinstance(k, str) else k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@durable("engine.execution-change")
def record_execution_change(
    account: str,
    region: str,
    arn: str,
    append: dict | None = None,
    update: list | None = None,
    properties: dict | None = None,
    raised: list | tuple = (),
    finish: dict | None = None,
) -> None:
    """Apply one change to an execution record, then put its events on the bus; the final status
    shows last (rules react first: whoever sees "Failed" can rely on the retrain rule having fired)."""
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.utils import get_pipeline_execution_from_arn

    record = get_pipeline_execution_from_arn(sagemaker_backends[account][region].pipelines, arn)
    with LOCK:
        if append is not None:
            record.sandbox_steps.append(append)
        if update is not None:
            record.sandbox_steps[update[0]].update(update[1])
        if properties is not None:
            record.sandbox_properties = properties
    for event in raised:
        _emit(account, region, event["detail_type"], event["resources"], event["detail"])
    if finish is not None:
        with LOCK:
            record.pipeline_execution_status = finish["status"]
            record.pipeline_execution_failure_reason = finish["reason"]
            record.last_modified_time = finish["at"]
            record.sandbox_end_time = finish["at"]


def _emit(account, region, detail_type, resources, detail) -> None:
    try:
        events.emit(
            account, region, source="aws.sagemaker", detail_type=detail_type, resources=resources, detail=detail
        )
    except Exception:  # a broken rule target must not break the execution that raised the event
        traceback.print_exc()


class Engine:
    """Every running execution of the sandbox, sharing one bounded pool of step workers."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or int(os.environ.get("MLOPS_SANDBOX_STEP_WORKERS") or 4)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox-step")
        self.runs: dict[str, ExecutionRun] = {}

    def start(self, run: ExecutionRun) -> None:
        with LOCK:
            self.runs[run.arn] = run
        run.started()
        threading.Thread(target=run.run, name=f"sandbox-execution-{run.execution_id}", daemon=True).start()

    def finished(self, run: ExecutionRun) -> None:
        with LOCK:
            self.runs.pop(run.arn, None)

    def stop(self, arn: str) -> bool:
        with LOCK:
            run = self.runs.get(arn)
        if run is None:
            return False
        run.stop.set()
        return True

    def stop_all(self, timeout: float = 10.0) -> None:
        with LOCK:
            runs = list(self.runs.values())
        for run in runs:
            run.stop.set()
        deadline = time.monotonic() + timeout
        while self.runs and time.monotonic() < deadline:
            time.sleep(0.05)


ENGINE = Engine()
