"""One runner per SageMaker Pipelines step type. Each acts as the pipeline's execution role against
the sandbox endpoint (so a permission the role lacks fails the step as on AWS), runs scripts as
subprocesses with container paths mapped to a per-step directory, and returns the step's
properties (what `Get: Steps.X...` reads) and its metadata (what ListPipelineExecutionSteps shows).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.engine import expressions, instances, network, preload, runtime

ENGINE_DIR = Path(__file__).resolve().parent
CONTAINER_ROOT = "/opt/ml/"


class StepFailed(Exception):
    """The step failed; the message is its FailureReason."""


class StepStopped(Exception):
    """StopPipelineExecution interrupted the step."""


@dataclass
class StepResult:
    properties: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


@dataclass
class StepContext:
    """What a step runner knows about the execution it belongs to."""

    account: str
    region: str
    execution_id: str
    execution_arn: str
    pipeline_name: str
    role_arn: str
    workdir: Path
    expr: expressions.Context
    stop: threading.Event
    step_name: str = ""
    metadata: dict = field(default_factory=dict)  # known before the step ends, kept if it fails
    _creds: dict = field(default_factory=dict)

    def credentials(self, role_arn: str | None = None, service: str = "sagemaker.amazonaws.com") -> dict:
        role_arn = role_arn or self.role_arn
        key = (role_arn, service)
        if key not in self._creds:
            try:
                self._creds[key] = runtime.role_credentials(
                    role_arn, service, f"SageMaker-{self.execution_id}", self.region
                )
            except runtime.RoleNotAssumable as exc:
                raise StepFailed(f"ClientError: {exc}") from None
        return self._creds[key]

    def client(self, service: str, creds: dict | None = None) -> Any:
        return runtime.client(service, creds or self.credentials(), self.region)

    def job_name(self, suffix_len: int = 10) -> str:
        """AWS names a pipeline's jobs pipelines-<execution id>-<step>-<random>, at most 63 characters."""
        rand = "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=suffix_len))
        step = re.sub(r"[^A-Za-z0-9-]", "-", self.step_name)
        room = 63 - len(f"pipelines-{self.execution_id}--{rand}")
        return f"pipelines-{self.execution_id}-{step[: max(room, 1)]}-{rand}"

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def step_dir(self, *parts: str) -> Path:
        path = self.workdir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_instance(self, argv: list[str], *, env: dict, count: int, job_environment: dict, **kwargs: Any) -> str:
        """run_process for one of a job's `count` instances: on cores of its own when the sandbox holds
        instances to theirs (instances.instance_cores), its thread pools sized to its share of the machine
        unless the job's own environment sets them."""
        with instances.instance_cores() as cores:
            env = {**env, **instances.thread_limit(count, job_environment, cores)}
            return self.run_process(argv, env=env, cores=cores, **kwargs)

    def run_process(
        self,
        argv: list[str],
        *,
        env: dict,
        cwd: Path,
        timeout: float,
        log_group: str,
        log_stream: str,
        isolated: bool = False,
        cores: list[int] | None = None,
    ) -> str:
        """Run a step's program; its combined output goes to the step's log stream. Returns the output.
        `isolated`: no network and no AWS credentials, as in a network-isolated container. `cores`: the
        only cores it may run on (instances.instance_cores), or None for all of them."""
        if isolated:
            argv = [sys.executable, str(ENGINE_DIR / "isolated.py"), *argv[1:]]
            env = {k: v for k, v in env.items() if k not in runtime.CREDENTIAL_VARIABLES}
        zygote = runtime.zygote() if preload.enabled() and preload.runnable(argv) else None
        log_path = self.step_dir() / f"output-{uuid.uuid4().hex[:8]}.log"
        proc: preload.Child | subprocess.Popen
        if zygote is not None:
            proc = zygote.start(argv, env, str(cwd), str(log_path), cores)
        else:
            with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(
                    argv,
                    cwd=str(cwd),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if cores is not None:  # before it starts any thread of its own: its threads inherit the set
                os.sched_setaffinity(proc.pid, cores)
        deadline = time.monotonic() + timeout
        stopped = timed_out = False
        while proc.poll() is None:
            if self.stop.is_set():
                stopped = True
            elif time.monotonic() > deadline:
                timed_out = True
            if stopped or timed_out:
                proc.kill()
                break
            if zygote is None:
                time.sleep(0.05)
        if isinstance(proc, subprocess.Popen):
            proc.wait()
        else:
            while proc.poll(1.0) is None:
                pass
        output = log_path.read_bytes().decode(errors="replace")
        runtime.write_log(self.account, self.region, log_group, log_stream, output)
        if stopped:
            raise StepStopped()
        if timed_out:
            raise StepFailed(f"ClientError: the job exceeded MaxRuntimeInSeconds ({timeout:.0f}s)")
        if proc.returncode != 0:
            raise StepFailed(
                f"AlgorithmError: {_last_error_line(output)} (exit code {proc.returncode}; "
                f"see log stream {log_group}/{log_stream})"
            )
        return output


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _client_error(exc) -> StepFailed:
    err = exc.response.get("Error", {})
    if not err.get("Code"):  # a query-protocol error body on a REST service: botocore files it elsewhere
        err = (exc.response.get("Errors") or {}).get("Error") or {
            "Code": {403: "AccessDenied", 404: "NotFound"}.get(
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"), "Unknown"
            ),
            "Message": "",
        }
    return StepFailed(
        f"ClientError: An error occurred ({err.get('Code')}) when calling the "
        f"{exc.operation_name} operation: {err.get('Message')}"
    )


def _call(func, **kwargs):
    from botocore.exceptions import ClientError

    try:
        return func(**{k: v for k, v in kwargs.items() if v is not None})
    except ClientError as exc:
        raise _client_error(exc) from None


def _record_job(func, **kwargs):
    """Create the job's record in the sandbox as the role (a denied permission fails the step);
    moto validating a field differently from AWS must not."""
    from botocore.exceptions import ClientError, ParamValidationError

    try:
        return func(**{k: v for k, v in kwargs.items() if v is not None})
    except ClientError as exc:
        failure = _client_error(exc)
        if "AccessDenied" in str(failure):
            raise failure from None
    except ParamValidationError:
        pass
    return None


def map_container_paths(value: Any, root: Path) -> Any:
    if isinstance(value, str) and value.startswith(CONTAINER_ROOT):
        return str(root) + value
    if isinstance(value, list):
        return [map_container_paths(v, root) for v in value]
    if isinstance(value, dict):
        return {k: map_container_paths(v, root) for k, v in value.items()}
    return value


def _python(argv: list[str]) -> list[str]:
    # a container's python3 is the sandbox's own interpreter here
    if argv and Path(argv[0]).name in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return argv


def _s3(ctx: StepContext, creds=None):
    return ctx.client("s3", creds)


def _network(args: dict, kind: str, ctx: StepContext, role_arn: str, operation: str) -> bool:
    """Refuse the job as SageMaker would when its VPC cannot be used; returns whether it runs isolated."""
    try:
        network.check(network.vpc_config(args, kind), role_arn, ctx.account, ctx.region, operation)
    except network.NetworkRefused as exc:
        raise StepFailed(str(exc)) from None
    return network.isolated(args, kind)


def _step_timeout(args: dict, default: float = 3600) -> float:
    return float((args.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or default)


# -- Processing -----------------------------------------------------------------------------------
def run_processing(step: dict, args: dict, ctx: StepContext) -> StepResult:
    from botocore.exceptions import ClientError

    app = args.get("AppSpecification") or {}
    entrypoint = app.get("ContainerEntrypoint")
    if not entrypoint:
        raise StepFailed(
            f"the sandbox runs Processing steps through their ContainerEntrypoint "
            f"(e.g. python3 script.py); image {app.get('ImageUri')} has none"
        )
    name = ctx.job_name()
    isolated = _network(args, "Processing", ctx, args.get("RoleArn") or ctx.role_arn, "CreateProcessingJob")
    ctx.metadata["ProcessingJob"] = {"Arn": ctx.arn("processing-job", name)}
    sm = ctx.client("sagemaker")
    _record_job(
        sm.create_processing_job,
        ProcessingJobName=name,
        RoleArn=args.get("RoleArn") or ctx.role_arn,
        # SageMaker receives every container argument as a string, a Float parameter's value included
        AppSpecification={
            **app,
            "ContainerArguments": [expressions.text(a) for a in app.get("ContainerArguments") or []],
        }
        if app.get("ContainerArguments")
        else app,
        ProcessingInputs=args.get("ProcessingInputs"),
        ProcessingOutputConfig=args.get("ProcessingOutputConfig"),
        ProcessingResources=args.get("ProcessingResources"),
        StoppingCondition=args.get("StoppingCondition"),
        Environment=args.get("Environment"),
        NetworkConfig=args.get("NetworkConfig"),
    )
    job_creds = ctx.credentials(args.get("RoleArn") or ctx.role_arn)
    s3 = _s3(ctx, job_creds)
    try:
        count = instances.instance_count((args.get("ProcessingResources") or {}).get("ClusterConfig"))
    except ValueError as exc:
        raise StepFailed(f"ClientError: ProcessingResources.ClusterConfig: {exc}") from None
    hosts = instances.host_names(count)
    # each instance has its own /opt/ml (one instance keeps the step's "container" directory)
    roots = {host: ctx.step_dir("container") if count == 1 else ctx.step_dir("instances", host) for host in hosts}
    for item in args.get("ProcessingInputs") or []:
        source = item.get("S3Input")
        if not source:
            raise StepFailed(f"input {item.get('InputName')}: only S3Input inputs run in the sandbox")
        try:
            _processing_input(s3, source, roots, hosts)
        except ClientError as exc:
            raise _client_error(exc) from None
        except (FileNotFoundError, ValueError) as exc:
            raise StepFailed(f"ClientError: input {item.get('InputName')}: {exc}") from None
    outputs = (args.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    job_config = _processing_job_config(args, name, ctx.arn("processing-job", name))
    for host, root in roots.items():
        for out in outputs:
            Path(map_container_paths(out["S3Output"]["LocalPath"], root)).mkdir(parents=True, exist_ok=True)
        config_dir = root / "opt/ml/config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "resourceconfig.json").write_text(json.dumps(instances.resource_config(host, hosts)))
        (config_dir / "processingjobconfig.json").write_text(json.dumps(job_config))

    def run_instance(host: str) -> None:
        root = roots[host]
        # SageMaker passes every container argument as a string, parameters of type Float included
        argv = _python(
            [
                expressions.text(a)
                for a in map_container_paths(list(entrypoint) + list(app.get("ContainerArguments") or []), root)
            ]
        )
        env = runtime.process_env(job_creds, ctx.region)
        env.update(
            {k: expressions.text(map_container_paths(v, root)) for k, v in (args.get("Environment") or {}).items()}
        )
        ctx.run_instance(
            argv,
            env=env,
            count=count,
            job_environment=args.get("Environment") or {},
            cwd=root,
            timeout=_step_timeout(args),
            log_group="/aws/sagemaker/ProcessingJobs",
            log_stream=f"{name}/{host}",
            isolated=isolated,
        )

    instances.run_all(run_instance, hosts)
    kms = (args.get("ProcessingOutputConfig") or {}).get("KmsKeyId")
    for out in outputs:
        # every instance's files go under the output's prefix; the same name from two instances: the later
        # host's copy is the one kept
        for root in roots.values():
            try:
                runtime.upload_dir(
                    s3, Path(map_container_paths(out["S3Output"]["LocalPath"], root)), out["S3Output"]["S3Uri"], kms
                )
            except ClientError as exc:
                raise _client_error(exc) from None
    properties = dict(
        args, ProcessingJobName=name, ProcessingJobArn=ctx.arn("processing-job", name), ProcessingJobStatus="Completed"
    )
    files = {}
    for pf in step.get("PropertyFiles") or []:
        out = next((o for o in outputs if o.get("OutputName") == pf.get("OutputName")), None)
        if out is None:
            raise StepFailed(f"property file {pf.get('PropertyFileName')}: no output named {pf.get('OutputName')}")
        candidates = [
            Path(map_container_paths(out["S3Output"]["LocalPath"], root)) / pf["FilePath"] for root in roots.values()
        ]
        path = next((c for c in reversed(candidates) if c.exists()), candidates[0])  # what the upload kept
        try:
            files[pf["PropertyFileName"]] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StepFailed(
                f"property file {pf['PropertyFileName']}: cannot read {pf['FilePath']} "
                f"from output {pf['OutputName']}: {exc}"
            ) from None
    properties["PropertyFiles"] = files
    return StepResult(properties, {"ProcessingJob": {"Arn": properties["ProcessingJobArn"]}})


def _processing_input(s3, source: dict, roots: dict, hosts: list) -> None:
    """Download one S3Input into every instance: all of it (FullyReplicated) or each instance its shard
    (ShardedByS3Key, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html)."""
    uri = source["S3Uri"]
    objects = runtime.list_objects(s3, uri)
    if not objects:
        raise FileNotFoundError(f"no object at {uri}")
    targets = [Path(map_container_paths(source["LocalPath"], roots[host])) for host in hosts]
    if source.get("S3DataDistributionType") == "ShardedByS3Key":
        shares = dict(zip(hosts, instances.shard(objects, len(hosts)), strict=True))
        # each instance fetches its own share, as each instance does on AWS (one with none: an empty directory)
        instances.run_all(
            lambda host: runtime.download_objects(s3, uri, shares[host], targets[hosts.index(host)]), hosts
        )
        return
    runtime.download_objects(s3, uri, objects, targets[0])
    for target in targets[1:]:  # the same bytes every instance would download
        shutil.copytree(targets[0], target, dirs_exist_ok=True)


def _processing_job_config(args: dict, name: str, arn: str) -> dict:
    """/opt/ml/config/processingjobconfig.json: the job's CreateProcessingJob request as the container sees it."""
    app = args.get("AppSpecification") or {}
    return {
        "ProcessingJobArn": arn,
        "ProcessingJobName": name,
        "AppSpecification": {
            "ImageUri": app.get("ImageUri"),
            "ContainerEntrypoint": app.get("ContainerEntrypoint"),
            "ContainerArguments": [expressions.text(a) for a in app.get("ContainerArguments") or []] or None,
        },
        "Environment": {k: expressions.text(v) for k, v in (args.get("Environment") or {}).items()},
        "ProcessingInputs": args.get("ProcessingInputs") or [],
        "ProcessingOutputConfig": args.get("ProcessingOutputConfig") or {},
        "ProcessingResources": args.get("ProcessingResources") or {},
        "RoleArn": args.get("RoleArn"),
        "StoppingCondition": args.get("StoppingCondition") or {},
    }


# -- Training (script mode) -----------------------------------------------------------------------
def _decode_hp(value):
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def train_once(args: dict, ctx: StepContext, name: str, hyperparameters: dict, isolated: bool = False) -> dict:
    """Run one script-mode training job; returns its DescribeTrainingJob-like properties."""
    from botocore.exceptions import ClientError

    hps = {k: _decode_hp(v) for k, v in (hyperparameters or {}).items()}
    program, submit_dir = hps.get("sagemaker_program"), hps.get("sagemaker_submit_directory")
    algo = args.get("AlgorithmSpecification") or {}
    if not program or not submit_dir:
        raise StepFailed(
            f"the sandbox runs script-mode training only (sagemaker_program and "
            f"sagemaker_submit_directory hyperparameters); image {algo.get('TrainingImage')} "
            f"has no entry point"
        )
    role = args.get("RoleArn") or ctx.role_arn
    creds = ctx.credentials(role)
    s3 = _s3(ctx, creds)
    root = ctx.step_dir(name)
    code_dir, model_dir = root / "code", root / "opt/ml/model"
    output_dir = root / "opt/ml/output/data"
    for d in (code_dir, model_dir, output_dir):
        d.mkdir(parents=True, exist_ok=True)
    try:
        channels = {}
        for channel in args.get("InputDataConfig") or []:
            cname = channel["ChannelName"]
            target = root / "opt/ml/input/data" / cname
            runtime.download(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], target)
            channels[cname] = target
        if str(submit_dir).startswith("s3://"):
            bucket, key = runtime.split_s3(submit_dir)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        else:  # network isolation: the code came as the "code" input channel
            body = Path(map_container_paths(str(submit_dir), root)).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            tar.extractall(code_dir, filter="data")
    except ClientError as exc:
        raise _client_error(exc) from None
    except (FileNotFoundError, ValueError, tarfile.TarError) as exc:
        raise StepFailed(f"ClientError: {exc}") from None
    user_hps = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
    env = runtime.process_env(creds, ctx.region)
    env.update({f"SM_CHANNEL_{c.upper()}": str(p) for c, p in channels.items()})
    env.update({f"SM_HP_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in user_hps.items()})
    env.update(
        {
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir),
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_HPS": json.dumps(user_hps),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_NUM_CPUS": "1",
            "SM_NUM_GPUS": "0",
            "SM_MODULE_DIR": str(submit_dir),
            "SM_USER_ENTRY_POINT": program,
            "TRAINING_JOB_NAME": name,
            "PYTHONPATH": str(code_dir),
        }
    )
    argv = [sys.executable, str(code_dir / program)]
    for k, v in user_hps.items():
        argv += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    output = ctx.run_instance(
        argv,
        env=env,
        count=1,
        job_environment=args.get("Environment") or {},
        cwd=code_dir,
        timeout=_step_timeout(args),
        log_group="/aws/sagemaker/TrainingJobs",
        log_stream=f"{name}/algo-1",
        isolated=isolated,
    )
    metrics = []
    for definition in algo.get("MetricDefinitions") or []:
        found = re.findall(definition["Regex"], output)
        if found:
            value = found[-1][0] if isinstance(found[-1], tuple) else found[-1]
            try:
                metrics.append({"MetricName": definition["Name"], "Value": float(value), "Timestamp": time.time()})
            except ValueError:
                pass
    out_cfg = args.get("OutputDataConfig") or {}
    artifact = f"{out_cfg['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"
    tarball = root / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    try:
        runtime.upload_file(s3, tarball, artifact, out_cfg.get("KmsKeyId"))
    except ClientError as exc:
        raise _client_error(exc) from None
    return {
        "TrainingJobName": name,
        "TrainingJobArn": ctx.arn("training-job", name),
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": artifact},
        "FinalMetricDataList": metrics,
        "HyperParameters": hyperparameters,
        "AlgorithmSpecification": algo,
        "OutputDataConfig": out_cfg,
        "RoleArn": role,
    }


def run_training(_step: dict, args: dict, ctx: StepContext) -> StepResult:
    name = ctx.job_name()
    isolated = _network(args, "Training", ctx, args.get("RoleArn") or ctx.role_arn, "CreateTrainingJob")
    ctx.metadata["TrainingJob"] = {"Arn": ctx.arn("training-job", name)}
    _record_job(
        ctx.client("sagemaker").create_training_job,
        TrainingJobName=name,
        AlgorithmSpecification=args.get("AlgorithmSpecification"),
        RoleArn=args.get("RoleArn") or ctx.role_arn,
        HyperParameters=args.get("HyperParameters"),
        InputDataConfig=args.get("InputDataConfig"),
        OutputDataConfig=args.get("OutputDataConfig"),
        ResourceConfig=args.get("ResourceConfig"),
        StoppingCondition=args.get("StoppingCondition"),
        VpcConfig=args.get("VpcConfig"),
        EnableNetworkIsolation=args.get("EnableNetworkIsolation"),
        EnableInterContainerTrafficEncryption=args.get("EnableInterContainerTrafficEncryption"),
    )
    props = train_once(args, ctx, name, args.get("HyperParameters") or {}, isolated)
    return StepResult(dict(args, **props), {"TrainingJob": {"Arn": props["TrainingJobArn"]}})


# -- Tuning ---------------------------------------------------------------------------------------
def _candidates(ranges: dict, count: int, strategy: str, seed: str) -> list[dict]:
    rng = random.Random(seed)
    cont = ranges.get("ContinuousParameterRanges") or []
    ints = ranges.get("IntegerParameterRanges") or []
    cats = ranges.get("CategoricalParameterRanges") or []
    if strategy == "Grid":
        axes = [[(c["Name"], v) for v in c["Values"]] for c in cats]
        axes += [[(r["Name"], str(v)) for v in range(int(r["MinValue"]), int(r["MaxValue"]) + 1)] for r in ints]
        return [dict(combo) for combo in itertools.islice(itertools.product(*axes), count)]
    out = []
    for _ in range(count):
        hp = {}
        for r in cont:
            lo, hi = float(r["MinValue"]), float(r["MaxValue"])
            if r.get("ScalingType") == "Logarithmic" and lo > 0:
                hp[r["Name"]] = str(round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 6))
            else:
                hp[r["Name"]] = str(round(rng.uniform(lo, hi), 6))
        for r in ints:
            hp[r["Name"]] = str(rng.randint(int(r["MinValue"]), int(r["MaxValue"])))
        for c in cats:
            hp[c["Name"]] = json.dumps(rng.choice(c["Values"]))
        out.append(hp)
    return out


def run_tuning(_step: dict, args: dict, ctx: StepContext) -> StepResult:
    config = args.get("HyperParameterTuningJobConfig") or {}
    definition = args.get("TrainingJobDefinition") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    metric, maximize = objective.get("MetricName"), objective.get("Type", "Maximize") == "Maximize"
    limit = int((config.get("ResourceLimits") or {}).get("MaxNumberOfTrainingJobs") or 1)
    tuning_name = f"{ctx.execution_id}-{ctx.step_name[:10]}-{uuid.uuid4().hex[:6]}"[:32]
    isolated = _network(args, "Tuning", ctx, definition.get("RoleArn") or ctx.role_arn, "CreateHyperParameterTuningJob")
    ctx.metadata["TuningJob"] = {"Arn": ctx.arn("hyper-parameter-tuning-job", tuning_name)}
    _record_job(
        ctx.client("sagemaker").create_hyper_parameter_tuning_job,
        HyperParameterTuningJobName=tuning_name,
        HyperParameterTuningJobConfig=config,
        TrainingJobDefinition=definition,
    )
    static = definition.get("StaticHyperParameters") or {}
    job_args = dict(definition, AlgorithmSpecification=definition.get("AlgorithmSpecification") or {})
    summaries = []
    for index, hp in enumerate(
        _candidates(config.get("ParameterRanges") or {}, limit, config.get("Strategy", "Bayesian"), ctx.execution_id),
        start=1,
    ):
        name = f"{tuning_name}-{index:03d}-{uuid.uuid4().hex[:8]}"
        props = train_once(job_args, ctx, name, {**static, **hp}, isolated)
        value = next((m["Value"] for m in props["FinalMetricDataList"] if m["MetricName"] == metric), None)
        if value is None:
            raise StepFailed(
                f"training job {name} emitted no value for the objective metric {metric} "
                f"(check the MetricDefinitions regex)"
            )
        summaries.append(
            {
                "TrainingJobName": name,
                "TrainingJobArn": props["TrainingJobArn"],
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": hp,
                "FinalHyperParameterTuningJobObjectiveMetric": {
                    "MetricName": metric,
                    "Value": value,
                    "Type": objective.get("Type"),
                },
                "ModelArtifacts": props["ModelArtifacts"],
            }
        )
    summaries.sort(key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], reverse=maximize)
    arn = ctx.arn("hyper-parameter-tuning-job", tuning_name)
    properties = dict(
        args,
        HyperParameterTuningJobName=tuning_name,
        HyperParameterTuningJobArn=arn,
        BestTrainingJob=summaries[0],
        TrainingJobSummaries=summaries,
    )
    return StepResult(properties, {"TuningJob": {"Arn": arn}})


# -- Model, RegisterModel -------------------------------------------------------------------------
def run_model(_step: dict, args: dict, ctx: StepContext) -> StepResult:
    name = ctx.job_name()
    kwargs = {k: v for k, v in args.items() if k != "ModelName"}
    kwargs.setdefault("ExecutionRoleArn", ctx.role_arn)
    _network(args, "Model", ctx, kwargs["ExecutionRoleArn"], "CreateModel")
    response = _call(ctx.client("sagemaker").create_model, ModelName=name, **kwargs)
    arn = response.get("ModelArn") or ctx.arn("model", name)
    return StepResult(dict(args, ModelName=name, ModelArn=arn), {"Model": {"Arn": arn}})


def run_register(_step: dict, args: dict, ctx: StepContext) -> StepResult:
    response = _call(ctx.client("sagemaker").create_model_package, **args)
    arn = response["ModelPackageArn"]
    return StepResult(dict(args, ModelPackageArn=arn), {"RegisterModel": {"Arn": arn}})


# -- Transform ------------------------------------------------------------------------------------
def run_transform(_step: dict, args: dict, ctx: StepContext) -> StepResult:
    from botocore.exceptions import ClientError

    name = ctx.job_name()
    ctx.metadata["TransformJob"] = {"Arn": ctx.arn("transform-job", name)}
    sm = ctx.client("sagemaker")
    try:
        model = sm.describe_model(ModelName=args["ModelName"])
    except ClientError as exc:
        raise _client_error(exc) from None
    # the transform's instances run in its model's VPC, with the model's role and isolation
    isolated = _network(model, "Model", ctx, model.get("ExecutionRoleArn") or ctx.role_arn, "CreateTransformJob")
    _record_job(
        sm.create_transform_job,
        TransformJobName=name,
        ModelName=args.get("ModelName"),
        TransformInput=args.get("TransformInput"),
        TransformOutput=args.get("TransformOutput"),
        TransformResources=args.get("TransformResources"),
        Environment=args.get("Environment"),
    )
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    environment = {**(container.get("Environment") or {}), **(args.get("Environment") or {})}
    program, submit_dir = environment.get("SAGEMAKER_PROGRAM"), environment.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if not program or not submit_dir:
        raise StepFailed(
            f"model {args['ModelName']}: the sandbox runs transforms through an inference script "
            f"(SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY in the container environment)"
        )
    creds = ctx.credentials(model.get("ExecutionRoleArn") or ctx.role_arn)
    s3 = _s3(ctx, creds)
    transform_input, out_cfg = args.get("TransformInput") or {}, args.get("TransformOutput") or {}
    try:
        count = instances.instance_count(args.get("TransformResources"))
    except ValueError as exc:
        raise StepFailed(f"ClientError: TransformResources: {exc}") from None
    split_type = transform_input.get("SplitType") or "None"
    if split_type not in ("None", "Line"):
        raise StepFailed(f"the sandbox splits transform input by Line or not at all (SplitType {split_type})")
    hosts = instances.host_names(count)
    # each instance has its own directories (one instance keeps the step's "transform" directory)
    roots = {host: ctx.step_dir("transform") if count == 1 else ctx.step_dir("transform", host) for host in hosts}
    try:
        source = transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        objects = runtime.list_objects(s3, source)
        if not objects:
            raise FileNotFoundError(f"no object at {source}")
        # the objects are spread over the instances by key; one object is never split across instances
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform.html)
        shares = dict(zip(hosts, instances.shard(objects, count), strict=True))
        busy = [host for host in hosts if shares[host]]  # an instance given no object stays idle

        def prepare(host: str) -> None:  # each instance fetches the model, the code and its objects
            root = roots[host]
            for d in ("code", "model", "output"):
                (root / d).mkdir(parents=True, exist_ok=True)
            for uri, target in ((submit_dir, root / "code"), (container.get("ModelDataUrl"), root / "model")):
                if not uri:
                    continue
                bucket, key = runtime.split_s3(uri)
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                    tar.extractall(target, filter="data")
            runtime.download_objects(s3, source, shares[host], root / "input")

        instances.run_all(prepare, busy)
    except ClientError as exc:
        raise _client_error(exc) from None
    except (FileNotFoundError, ValueError, KeyError, tarfile.TarError) as exc:
        raise StepFailed(f"ClientError: {exc}") from None
    content_type = transform_input.get("ContentType") or "text/csv"

    def run_instance(host: str) -> None:
        root = roots[host]
        env = runtime.process_env(creds, ctx.region)
        env.update({k: str(v) for k, v in environment.items()})
        env["PYTHONPATH"] = str(root / "code")
        argv = [
            sys.executable,
            str(ENGINE_DIR / "transform_runner.py"),
            str(root / "code"),
            program,
            str(root / "model"),
            str(root / "input"),
            str(root / "output"),
            content_type,
            out_cfg.get("Accept") or content_type,
            split_type,
            args.get("BatchStrategy") or "MultiRecord",
            str(args.get("MaxPayloadInMB", 6)),
            out_cfg.get("AssembleWith") or "None",
        ]
        ctx.run_instance(
            argv,
            env=env,
            count=count,
            job_environment=environment,
            cwd=root / "code",
            timeout=3600,
            log_group="/aws/sagemaker/TransformJobs",
            log_stream=f"{name}/{host}",
            isolated=isolated,
        )

    instances.run_all(run_instance, busy)
    try:
        for host in busy:
            runtime.upload_dir(s3, roots[host] / "output", out_cfg["S3OutputPath"], out_cfg.get("KmsKeyId"))
    except ClientError as exc:
        raise _client_error(exc) from None
    arn = ctx.arn("transform-job", name)
    return StepResult(
        dict(args, TransformJobName=name, TransformJobArn=arn, TransformJobStatus="Completed"),
        {"TransformJob": {"Arn": arn}},
    )


