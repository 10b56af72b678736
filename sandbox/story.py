"""The README's main job: the whole promotion story on the embedded sandbox, each part through the real
CLI commands a team would type (or Jenkins and EventBridge would run), narrated, ending with a summary.

What is not the toolkit's to do (Jenkins' own agent identity, a drifted batch landing in the input
bucket) the story does itself with plain boto3 against the sandbox, and says so.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_core.config import load_environment
from mlops_core.session import Sessions
from pipelines import datasets
from promote.registry import lineage, list_versions
from sandbox import client

BIN = Path(sys.executable).parent
DATA_SCIENTIST = "dana"
APPROVER = "alex"


def plain(text: str, *, bold: bool = False, fg: str | None = None, err: bool = False) -> None:  # noqa: ARG001
    """Unstyled output, the default when no terminal styling is passed in (bold/fg are ignored)."""
    print(text, file=sys.stderr if err else sys.stdout)


class StoryFailed(Exception):
    """A stage did not end as the story needs; the message says which and why."""


@dataclass
class Story:
    env_dir: str | None
    work: Path
    stages: list = field(default_factory=list)  # (title, outcome, seconds)
    artefacts: list = field(default_factory=list)  # (what, where)
    versions: list = field(default_factory=list)  # (version, status, rows, parts, part names, auc, sha256)
    # say(text, bold=False, fg=None, err=False): the `sandbox demo` command passes click.secho
    say: Callable[..., None] = plain

    # -- running commands -----------------------------------------------------------------------
    def cli(
        self,
        title: str,
        *argv: str,
        env: dict | None = None,
        expect: int = 0,
        capture: bool = False,
        show: bool = True,
        person: str | None = None,
    ) -> subprocess.CompletedProcess:
        command = [str(BIN / argv[0]), *argv[1:]]
        if self.env_dir and argv[0] in ("bootstrap-account", "run-pipeline", "promote") and "--env" in argv:
            command += ["--env-dir", self.env_dir]
        shown = " ".join(argv)
        self.say(f"\n== {title}", bold=True)
        who = "   # as Jenkins, via cross-account-jenkins-role" if env else f"   # as {person}" if person else ""
        self.say(f"$ {shown}{who}")
        # Separation of duties compares people by the STS source identity they log in with (MLOPS_AS on
        # the sandbox; SSO/SAML/OIDC on AWS), never by user or session names.
        people = {"MLOPS_AS": person} if person else {}
        start = time.monotonic()
        result = subprocess.run(
            command, env={**os.environ, **people, **(env or {})}, text=True, capture_output=capture or not show
        )
        seconds = time.monotonic() - start
        if capture and show and result.stdout:
            self.say(result.stdout.rstrip())
        if result.returncode != expect:
            if result.stderr and (capture or not show):
                self.say(result.stderr.rstrip(), err=True)
            self.stages.append((title, f"FAILED ({result.returncode})", seconds))
            raise StoryFailed(f"`{shown}` exited {result.returncode}, expected {expect}")
        self.stages.append((title, "ok" if expect == 0 else f"ok (exit {expect}, as expected)", seconds))
        return result

    def step(self, title: str, func: Callable[[], Any]) -> Any:
        self.say(f"\n== {title}", bold=True)
        start = time.monotonic()
        try:
            value = func()
        except Exception as exc:
            self.stages.append((title, "FAILED", time.monotonic() - start))
            raise StoryFailed(f"{title}: {exc}") from exc
        self.stages.append((title, "ok", time.monotonic() - start))
        return value


def _sandbox_session(label: str, region: str):
    import boto3

    status = client.running()
    if status is None:
        raise StoryFailed("the sandbox stopped while the story ran")
    account = next(a for a in status["accounts"] if a["label"] == label)
    return boto3.Session(region_name=region, **account["credentials"]), status["endpoint"]


def _jenkins_agent_credentials(env) -> dict:
    """The Jenkins agent's own identity lives in the Jenkins account, outside the toolkit: create it in
    the sandbox (a role that may only assume cross-account deploy roles) and return its credentials as
    the AWS_* variables a `withAWS` block would leave behind, before the role switch."""
    session, endpoint = _sandbox_session("jenkins", env.region)
    iam = session.client("iam", endpoint_url=endpoint)
    name = env.jenkins.principal_arn.split("/")[-1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{env.jenkins.account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    may_deploy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                # the deploy roles require a source identity, which the toolkit sets on this first hop
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": [env.role_arn("jenkins", account) for account in env.workload_accounts.values()],
            }
        ],
    }
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    iam.put_role_policy(RoleName=name, PolicyName="assume-deploy-roles", PolicyDocument=json.dumps(may_deploy))
    creds = session.client("sts", endpoint_url=endpoint).assume_role(
        RoleArn=env.jenkins.principal_arn, RoleSessionName="jenkins-agent"
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
        "MLOPS_SANDBOX_CREDENTIALS": "env",
        "MLOPS_AS": "jenkins",  # the toolkit sets it as source identity on its first AssumeRole
        "BUILD_TAG": "jenkins-mlops-demo-1",
    }


def _objects(env, bucket: str, prefix: str, account: str | None = None) -> list[str]:
    """The S3 URIs under a prefix, read as the account's admin: where the story's artefacts landed."""
    session, endpoint = _sandbox_session(account or env.account, env.region)
    pages = (
        session.client("s3", endpoint_url=endpoint)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=prefix)
    )
    return [f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", [])]


def _drifted_batch_arrives(env) -> str:
    """A new batch lands at the inference input, its features shifted: the world changed."""

    session, endpoint = _sandbox_session(env.account, env.region)
    s3 = session.client("s3", endpoint_url=endpoint)
    uri = datasets.locate(env, env.inference.input, "inference.input").s3_uri
    bucket, key = uri[5:].split("/", 1)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=datasets.builtin_csv("breast-cancer-batch-drifted"),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=env.kms_key_alias,
    )
    return uri


def _s3(env):
    session, endpoint = _sandbox_session(env.account, env.region)
    return session.client("s3", endpoint_url=endpoint)


def _put(env, s3, key: str, body: bytes) -> str:
    s3.put_object(
        Bucket=env.buckets.artifacts, Key=key, Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=env.kms_key_alias
    )
    return f"s3://{env.buckets.artifacts}/{key}"


def _deliver_training_part(story: Story, env, delivery: str, builtin: str) -> str:
    """The data team delivers one part of training data to prod's dataset prefix, then its _SUCCESS marker
    (what Spark, Glue or EMR write when a job's output is complete): the delivery counts from then on."""
    s3 = _s3(env)
    prefix = env.training.dataset[len(f"s3://{env.buckets.artifacts}/") :] + f"{delivery}/"
    part = _put(env, s3, prefix + "part-0001.csv", datasets.builtin_csv(builtin))
    _put(env, s3, prefix + "_SUCCESS", b"")
    story.say(f"{part}\n{part.rsplit('/', 1)[0]}/_SUCCESS")
    return part


def _executions(env, which: str) -> list[str]:
    session, endpoint = _sandbox_session(env.account, env.region)
    sm = session.client("sagemaker", endpoint_url=endpoint)
    pages = sm.get_paginator("list_pipeline_executions").paginate(PipelineName=env.pipelines[which])
    return [e["PipelineExecutionArn"] for page in pages for e in page["PipelineExecutionSummaries"]]


def _no_training_started(story: Story, env) -> None:
    time.sleep(1.0)  # S3 events are delivered asynchronously, as on AWS: give a wrong rule time to fire
    runs = _executions(env, "train")
    if runs:
        raise StoryFailed(f"a training delivery started {len(runs)} run(s) in prod; prod retrains on drift only")
    story.say("no training run: new data alone does not make the approved model stale")


def _new_execution(story: Story, env, which: str, before: set, uri: str, cause: str) -> str:
    """The execution of `which` that `uri` landing started (S3 -> EventBridge -> Lambda is asynchronous)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        started = [arn for arn in _executions(env, which) if arn not in before]
        if started:
            story.say(f"{uri} started {started[0]}")
            return started[0]
        time.sleep(0.1)
    kind = "model-quality" if which == "quality" else which
    raise StoryFailed(f"{cause} started no {kind} run within 30s")


def _drop_into_inbox(story: Story, env, name: str, body: bytes) -> str:
    """A batch lands in the inference inbox; the arrival rule starts inference on exactly that batch."""
    before = set(_executions(env, "inference"))
    inbox = next(a for a in env.arrivals if a.pipeline == "inference")
    uri = _put(env, _s3(env), inbox.prefix + name, body)
    return _new_execution(story, env, "inference", before, uri, f"dropping {uri} into the inbox")


def _malformed_batch() -> bytes:
    """A batch an upstream export broke: its third line has more fields than the header."""
    header, first = datasets.builtin_csv("breast-cancer-batch").split(b"\n")[:2]
    return header + b"\n" + first + b"\n" + b",".join([b"1"] * (header.count(b",") + 5)) + b"\n"


def _malformed_batch_notified_not_retrained(story: Story, env) -> None:
    time.sleep(1.0)
    train_runs = _executions(env, "train")
    if len(train_runs) != 1:
        raise StoryFailed(f"the malformed batch started training ({len(train_runs)} train runs, expected 1)")
    deadline = time.monotonic() + 30  # EventBridge delivers asynchronously, later on a loaded machine
    while True:
        sent = [
            d
            for d in client.call("events", {})["deliveries"]
            # prod.yaml's notification rules for a batch that breaks the contract, or any other non-drift failure
            if d["rule"].endswith(("-batch-invalid", "-inference-failed")) and d["status"] == "delivered"
        ]
        if sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not sent:
        raise StoryFailed("no notification was sent for the failed inference run within 30s")
    story.say(f"notified by rule {sent[-1]['rule']}; still {len(train_runs)} training run (the drift retrain)")


def _versions(story: Story, env) -> None:
    """Each version's data: rows and parts, from the registry (what `promote lineage` shows), read as
    the approver, who logs in with a source identity like every person of the story."""
    sessions = Sessions(env, identity=APPROVER)
    for row in list_versions(env, sessions):
        info = lineage(env, sessions, row["version"])
        data = info["dataset"]
        parts = ", ".join(p["key"].rsplit("/", 2)[-2] + "/" + p["key"].rsplit("/", 1)[-1] for p in data["parts"])
        auc = info["metrics"].get("auc")
        story.versions.append(
            (row["version"], info["status"], data.get("rows"), len(data["parts"]), parts, auc, data.get("sha256"))
        )
        story.say(f"v{row['version']}: {data.get('rows')} rows in {len(data['parts'])} part(s)")


def run_story(env_dir: str | None = None, say: Callable[..., None] | None = None) -> int:
    """Run every stage; stop at the first that fails. Returns the exit code."""

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mlops-story-"))
    story = Story(env_dir=env_dir, work=work, say=say or plain)
    try:
        load_environment("dev", env_dir=env_dir)  # a broken dev.yaml stops the story before it starts
        prod = load_environment("prod", env_dir=env_dir)
        _tell(story, prod)
    except StoryFailed as exc:
        story.say(f"\nthe story stopped: {exc}", fg="red", err=True)
        _summary(story, started)
        return 1
    _summary(story, started)
    return 0


def _tell(story: Story, prod) -> None:
    story.cli("Start the sandbox: one AWS per account on 127.0.0.1", "sandbox", "up")
    story.cli("Reset it, so the story starts from empty accounts", "sandbox", "reset")

    story.cli("An admin bootstraps the dev account", "bootstrap-account", "--env", "dev", "--account", "dev", "--apply")
    story.cli(
        "An admin bootstraps the stage (pre-prod) account",
        "bootstrap-account",
        "--env",
        "stage",
        "--account",
        "stage",
        "--apply",
    )
    story.cli(
        "An admin bootstraps the prod account", "bootstrap-account", "--env", "prod", "--account", "prod", "--apply"
    )
    story.cli(
        "An admin bootstraps the registry account",
        "bootstrap-account",
        "--env",
        "prod",
        "--account",
        "registry",
        "--apply",
    )
    story.cli(
        "Re-running a bootstrap changes nothing",
        "bootstrap-account",
        "--env",
        "prod",
        "--account",
        "registry",
        "--apply",
    )

    story.cli(
        "A data scientist trains in dev: the train pipeline runs step by step",
        "run-pipeline",
        "--env",
        "dev",
        "--pipeline",
        "train",
        "--start",
        "--wait",
        person=DATA_SCIENTIST,
    )
    story.cli(
        "Version 1 waits in the central registry", "promote", "status", "--env", "dev", capture=True, person=APPROVER
    )
    report_dir = story.work / "reports"
    story.cli(
        "The approver reads the approval report",
        "promote",
        "report",
        "--env",
        "dev",
        "--version",
        "1",
        "--out",
        str(report_dir),
        person=APPROVER,
    )
    for path in sorted(report_dir.rglob("*.*")):
        story.artefacts.append((f"approval report ({path.suffix[1:]})", str(path)))
    story.cli(
        f"{DATA_SCIENTIST}, who trained it, may not approve it (separation of duties)",
        "promote",
        "approve",
        "--env",
        "dev",
        "--version",
        "1",
        "--reason",
        "looks good to me",
        person=DATA_SCIENTIST,
        expect=1,
    )
    story.cli(
        "The approver approves version 1 (as the approver role in the registry account)",
        "promote",
        "approve",
        "--env",
        "dev",
        "--version",
        "1",
        "--reason",
        "AUC above threshold; report reviewed",
        person=APPROVER,
    )

    for uri in _objects(prod, prod.buckets.registry, "sealed/dev/", account="registry"):
        story.artefacts.append(("version 1 as sealed (write-once, its sha256 on the version)", uri))

    part1 = story.step(
        "The data team delivers training part 1 to prod (the data v1 was trained on)",
        lambda: _deliver_training_part(story, prod, "delivery-0001", "breast-cancer"),
    )
    story.artefacts.append(("training part 1 (prod)", part1))

    jenkins = story.step(
        "Jenkins' agent identity (outside the toolkit) is set up in its own account",
        lambda: _jenkins_agent_credentials(prod),
    )
    story.cli("Jenkins promotes the pipelines to prod", "run-pipeline", "--env", "prod", env=jenkins)
    story.cli(
        "Jenkins applies mlops-infra/: schedule, retrain rule, arrival triggers, notifications",
        "promote",
        "infra",
        "--env",
        "prod",
        "--apply",
        env=jenkins,
    )

    story.cli(
        f"A day passes on the sandbox clock: the inference schedule ({prod.schedule}) fires",
        "sandbox",
        "tick",
        "--by",
        "1d",
    )
    story.cli(
        "Scheduled inference in prod runs with version 1",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "inference",
    )
    for uri in _objects(prod, prod.buckets.artifacts, f"{prod.name}/predictions/"):
        story.artefacts.append(("predictions (record id, probability, label, model version)", uri))

    part2 = story.step(
        "Training part 2 arrives in prod (the scored batch, now with its diagnoses)",
        lambda: _deliver_training_part(story, prod, "delivery-0002", "breast-cancer-part2"),
    )
    story.artefacts.append(("training part 2 (prod)", part2))
    story.step(
        "No run starts: prod retrains when the model is stale, not on delivery",
        lambda: _no_training_started(story, prod),
    )

    uri = story.step("A drifted batch arrives at the inference input", lambda: _drifted_batch_arrives(prod))
    story.artefacts.append(("drifted input batch", uri))
    story.cli("Another day: the next scheduled run", "sandbox", "tick", "--by", "1d")
    story.cli(
        "Inference fails: DataDriftDetected",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "inference",
        expect=1,
    )
    story.cli(
        "The retrain rule started the train pipeline in prod: it reads part 1 + part 2",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "train",
    )
    story.cli(
        "Version 2 waits for approval; version 1 is the one that ran in prod (RUNS IN)",
        "promote",
        "status",
        "--env",
        "prod",
        capture=True,
        person=APPROVER,
    )
    story.cli(
        "Version 2's lineage lists the exact parts it was trained on",
        "promote",
        "lineage",
        "--env",
        "prod",
        "--version",
        "2",
        capture=True,
        person=APPROVER,
    )

    batch = story.step(
        "A clean batch is dropped into the inbox: inference starts at once, no schedule",
        lambda: _drop_into_inbox(story, prod, "batch-0002.csv", datasets.builtin_csv("breast-cancer-batch")),
    )
    story.cli(
        "Inference scores exactly that batch with the approved version 1",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "inference",
        "--execution",
        batch,
    )
    bad = story.step(
        "A malformed batch is dropped into the inbox",
        lambda: _drop_into_inbox(story, prod, "batch-0003.csv", _malformed_batch()),
    )
    story.cli(
        "Inference fails on the malformed batch",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "inference",
        "--execution",
        bad,
        expect=1,
    )
    story.step(
        "The team is told why in one sentence, and no retraining starts",
        lambda: _malformed_batch_notified_not_retrained(story, prod),
    )
    story.cli("EventBridge deliveries, SNS notification to the approvers among them", "sandbox", "events", capture=True)
    for uri in _objects(prod, prod.buckets.artifacts, f"{prod.name}/{prod.pipelines['inference']}/"):
        if uri.endswith("constraint_violations.json"):
            story.artefacts.append(("drift check violations (one per inference run)", uri))
    story.artefacts.append(("SNS notifications and every rule delivery", "sandbox events"))

    _model_quality(story, prod, jenkins)
    story.step("Each version's data, from the registry", lambda: _versions(story, prod))

    chart = story.work / "monitor.png"
    shown = story.cli(
        "The view across runs: every run with its metrics (CloudWatch), the approvals and the retrains they led to",
        "promote",
        "monitor",
        "--env",
        "prod",
        "--chart",
        str(chart),
        capture=True,
        person=APPROVER,
    )
    story.step("The drift that started the retrain is on the chart", lambda: _drift_on_the_chart(shown.stdout))
    story.artefacts.append(("monitoring chart: drift and quality over time, approvals and retrains marked", str(chart)))


def _drift_on_the_chart(table: str) -> None:
    """The drifted run shows its worst feature against its bound, and the retrain it started follows it."""
    drifted = [line for line in table.splitlines() if "Failed: DataDriftDetected" in line]
    if not drifted or not re.search(r"\d/\d[\d.]* \([\d.]+x\)", drifted[0]):  # feature distance/bound (ratio)
        raise StoryFailed("the drifted inference run shows no drift reading: were its metrics published?")
    if not any("retrain (train) on drift" in line for line in table.splitlines()):
        raise StoryFailed("promote monitor shows no retrain after the drift")


def _labels_arrive(env, wrong_share: float, name: str) -> str:
    """Ground truth for the batch version 1 scored lands under <env>/ground-truth/<its inference run>/: the
    labelling team's upload, outside the toolkit. With `wrong_share`, that share of the labels disagree with
    the model's view of the world (the world changed): the model underperforms on them."""
    import pandas as pd

    # version 1 scored this batch twice (the schedule, then the inbox drop): either run's record ids do
    predictions = next(
        u for u in _objects(env, env.buckets.artifacts, f"{env.name}/predictions/") if u.endswith(".out")
    )
    execution = predictions.split("/")[-2]
    truth = pd.read_csv(io.BytesIO(datasets.builtin_csv("breast-cancer-part2")))[datasets.TARGET].tolist()
    every = round(1 / wrong_share) if wrong_share else 0
    rows = [(i, 1 - t if every and i % every == 0 else t) for i, t in enumerate(truth, start=1)]
    session, endpoint = _sandbox_session(env.account, env.region)
    key = f"{env.name}/ground-truth/{execution}/{name}"
    session.client("s3", endpoint_url=endpoint).put_object(
        Bucket=env.buckets.artifacts,
        Key=key,
        Body=("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows)).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=env.kms_key_alias,
    )
    return f"s3://{env.buckets.artifacts}/{key}"


def _quality_run_for(story: Story, env, wrong_share: float, name: str) -> str:
    """Labels land under the ground-truth prefix; the labels' arrival rule starts the model-quality pipeline
    on exactly that file. Returns the execution it started."""
    before = set(_executions(env, "quality"))
    uri = _labels_arrive(env, wrong_share, name)
    story.artefacts.append(("ground-truth labels (id,label)", uri))
    return _new_execution(story, env, "quality", before, uri, f"labels {uri}")


def _model_quality(story: Story, prod, jenkins: dict) -> None:  # noqa: ARG001 (the runs start on arrival)
    run = story.step(
        "Ground-truth labels for version 1's scored batch arrive (id,label): their arrival starts model quality",
        lambda: _quality_run_for(story, prod, 0, "labels.csv"),
    )
    story.cli(
        "Model quality against the labels: AUC, F1, precision, recall, accuracy hold against version 1's baseline",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "quality",
        "--execution",
        run,
    )
    run = story.step(
        "Later labels arrive on which the model is wrong half the time",
        lambda: _quality_run_for(story, prod, 0.5, "later-labels.csv"),
    )
    story.cli(
        "Model quality fails: ModelQualityBelowThreshold",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "quality",
        "--execution",
        run,
        expect=1,
    )
    story.cli(
        "The quality rule started the train-with-HPO pipeline in prod",
        "run-pipeline",
        "follow",
        "--env",
        "prod",
        "--pipeline",
        "hpo",
    )
    story.cli(
        "Version 3 comes from that HPO run and waits for approval (tuned versions are marked for the review board)",
        "promote",
        "lineage",
        "--env",
        "prod",
        "--version",
        "3",
        capture=True,
        person=APPROVER,
    )
    for uri in _objects(prod, prod.buckets.artifacts, f"{prod.name}/{prod.pipelines['quality']}/"):
        if uri.endswith(("statistics.json", "constraint_violations.json")):
            story.artefacts.append(("model-quality statistics / violations (one per labels file)", uri))


def _summary(story: Story, started: float) -> None:
    story.say("\n== Summary", bold=True)
    for title, outcome, seconds in story.stages:
        story.say(f"{outcome:<12} {seconds:6.1f}s  {title}")
    story.say(f"total {time.monotonic() - started:.1f}s")
    if story.versions:
        story.say("\nVersions and the data they were trained on", bold=True)
        for version, status, rows, count, parts, auc, sha in story.versions:
            shown_auc = f"{auc:.4f}" if isinstance(auc, float) else "-"
            story.say(
                f"  v{version}  {status:<22} AUC {shown_auc}  {rows} rows in {count} part(s): {parts or '-'}"
                f"  (snapshot sha256 {str(sha)[:12]}...)"
            )
    if story.artefacts:
        story.say("\nArtefacts", bold=True)
        for what, where in story.artefacts:
            story.say(f"  {what:<50} {where}")
