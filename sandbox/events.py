"""EventBridge delivery as AWS does it: rules with SNS topic targets publish (when the topic policy
lets events.amazonaws.com publish and, for an encrypted topic, the key lets it encrypt), rules with
SageMaker pipeline targets start the pipeline as the target's role (which must allow
sagemaker:StartPipelineExecution), input transformers / Input / InputPath shape what is sent,
scheduled rules never match events, disabled rules deliver nothing, and TestEventPattern answers.

AWS drops a failed delivery silently (only the FailedInvocations metric counts it); the sandbox
records every delivery, failed or not, readable through `sandbox events` and /_sandbox/events.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import clock, iam_policy, journal
from sandbox.engine import preload, runtime
from sandbox.iam_policy import Principal, evaluate
from sandbox.patching import Patch, Route
from sandbox.protocol import InvalidInput

MAX_RECORDS = 1000
_lock = threading.Lock()
_local: dict = {}


def deliveries() -> list:
    srv = runtime.server()
    holder = srv.extra if srv is not None else _local
    return holder.setdefault("event-deliveries", [])


def _record(rule, target, event, status: str, reason: str | None = None, result: dict | None = None) -> dict:
    entry = {
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "account": rule.account_id,
        "region": rule.region_name,
        "rule": rule.name,
        "rule_arn": rule.arn,
        "target_id": target.get("Id"),
        "target_arn": target.get("Arn"),
        "event_id": event.get("id"),
        "detail_type": event.get("detail-type"),
        "status": status,
    }
    if reason:
        entry["reason"] = reason
    if result:
        entry["result"] = result
    with _lock:
        records = deliveries()
        records.append(entry)
        del records[:-MAX_RECORDS]
    return entry


# -- what a target receives -----------------------------------------------------------------------
def payload(target: dict, event: dict) -> str:
    """The text a target receives: constant Input, an InputPath selection, an InputTransformer's
    output (verbatim: a quoted-string template keeps its quotes, as on AWS), or the event as JSON."""
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        found = parse(target["InputPath"]).find(event)
        return json.dumps(found[0].value if found else None)
    transformer = target.get("InputTransformer")
    if transformer:
        return _transform(transformer, event)
    return json.dumps({k: v for k, v in event.items() if not k.startswith("_")})


def _transform(transformer: dict, event: dict):
    from jsonpath_ng.ext import parse

    template = transformer.get("InputTemplate", "")
    values = {}
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        found = parse(path).find(event)
        values[name] = found[0].value if found else None
    values["aws.events.event.json"] = event
    values["aws.events.rule-arn"] = event.get("_rule_arn")
    out, text = [], template
    # a placeholder inside quotes takes the raw text; outside quotes, the value's JSON
    i = 0
    while i < len(text):
        if text[i] == "<":
            end = text.find(">", i)
            name = text[i + 1 : end] if end > 0 else None
            if name in values:
                inside_quotes = _inside_quotes(text, i)
                value = values[name]
                if inside_quotes:
                    out.append(value if isinstance(value, str) else json.dumps(value) if value is not None else "")
                else:
                    out.append(json.dumps(value) if value is not None else "null")
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _inside_quotes(text: str, index: int) -> bool:
    quotes, escaped = 0, False
    for ch in text[:index]:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quotes += 1
    return quotes % 2 == 1


# -- delivery -------------------------------------------------------------------------------------
def deliver(rule: Any, target: dict, event: dict) -> dict:
    """Deliver one event to one target of `rule`; returns the delivery record."""
    arn = target.get("Arn", "")
    try:
        body = payload(target, dict(event, _rule_arn=rule.arn) if target.get("InputTransformer") else event)
    except Exception as exc:
        return _record(rule, target, event, "failed", f"input transformation failed: {exc}")
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    if service == "sns":
        return _deliver_sns(rule, target, event, body)
    if service == "sagemaker" and ":pipeline/" in arn:
        return _deliver_pipeline(rule, target, event)
    if service == "events" and ":event-bus/" in arn:
        return _deliver_bus(rule, target, event)
    if service == "lambda":
        return _deliver_lambda(rule, target, event, body)
    return _deliver_other(rule, target, event)


def _deliver_lambda(rule, target, event, body: str) -> dict:
    """Invoke a Lambda function as EventBridge does (asynchronously, on AWS): only if the function's
    resource policy lets events.amazonaws.com invoke it for this rule; the function runs as its role."""
    from moto.awslambda.models import lambda_backends

    arn = target["Arn"]
    _, _, _, region, account, _ = arn.split(":", 5)
    try:
        function = lambda_backends[account][region].get_function(arn)
    except Exception:  # moto's not-found exception differs by version
        return _record(rule, target, event, "failed", f"function {arn} does not exist")
    statements = list(getattr(function.policy, "statements", []) or [])
    events_principal = iam_policy.Principal(account_id="", arn="events.amazonaws.com", service="events.amazonaws.com")
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    decision = iam_policy.evaluate(
        [{"Version": "2012-10-17", "Statement": statements}] if statements else [],
        "lambda:InvokeFunction",
        [function.function_arn, arn],
        context,
        principal=events_principal,
    )
    if decision.denied or not decision.allowed:
        return _record(
            rule,
            target,
            event,
            "failed",
            f"the resource policy of {function.function_arn} does not allow events.amazonaws.com to "
            f"lambda:InvokeFunction for rule {rule.arn}",
        )
    try:
        creds = runtime.role_credentials(function.role, "lambda.amazonaws.com", function.function_name[:64], region)
    except runtime.RoleNotAssumable as exc:
        return _record(rule, target, event, "failed", str(exc))
    if journal.in_operation() and not journal.replaying():
        # Raised by a journaled change (an execution's status): the function's own calls would wait for the
        # lock that change holds. EventBridge invokes Lambda asynchronously on AWS too: run it once it ends.
        threading.Thread(
            target=_invoke, args=(rule, target, event, body, function, creds, account, region), daemon=True
        ).start()
        return _record(rule, target, event, "queued", "invoked asynchronously, when the change that raised it ends")
    return _invoke(rule, target, event, body, function, creds, account, region)


def _invoke(rule, target, event, body: str, function, creds: dict, account: str, region: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sandbox-lambda-"))
    (work / "code.zip").write_bytes(function.code_bytes)
    (work / "event.json").write_text(body)
    env = runtime.process_env(creds, region)
    # its configured variables, as a Lambda step's function gets them; the reserved ones are Lambda's
    # (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html)
    env.update(getattr(function, "environment_vars", None) or {})
    env.update({"AWS_LAMBDA_FUNCTION_NAME": function.function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"})
    runner = Path(__file__).resolve().parent / "engine" / "lambda_runner.py"
    argv = [sys.executable, str(runner), str(work / "code.zip"), function.handler, str(work / "event.json")]
    argv.append(str(work / "result.json"))
    timeout = float(function.timeout or 3)
    # the step scripts' pre-forked Python (boto3 imported) starts the function in milliseconds, not seconds
    zygote = runtime.zygote() if preload.enabled() and preload.runnable(argv) else None
    if zygote is not None:
        log = work / "output.log"
        child = zygote.start(argv, env, str(work), str(log))
        deadline = time.monotonic() + timeout
        while child.poll(0.2) is None:
            if time.monotonic() > deadline:
                child.kill()
                return _record(rule, target, event, "failed", f"{function.function_name} timed out")
        returncode = child.returncode
        output = log.read_text(errors="replace") if log.exists() else ""
    else:
        try:
            done = subprocess.run(argv, env=env, cwd=work, check=False, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return _record(rule, target, event, "failed", f"{function.function_name} timed out")
        returncode, output = done.returncode, (done.stdout or "") + (done.stderr or "")
    stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    runtime.write_log(account, region, f"/aws/lambda/{function.function_name}", stream, output)
    try:
        result = json.loads((work / "result.json").read_text())
    except (OSError, ValueError):
        result = {"errorMessage": output.strip().splitlines()[-1] if output.strip() else "no output"}
    shutil.rmtree(work, ignore_errors=True)
    if returncode != 0:
        return _record(
            rule,
            target,
            event,
            "failed",
            f"{function.function_name}: {result.get('errorType', 'Error')}: {result.get('errorMessage')}",
        )
    return _record(rule, target, event, "delivered", result=result if isinstance(result, dict) else {"result": result})


def _deliver_bus(rule, target, event) -> dict:
    """Put the event on another bus, as AWS does: unchanged (its account, source and resources stay
    those of the original), and only if the receiving bus's policy lets the sender's account put events."""
    from moto.events.models import events_backends

    _, _, _, region, account, resource = target["Arn"].split(":", 5)
    bus = events_backends[account][region].event_buses.get(resource.split("/", 1)[1])
    if bus is None:
        return _record(rule, target, event, "failed", f"event bus {target['Arn']} does not exist")
    if account != rule.account_id:
        policy = json.loads(bus.policy) if bus.policy else None
        sender = Principal(
            rule.account_id, f"arn:aws:iam::{rule.account_id}:root", f"arn:aws:iam::{rule.account_id}:root"
        )
        decision = evaluate([policy] if policy else [], "events:PutEvents", bus.arn, principal=sender)
        if decision.denied or not decision.allowed:
            return _record(
                rule,
                target,
                event,
                "failed",
                f"the policy of {target['Arn']} does not allow account {rule.account_id} to put events",
            )
    for receiving in list(bus.rules.values()):
        send_to_targets(receiving, copy.deepcopy(event))
    return _record(rule, target, event, "delivered")


def _deliver_sns(rule, target, event, body) -> dict:
    from moto.sns.models import sns_backends

    arn = target["Arn"]
    _, _, _, region, account, _ = arn.split(":", 5)
    topic = sns_backends[account][region].topics.get(arn)
    if topic is None:
        return _record(rule, target, event, "failed", f"topic {arn} does not exist")
    events_principal = iam_policy.Principal(account_id="", arn="events.amazonaws.com", service="events.amazonaws.com")
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    decision = iam_policy.evaluate([topic.policy], "sns:Publish", arn, context, principal=events_principal)
    if decision.denied or not decision.allowed:
        return _record(
            rule,
            target,
            event,
            "failed",
            f"the access policy of topic {arn} does not allow events.amazonaws.com to sns:Publish "
            f"(for rule {rule.arn})",
        )
    problem = _topic_key_problem(topic, events_principal, context)
    if problem:
        return _record(rule, target, event, "failed", problem)
    message_id = sns_backends[account][region].publish(body, arn=arn)
    return _record(rule, target, event, "delivered", result={"MessageId": message_id})


def _topic_key_problem(topic, principal, context) -> str | None:
    """An encrypted topic needs its key to let EventBridge encrypt; the AWS-managed alias/aws/sns cannot."""
    key_ref = getattr(topic, "kms_master_key_id", "")
    if not key_ref:
        return None
    if key_ref.endswith("alias/aws/sns"):
        return (
            f"topic {topic.arn} is encrypted with the AWS managed key alias/aws/sns, whose policy cannot "
            f"grant events.amazonaws.com kms:GenerateDataKey: use a customer managed key"
        )
    from moto.kms.models import kms_backends

    account, region = topic.arn.split(":")[4], topic.arn.split(":")[3]
    if key_ref.startswith("arn:"):
        account, region = key_ref.split(":")[4], key_ref.split(":")[3]
    backend = kms_backends[account][region]
    ref = key_ref.split(":", 5)[-1] if key_ref.startswith("arn:") else key_ref
    key_id = backend.get_key_id_from_alias(ref) if ref.startswith("alias/") else ref.replace("key/", "")
    key = backend.keys.get(key_id) if key_id else None
    if key is None:
        return f"topic {topic.arn}: KMS key {key_ref} does not exist"
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        decision = iam_policy.evaluate([key.policy], action, key.arn, context, principal=principal)
        if decision.denied or not decision.allowed:
            return (
                f"topic {topic.arn} is encrypted with {key.arn}, whose key policy does not allow "
                f"events.amazonaws.com to {action}"
            )
    return None


def _deliver_pipeline(rule, target, event) -> dict:
    from botocore.exceptions import ClientError

    role_arn = target.get("RoleArn")
    if not role_arn:
        return _record(rule, target, event, "failed", "a SageMaker pipeline target needs a RoleArn")
    try:
        creds = runtime.role_credentials(
            role_arn, "events.amazonaws.com", f"EventBridge-{rule.name}"[:64], rule.region_name
        )
    except runtime.RoleNotAssumable as exc:
        return _record(rule, target, event, "failed", str(exc))
    parameters = (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList") or []
    try:
        response = runtime.client("sagemaker", creds, rule.region_name).start_pipeline_execution(
            PipelineName=target["Arn"],
            PipelineParameters=parameters,
            PipelineExecutionDescription=f"started by EventBridge rule {rule.name}",
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        return _record(rule, target, event, "failed", f"{err.get('Code')}: {err.get('Message')} (as {role_arn})")
    return _record(rule, target, event, "delivered", result={"PipelineExecutionArn": response["PipelineExecutionArn"]})


def _moto_shaped(event: dict) -> dict:
    """moto's own deliveries (SQS, Logs) expect its internal event shape, a unix `time`; service events
    the sandbox emits carry AWS's ISO time."""
    shaped = copy.deepcopy(event)
    if isinstance(shaped.get("time"), str):
        shaped["time"] = datetime.strptime(shaped["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return shaped


def _deliver_other(rule, target, event) -> dict:
    # SQS, Logs...: moto's own delivery, one target at a time
    single = copy.copy(rule)
    single.targets = [target]
    try:
        shaped = _moto_shaped(event)
        if any(k in target for k in ("InputTransformer", "Input", "InputPath")):
            shaped.setdefault("ingestion-time", shaped.get("time") or 0)
            _original["send_to_targets"](single, shaped)
        else:  # moto's template parser drops fields (account...) even with no transformer: AWS sends the event whole
            _original["send_to_targets"](single, shaped, transform_input=False)
    except NotImplementedError:
        return _record(rule, target, event, "failed", f"target {target.get('Arn')} is not supported by the sandbox")
    except Exception as exc:
        return _record(rule, target, event, "failed", f"{type(exc).__name__}: {exc}")
    return _record(rule, target, event, "delivered")


_original: dict = {}


def send_to_targets(rule: Any, event: dict, transform_input: bool = True) -> None:  # noqa: ARG001 (moto's signature)
    """A rule's reaction to an event on its bus (replaces moto's Rule.send_to_targets)."""
    if rule.state != "ENABLED" or rule.scheduled_expression:
        return  # scheduled rules are fired by the clock, never by events
    if not rule.event_pattern.matches_event(event):
        return
    for target in list(rule.targets):
        try:
            deliver(rule, target, event)
        except Exception as exc:  # one broken target must not stop the others, nor fail PutEvents
            traceback.print_exc()
            _record(rule, target, event, "failed", f"sandbox error: {type(exc).__name__}: {exc}")


def fire_scheduled(rule: Any, at: datetime) -> list[dict]:
    """The "Scheduled Event" AWS sends a scheduled rule's targets at `at`."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }
    return [deliver(rule, target, event) for target in list(rule.targets)]


def emit(
    account: str,
    region: str,
    *,
    source: str,
    detail_type: str,
    detail: dict,
    resources: list | None = None,
    bus: str = "default",
) -> dict:
    """Put an AWS service event (e.g. aws.sagemaker) on an account's bus; rules react as on AWS."""
    from moto.events.models import events_backends

    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(resources or []),
        "detail": detail,
    }
    backend = events_backends[account][region]
    event_bus = backend.event_buses.get(bus)
    for rule in list(event_bus.rules.values()) if event_bus else []:
        send_to_targets(rule, copy.deepcopy(event))
    return event


def patch_eventbridge() -> None:
    from moto.events.models import EventPattern, EventsBackend, Rule
    from moto.events.responses import EventsHandler

    _original["send_to_targets"] = Rule.send_to_targets
    Rule.send_to_targets = send_to_targets

    original_put_rule = EventsBackend.put_rule

    def put_rule(self, name, *args, **kwargs):
        rule = original_put_rule(self, name, *args, **kwargs)
        if rule.scheduled_expression:
            clock.observe(clock.now())
        return rule

    EventsBackend.put_rule = put_rule

    def test_event_pattern(self):
        try:
            event = json.loads(self._get_param("Event"))
            result = EventPattern.load(self._get_param("EventPattern")).matches_event(event)
        except (TypeError, ValueError) as exc:
            from moto.events.exceptions import InvalidEventPatternException

            raise InvalidEventPatternException(str(exc)) from None
        return json.dumps({"Result": bool(result)})

    EventsHandler.test_event_pattern = test_event_pattern


def tick(to: datetime | None = None, by: timedelta | None = None) -> dict:
    """Advance the sandbox clock and deliver every due occurrence of every enabled scheduled rule."""
    target, due, skipped = clock.advance(to=to, by=by)
    fired = [
        {"rule": rule.arn, "time": clock.iso(at), "deliveries": fire_scheduled(rule, at)}
        for rule, occurrences in due
        for at in occurrences
    ]
    return {"now": clock.iso(target), "fired": fired, "skipped": skipped}


def _tick(_server, body):
    try:
        to = clock.parse_time(body["to"]) if body.get("to") else None
        by = clock.parse_duration(body["by"]) if body.get("by") else None
        return 200, tick(to=to, by=by)
    except clock.ScheduleError as exc:
        raise InvalidInput(str(exc), field="to" if body.get("to") else "by") from None


# -- SageMaker model registry events ---------------------------------------------------------------
PACKAGE_CALLS = ("SageMaker.CreateModelPackage", "SageMaker.UpdateModelPackage")


def model_package_state_change(package_arn: str) -> dict | None:
    """The "SageMaker Model Package State Change" event AWS puts on the package's (owning) account bus."""
    from moto.sagemaker.models import sagemaker_backends

    _, _, _, region, account, _ = package_arn.split(":", 5)
    backend = sagemaker_backends[account][region]
    package = next((p for p in list(backend.model_packages.values()) if p.arn == package_arn), None)
    if package is None:
        return None
    described = package.gen_response_object()
    detail = {
        k: v
        for k, v in json.loads(json.dumps(described, default=str)).items()
        if v not in (None, "", [], {}) and k not in ("Tags", "ClientToken", "Arn")
    }
    detail.setdefault("ModelApprovalStatus", "PendingManualApproval")
    detail["ModelPackageArn"] = package_arn
    return emit(
        account,
        region,
        source="aws.sagemaker",
        detail_type="SageMaker Model Package State Change",
        resources=[package_arn],
        detail=detail,
    )


def _model_package_events(app):
    """Emit the state-change event after a successful CreateModelPackage / UpdateModelPackage,
    whoever registered or approved it (pipeline step, `promote approve`, console-like calls)."""

    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET") not in PACKAGE_CALLS:
            return app(environ, start_response)
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"] = status
            return start_response(status, headers, exc_info)

        body = b"".join(app(environ, capture))
        if seen.get("status", "").startswith("200"):
            try:
                arn = json.loads(body or b"{}").get("ModelPackageArn")
                if arn:
                    model_package_state_change(arn)
            except Exception:  # the call succeeded; a failed notification must not turn it into an error
                traceback.print_exc()
        return [body]

    return wrapped


def _events(_server, body):
    records = list(deliveries())
    if body.get("status"):
        records = [r for r in records if r["status"] == body["status"]]
    return 200, {"deliveries": records}


def _reset(server):
    server.extra.pop("event-deliveries", None)


PATCH = Patch(
    name="eventbridge-delivery",
    adds=(
        "EventBridge rules publish to SNS (topic policy and key checked) and start SageMaker pipelines "
        "(target role checked); input transformers; scheduled rules ignore events; deliveries recorded"
    ),
    overrides=(
        "moto.events.models.Rule.send_to_targets",
        "moto.events.models.EventsBackend.put_rule",
        "moto.events.responses.EventsHandler.test_event_pattern",
    ),
    apply=patch_eventbridge,
    routes={
        "tick": Route(_tick),
        "events": Route(_events, methods=("GET", "POST")),
    },
    wrap=_model_package_events,
    reset=_reset,
)