# -- Lambda ---------------------------------------------------------------------------------------
def run_lambda(step: dict, args: dict, ctx: StepContext) -> StepResult:
    from moto.awslambda.models import lambda_backends

    try:  # the SDK writes a parameterised function ARN as an expression
        function_arn = expressions.evaluate(step.get("FunctionArn"), ctx.expr)
    except expressions.EvaluationError as exc:
        raise StepFailed(str(exc)) from None
    if not isinstance(function_arn, str) or not function_arn:
        raise StepFailed("the Lambda step names no FunctionArn")
    parts = function_arn.split(":")
    account, region = (parts[4], parts[3]) if function_arn.startswith("arn:") else (ctx.account, ctx.region)
    try:
        function = lambda_backends[account][region].get_function(function_arn)
    except Exception:
        raise StepFailed(f"ClientError: Function not found: {function_arn}") from None
    ctx.metadata["Lambda"] = {"Arn": function.function_arn}
    creds = ctx.credentials(function.role, service="lambda.amazonaws.com")
    root = ctx.step_dir("lambda")
    (root / "code.zip").write_bytes(function.code_bytes)
    (root / "event.json").write_text(json.dumps(args))
    env = runtime.process_env(creds, region)
    env.update((function.environment_vars or {}) if hasattr(function, "environment_vars") else {})
    env.update({"AWS_LAMBDA_FUNCTION_NAME": function.function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"})
    stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    argv = [
        sys.executable,
        str(ENGINE_DIR / "lambda_runner.py"),
        str(root / "code.zip"),
        function.handler,
        str(root / "event.json"),
        str(root / "result.json"),
    ]
    try:
        ctx.run_process(
            argv,
            env=env,
            cwd=root,
            timeout=float(function.timeout or 60),
            log_group=f"/aws/lambda/{function.function_name}",
            log_stream=stream,
        )
    except StepFailed:
        result = _read_json(root / "result.json")
        if result and "errorMessage" in result:
            raise StepFailed(f"{result.get('errorType', 'Error')}: {result['errorMessage']}") from None
        raise
    result = _read_json(root / "result.json")
    if not isinstance(result, dict):
        result = {}
    outputs = {}
    for out in step.get("OutputParameters") or []:
        key = out["OutputName"]
        if key not in result:
            raise StepFailed(
                f"the Lambda function's response has no output parameter '{key}' "
                f"(it returned keys: {', '.join(sorted(result)) or 'none'})"
            )
        outputs[key] = result[key]
    metadata = {
        "Lambda": {
            "Arn": function.function_arn,
            "OutputParameters": [{"Name": k, "Value": _as_text(v)} for k, v in outputs.items()],
        }
    }
    return StepResult({"OutputParameters": outputs, "FunctionArn": function.function_arn}, metadata)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# -- Condition, Fail ------------------------------------------------------------------------------
def run_condition(step: dict, _args: dict, ctx: StepContext) -> StepResult:
    raw = step.get("Arguments") or {}
    try:
        outcome = all(expressions.condition(c, ctx.expr) for c in raw.get("Conditions") or [])
    except expressions.EvaluationError as exc:
        raise StepFailed(str(exc)) from None
    return StepResult({"Outcome": outcome}, {"Condition": {"Outcome": "True" if outcome else "False"}})


def run_fail(_step: dict, args: dict, _ctx: StepContext) -> StepResult:
    message = args.get("ErrorMessage")
    message = message if isinstance(message, str) else json.dumps(message)
    raise StepFailed(message or "Fail step reached")


RUNNERS = {
    "Processing": run_processing,
    "Training": run_training,
    "Tuning": run_tuning,
    "Model": run_model,
    "CreateModel": run_model,
    "RegisterModel": run_register,
    "Transform": run_transform,
    "Lambda": run_lambda,
    "Condition": run_condition,
    "Fail": run_fail,
}

# Arguments evaluated lazily by the runner itself (a Condition's branches are steps, not values).
RAW_ARGUMENTS = {"Condition"}


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
