"""N-instance jobs as SageMaker runs them: each Processing instance gets its own /opt/ml with
/opt/ml/config/resourceconfig.json naming itself and its peers, only its shard of a ShardedByS3Key input
and all of a FullyReplicated one, and every instance's outputs land under the output's prefix
(https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html#byoc-config,
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html); a Transform spreads
the input objects over its instances, sends each object as requests of whole lines within MaxPayloadInMB
and writes one `<object>.out` per object, results in input order
(https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform.html).

Where the sandbox differs: AWS does not document which object goes to which instance (the sandbox: object
i in key order to instance i mod N); two instances writing the same output file race on AWS (the sandbox:
the later host's copy); a response already ending with a newline gets no second one under AssembleWith
Line; SingleRecord skips blank lines."""

import json
import os
from itertools import chain

import pytest

from sandbox.engine import instances
from sandbox.engine.transform_runner import MB, PayloadTooLarge, requests
from tests.sandbox.pipeline_account import BUCKET, ROLE_ARN, processing_step


def test_sharded_by_s3_key_gives_each_object_to_exactly_one_instance():
    """API_S3DataSource: with N instances each gets about 1/N of the objects; with fewer objects than
    instances "some nodes won't get any data" (the job still runs)."""
    objects = [f"batch/part-{k:02d}.csv" for k in range(7)]
    shares = instances.shard(list(reversed(objects)), 3)
    assert sorted(chain(*shares)) == objects  # every object once
    assert [len(s) for s in shares] == [3, 2, 2]
    assert instances.shard(objects[:2], 3) == [[objects[0]], [objects[1]], []]
    assert instances.host_names(3) == ["algo-1", "algo-2", "algo-3"]
    assert instances.resource_config("algo-2", ["algo-1", "algo-2"]) == {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2"],
    }


def test_multi_record_requests_are_whole_lines_within_max_payload(tmp_path):
    """BatchStrategy MultiRecord with SplitType Line: as many records as fit in MaxPayloadInMB per request,
    never a record cut in two (API_CreateTransformJob BatchStrategy); SingleRecord: one record each; a
    record larger than the limit fails the object."""
    lines = [f"{k},{'x' * (k % 97)}\n".encode() for k in range(40_000)]  # about 2.1 MB
    path = tmp_path / "batch.csv"
    path.write_bytes(b"".join(lines))
    bodies = list(requests(path, "Line", "MultiRecord", 1))
    assert len(bodies) == 3 and all(len(b) <= MB for b in bodies)
    assert all(b.endswith(b"\n") for b in bodies) and b"".join(bodies) == path.read_bytes()
    assert list(requests(path, "None", "MultiRecord", 6)) == [path.read_bytes()]
    assert list(requests(path, "Line", "SingleRecord", 6))[:3] == lines[:3]
    path.write_bytes(b"1,2\n" + b"9" * (MB + 1) + b"\n")
    with pytest.raises(PayloadTooLarge, match="a record exceeds MaxPayloadInMB"):
        list(requests(path, "Line", "MultiRecord", 1))


# Writes what its instance sees: the resource config, the files of each input, the job name it was given.
SEES = """
import json, pathlib, sys
config, out, inputs = (pathlib.Path(a) for a in sys.argv[1:4])
resource = json.loads((config / 'resourceconfig.json').read_text())
job = json.loads((config / 'processingjobconfig.json').read_text())
seen = {name: sorted(p.name for p in (inputs / name).iterdir()) for name in ('batch', 'few', 'reference')}
host = resource['current_host']
count = job['ProcessingResources']['ClusterConfig']['InstanceCount']
report = {'resource': resource, 'seen': seen, 'job': job['ProcessingJobName'], 'count': count}
(out / f'{host}.json').write_text(json.dumps(report))
(out / 'same-name.txt').write_text(host)
print('instance', host, 'saw', sum(len(v) for v in seen.values()), 'files')
"""


