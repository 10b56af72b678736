"""A pipeline account for sandbox tests: an execution role trusted by SageMaker, a KMS-less bucket,
and a runner that creates a pipeline from a hand-written definition, starts it and waits.
The `account` fixture (tests/conftest.py) sets it up."""

from __future__ import annotations

import io
import json
import tarfile
import time
import zipfile
from dataclasses import dataclass

import boto3
from botocore.config import Config

ACCOUNT = "111111111111"
REGION = "us-east-1"
BUCKET = "engine-test-bucket"
ROLE_NAME = "engine-test-execution"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"

TRUST_SAGEMAKER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# Broad on purpose: these tests are about the engine; permission tests narrow it themselves.
EXECUTION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        },
        {
            "Effect": "Allow",
            "Action": ["sagemaker:Create*", "sagemaker:Describe*", "sagemaker:List*", "sagemaker:AddTags"],
            "Resource": "*",
        },
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE_ARN},
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        },
    ],
}


# A fresh boto3 Session re-reads each service model (the SageMaker one takes most of a second):
# clients are made once per test session and reused, as the toolkit's Sessions do.
_CLIENTS: dict = {}


@dataclass
class PipelineAccount:
    status: dict

    def session(self, account=ACCOUNT):
        creds = next(a["credentials"] for a in self.status["accounts"] if a["account_id"] == account)
        return boto3.Session(region_name=REGION, **creds)

    def client(self, service, account=ACCOUNT):
        key = (self.status["endpoint"], service, account)
        if key not in _CLIENTS:
            _CLIENTS[key] = self.session(account).client(
                service, endpoint_url=self.status["endpoint"], config=Config(retries={"max_attempts": 1})
            )
        return _CLIENTS[key]

    def put(self, key: str, body: bytes | str) -> str:
        self.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
        return f"s3://{BUCKET}/{key}"

    def read(self, uri: str) -> bytes:
        bucket, _, key = uri[5:].partition("/")
        return self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    def put_script(self, name: str, source: str) -> str:
        return self.put(f"code/{name}", source)

    def put_sourcedir(self, key: str, files: dict) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, source in files.items():
                data = source.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return self.put(key, buf.getvalue())

    def create_lambda(
        self,
        name: str,
        source: str,
        role_arn: str | None = None,
        statements: list | None = None,
        environment: dict | None = None,
    ) -> str:
        """A function `name` (handler.handler) whose role may read the bucket, plus `statements`."""
        iam = self.client("iam")
        role_name = f"{name}-role"
        iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA))
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName="read",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["s3:GetObject", "s3:ListBucket"],
                            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
                        },
                        *(statements or []),
                    ],
                }
            ),
        )
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("handler.py", source)
        return self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn or f"arn:aws:iam::{ACCOUNT}:role/{role_name}",
            Handler="handler.handler",
            Code={"ZipFile": buf.getvalue()},
            Timeout=60,
            **({"Environment": {"Variables": environment}} if environment else {}),
        )["FunctionArn"]

    def start(self, name: str, definition: dict, params: dict | None = None, role_arn: str = ROLE_ARN) -> str:
        sm = self.client("sagemaker")
        body = json.dumps({"Version": "2020-12-01", "Metadata": {}, **definition})
        try:
            sm.create_pipeline(PipelineName=name, PipelineDefinition=body, RoleArn=role_arn)
        except sm.exceptions.ClientError:
            sm.update_pipeline(PipelineName=name, PipelineDefinition=body, RoleArn=role_arn)
        kwargs = {"PipelineParameters": [{"Name": k, "Value": str(v)} for k, v in params.items()]} if params else {}
        return sm.start_pipeline_execution(PipelineName=name, **kwargs)["PipelineExecutionArn"]

    def wait(self, arn: str, timeout: float = 120) -> dict:
        sm = self.client("sagemaker")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            if described["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
                return described
            time.sleep(0.1)
        raise AssertionError(f"{arn} still running after {timeout}s")

    def steps(self, arn: str) -> dict:
        listed = self.client("sagemaker").list_pipeline_execution_steps(PipelineExecutionArn=arn)
        return {s["StepName"]: s for s in listed["PipelineExecutionSteps"]}

    def run(self, name: str, definition: dict, params: dict | None = None, **kw) -> tuple[dict, dict]:
        arn = self.start(name, definition, params, **kw)
        described = self.wait(arn)
        return described, self.steps(arn)


def pipeline_account(status: dict) -> PipelineAccount:
    """The bucket and the execution role SageMaker may assume, on a running sandbox (`status`)."""
    account = PipelineAccount(status)
    account.client("s3").create_bucket(Bucket=BUCKET)
    iam = account.client("iam")
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_SAGEMAKER))
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="engine-test", PolicyDocument=json.dumps(EXECUTION_POLICY))
    return account


def processing_step(
    name: str,
    script_uri: str,
    script: str,
    *,
    inputs=(),
    outputs=(),
    arguments=(),
    depends_on=None,
    property_files=None,
    environment=None,
) -> dict:
    """A Processing step as the SDK writes it for a python3 script (contract 2)."""
    step = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
            },
            "AppSpecification": {
                "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
                "ContainerArguments": list(arguments),
            },
            "RoleArn": ROLE_ARN,
            "ProcessingInputs": [
                *[
                    {
                        "InputName": n,
                        "AppManaged": False,
                        "S3Input": {
                            "S3Uri": uri,
                            "LocalPath": f"/opt/ml/processing/input/{n}",
                            "S3DataType": "S3Prefix",
                            "S3InputMode": "File",
                            "S3DataDistributionType": "FullyReplicated",
                        },
                    }
                    for n, uri in inputs
                ],
                {
                    "InputName": "code",
                    "AppManaged": False,
                    "S3Input": {
                        "S3Uri": script_uri,
                        "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                },
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": n,
                        "AppManaged": False,
                        "S3Output": {
                            "S3Uri": uri,
                            "LocalPath": f"/opt/ml/processing/output/{n}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for n, uri in outputs
                ]
            },
        },
    }
    if environment:
        step["Arguments"]["Environment"] = environment
    if depends_on:
        step["DependsOn"] = list(depends_on)
    if property_files:
        step["PropertyFiles"] = property_files
    return step
