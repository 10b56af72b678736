"""Step retry policies as SageMaker Pipelines applies them, and faults injected for tests and demos.

A failed attempt is classified into one of AWS's exception types (Step.THROTTLING, Step.SERVICE_FAULT,
SageMaker.JOB_INTERNAL_ERROR, SageMaker.CAPACITY_ERROR, SageMaker.RESOURCE_LIMIT); the first of the
step's RetryPolicies naming that type decides: MaxAttempts retries after the first attempt, the first
one IntervalSeconds later, each next one BackoffRate times longer, none after ExpireAfterMin
(https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html). Anything else (an
algorithm error, a denied permission, a validation error) fails the step at once.
"""

from __future__ import annotations

import re
import threading

THROTTLING, SERVICE_FAULT = "Step.THROTTLING", "Step.SERVICE_FAULT"
JOB_INTERNAL_ERROR, CAPACITY_ERROR, RESOURCE_LIMIT = (
    "SageMaker.JOB_INTERNAL_ERROR",
    "SageMaker.CAPACITY_ERROR",
    "SageMaker.RESOURCE_LIMIT",
)
# Error codes of a failed service call, by the exception type a retry policy names.
CALL_ERRORS = {
    THROTTLING: {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    },
    SERVICE_FAULT: {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    },
    RESOURCE_LIMIT: {"ResourceLimitExceeded"},
}
# How a job that failed at run time says why: the FailureReason's first word.
JOB_FAILURES = {"InternalServerError": JOB_INTERNAL_ERROR, "CapacityError": CAPACITY_ERROR}
JOB_FAILURE_TEXT = {
    "InternalServerError": "InternalServerError: We encountered an internal error. Please try again.",
    "CapacityError": "CapacityError: Unable to provision requested ML compute capacity. "
    "Please retry using a different ML instance type.",
}
JOB_STEPS = ("Processing", "Training", "Tuning", "Transform")
OPERATIONS = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "Tuning": "CreateHyperParameterTuningJob",
    "Transform": "CreateTransformJob",
    "Model": "CreateModel",
    "CreateModel": "CreateModel",
    "RegisterModel": "CreateModelPackage",
    "Lambda": "Invoke",
}
_CALL_ERROR = re.compile(r"An error occurred \((\w+)\) when calling")


def exception_type(reason: str, step_kind: str) -> str | None:
    """The retry policy exception type a failure reason belongs to, or None (not retryable)."""
    reason = reason or ""
    first = reason.split(":", 1)[0].strip()
    if step_kind in JOB_STEPS and first in JOB_FAILURES:
        return JOB_FAILURES[first]
    found = _CALL_ERROR.search(reason)
    code = found.group(1) if found else None
    for kind, codes in CALL_ERRORS.items():
        if code in codes:
            return kind
    return None


def matching_policy(policies: list, kind: str | None, step_kind: str) -> dict | None:
    if kind is None:
        return None
    # Jobs in a tuning step retry internally; AWS does not retry JOB_INTERNAL_ERROR for the step itself.
    if step_kind == "Tuning" and kind == JOB_INTERNAL_ERROR:
        return None
    return next((p for p in policies or [] if kind in (p.get("ExceptionType") or [])), None)


def delay(policy: dict, retry_number: int) -> float:
    """Seconds before retry number `retry_number` (1 for the first retry) under `policy`."""
    interval = float(policy.get("IntervalSeconds", 1))
    backoff = float(policy.get("BackoffRate", 2.0))
    return interval * backoff ** (retry_number - 1)


def may_retry(policy: dict, retries_so_far: int, minutes_since_first_attempt: float) -> bool:
    if "ExpireAfterMin" in policy and minutes_since_first_attempt >= float(policy["ExpireAfterMin"]):
        return False
    if "MaxAttempts" in policy:
        return retries_so_far < int(policy["MaxAttempts"])
    return "ExpireAfterMin" in policy


# -- injected faults --------------------------------------------------------------------------------
_faults: dict = {}  # (pipeline name, step name) -> {"error": code, "remaining": n}
_lock = threading.Lock()


def inject(pipeline: str, step: str, error: str, times: int) -> dict:
    with _lock:
        _faults[(pipeline, step)] = {"error": error, "remaining": int(times)}
        return {"pipeline": pipeline, "step": step, "error": error, "remaining": int(times)}


def pending() -> list[dict]:
    with _lock:
        return [{"pipeline": p, "step": s, **f} for (p, s), f in sorted(_faults.items())]


def clear() -> None:
    with _lock:
        _faults.clear()


def take(pipeline: str, step: str, step_kind: str) -> str | None:
    """The failure reason of the next injected fault on this step, used up as it is taken."""
    with _lock:
        fault = _faults.get((pipeline, step))
        if fault is None:
            return None
        fault["remaining"] -= 1
        if fault["remaining"] <= 0:
            del _faults[(pipeline, step)]
        error = fault["error"]
    if step_kind in JOB_STEPS and error in JOB_FAILURE_TEXT:
        return JOB_FAILURE_TEXT[error]
    operation = OPERATIONS.get(step_kind, "the step's")
    message = "Rate exceeded" if error in CALL_ERRORS[THROTTLING] else "injected by `sandbox fault`"
    return f"ClientError: An error occurred ({error}) when calling the {operation} operation: {message}"