def test_a_three_instance_processing_job_runs_each_instance_on_its_shard(account):
    for k in range(4):
        account.put(f"sharded/batch/part-{k}.csv", f"{k}\n")
    for k in range(2):
        account.put(f"sharded/few/part-{k}.csv", f"{k}\n")
    account.put("sharded/reference/baseline.json", "{}")
    step = processing_step(
        "Sees",
        account.put_script("sees.py", SEES),
        "sees.py",
        inputs=[
            ("batch", f"s3://{BUCKET}/sharded/batch"),
            ("few", f"s3://{BUCKET}/sharded/few"),
            ("reference", f"s3://{BUCKET}/sharded/reference"),
        ],
        outputs=[("seen", f"s3://{BUCKET}/sharded/out")],
        arguments=["/opt/ml/config", "/opt/ml/processing/output/seen", "/opt/ml/processing/input"],
    )
    step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 3
    for item in step["Arguments"]["ProcessingInputs"]:
        if item["InputName"] in ("batch", "few"):
            item["S3Input"]["S3DataDistributionType"] = "ShardedByS3Key"
    described, steps = account.run("three-instances", {"Steps": [step]})
    assert described["PipelineExecutionStatus"] == "Succeeded", steps

    hosts = ["algo-1", "algo-2", "algo-3"]
    reports = {h: json.loads(account.read(f"s3://{BUCKET}/sharded/out/{h}.json")) for h in hosts}
    job = steps["Sees"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    for host, report in reports.items():
        assert report["resource"] == {"current_host": host, "hosts": hosts}
        assert report["seen"]["reference"] == ["baseline.json"]  # FullyReplicated: all of it, everywhere
        assert report["job"].lower() == job and report["count"] == 3
    batch = [reports[h]["seen"]["batch"] for h in hosts]
    assert sorted(chain(*batch)) == [f"part-{k}.csv" for k in range(4)] and all(batch)  # each object once
    few = [reports[h]["seen"]["few"] for h in hosts]
    assert sorted(chain(*few)) == ["part-0.csv", "part-1.csv"] and few.count([]) == 1  # one instance got none
    # every instance's files under the output's prefix; one name from three instances: one object
    listed = account.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="sharded/out/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed) == [*(f"{h}.json" for h in hosts), "same-name.txt"]
    streams = account.client("logs").describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs")["logStreams"]
    # one log stream per instance (the ARN lower-cases the job name, the stream keeps it)
    assert sorted(s["logStreamName"].lower() for s in streams) == [f"{job}/{h}" for h in hosts]


SERVE_LINES = """
def model_fn(model_dir):
    return 3
def input_fn(body, content_type):
    # a request is whole records: "<id>,<value>" lines, never one cut in two
    records = [line.split(',') for line in body.splitlines() if line]
    assert all(len(r) == 2 and r[1] == str(int(r[0]) * 7) for r in records), body[:80]
    return records
def predict_fn(records, model):
    return [(r[0], int(r[1]) * model) for r in records]
def output_fn(prediction, accept):
    return ''.join(f'{i},{p}\\n' for i, p in prediction)
"""


def test_a_three_instance_transform_scores_every_object_as_one_instance_does(account):
    """Five objects over three instances: each object to one instance, each split into requests of whole
    lines within MaxPayloadInMB (1 MB: the big object takes several), one `.out` per object with the
    results line for line as one instance writes them."""
    code = account.put_sourcedir("code/lines.tar.gz", {"serve.py": SERVE_LINES})
    sizes = {"a.csv": 3, "b.csv": 90_000, "c.csv": 1, "d.csv": 500, "e.csv": 20}
    start = 0
    for name, rows in sizes.items():
        account.put(f"lines/in/{name}", "".join(f"{k},{k * 7}\n" for k in range(start, start + rows)))
        start += rows
    account.client("sagemaker").create_model(
        ModelName="lines",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "Environment": {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_SUBMIT_DIRECTORY": code},
        },
    )

    def transform(name, count):
        return {
            "Name": name,
            "Type": "Transform",
            "Arguments": {
                "ModelName": "lines",
                "BatchStrategy": "MultiRecord",
                "MaxPayloadInMB": 1,
                "TransformInput": {
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/lines/in"}},
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                },
                "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/lines/{name}", "AssembleWith": "Line"},
                "TransformResources": {"InstanceCount": count, "InstanceType": "ml.m5.large"},
            },
        }

    described, steps = account.run("transform-instances", {"Steps": [transform("one", 1), transform("three", 3)]})
    assert described["PipelineExecutionStatus"] == "Succeeded", steps
    for name, rows in sizes.items():
        one = account.read(f"s3://{BUCKET}/lines/one/{name}.out").decode().splitlines()
        three = account.read(f"s3://{BUCKET}/lines/three/{name}.out").decode().splitlines()
        assert three == one and len(one) == rows
    logs = account.client("logs")
    job = steps["three"]["Metadata"]["TransformJob"]["Arn"].rsplit("/", 1)[1]
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TransformJobs")
    said = {
        s["logStreamName"].rsplit("/", 1)[1]: [
            e["message"]
            for e in logs.get_log_events(logGroupName="/aws/sagemaker/TransformJobs", logStreamName=s["logStreamName"])[
                "events"
            ]
        ]
        for s in streams["logStreams"]
        if s["logStreamName"].lower().startswith(job)
    }
    assert sorted(said) == ["algo-1", "algo-2", "algo-3"]
    transformed = [line for lines in said.values() for line in lines if line.startswith("transformed ")]
    assert sorted(line.split()[1] for line in transformed) == sorted(sizes)  # each object by one instance
    [big] = [line for line in transformed if line.startswith("transformed b.csv ")]
    assert big.endswith("(2 request(s))")  # 1.3 MB of lines in two whole-line requests


# Writes which cores its instance may run on and how its thread pools were sized, after overlapping with
# its peer (a second of work), so that both instances hold their cores at the same time.
CORES = """
import json, os, pathlib, sys, time
out, config = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
host = json.loads((config / 'resourceconfig.json').read_text())['current_host']
time.sleep(2)
import pyarrow
report = {'cores': sorted(os.sched_getaffinity(0)), 'omp': os.environ.get('OMP_NUM_THREADS'),
          'arrow': pyarrow.cpu_count()}
(out / f'{host}.json').write_text(json.dumps(report))
"""


def test_instances_held_to_their_own_cores_run_on_different_cores(tmp_path, monkeypatch):
    """MLOPS_SANDBOX_INSTANCE_CPUS=1: each instance runs pinned to one core, the least busy one, with its
    OpenMP and Arrow pools sized to it; two instances running at once hold different cores (on a machine
    with two or more), as two 1-vCPU instances each bring their own CPU on AWS. A value that is not a whole
    number is refused when the sandbox starts, in one line."""
    from mlops_core.errors import ConfigError
    from sandbox import client
    from tests.sandbox.pipeline_account import pipeline_account

    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_SANDBOX_INSTANCE_CPUS", "one")
    with pytest.raises(ConfigError, match="MLOPS_SANDBOX_INSTANCE_CPUS: 'one' is not a whole number") as bad:
        client.up({"dev": "111111111111"})
    assert bad.value.exit_code == 2
    monkeypatch.setenv("MLOPS_SANDBOX_INSTANCE_CPUS", "1")
    try:
        account = pipeline_account(client.up({"dev": "111111111111"}))
        account.put("cores/input/part-0.csv", "0\n")
        step = processing_step(
            "Cores",
            account.put_script("cores.py", CORES),
            "cores.py",
            inputs=[("batch", f"s3://{BUCKET}/cores/input")],
            outputs=[("seen", f"s3://{BUCKET}/cores/out")],
            arguments=["/opt/ml/processing/output/seen", "/opt/ml/config"],
        )
        step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
        described, steps = account.run("pinned-instances", {"Steps": [step]})
        assert described["PipelineExecutionStatus"] == "Succeeded", steps
        reports = [json.loads(account.read(f"s3://{BUCKET}/cores/out/algo-{k}.json")) for k in (1, 2)]
    finally:
        client.down(save=False)
    for report in reports:
        assert len(report["cores"]) == 1 and report["omp"] == "1" and report["arrow"] == 1
    if len(os.sched_getaffinity(0)) >= 2:
        assert reports[0]["cores"] != reports[1]["cores"]


def test_the_least_busy_cores_go_to_the_next_instance():
    """Concurrent jobs share the machine's cores evenly: each new instance takes the cores fewest running
    instances hold, and gives them back when it ends."""
    cores = instances._Cores()
    machine = sorted(os.sched_getaffinity(0))
    first = cores.take(1)
    second = cores.take(1)
    assert first == machine[:1]
    assert second == (machine[1:2] if len(machine) > 1 else machine[:1])
    cores.give_back(first)
    assert cores.take(1) == first  # now the least busy again
    assert len(cores.take(len(machine) + 3)) == len(machine)  # never more cores than the machine has
