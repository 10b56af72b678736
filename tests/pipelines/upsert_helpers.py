"""Helpers for the upsert tests: small hand-made pipeline specs (the real spec classes, tiny
definitions) and counting the AWS calls a session makes."""

from __future__ import annotations

import io
import json
import zipfile

from pipelines.specs import CodeUpload, LambdaFunction, PipelineSpec


def lambda_zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("latest_approved.py", date_time=(2024, 1, 1, 0, 0, 0))
        zf.writestr(info, source)
    return buf.getvalue()


def make_specs(env, *, threshold="0.9", code=b"print('train')", lambda_source="def handler(e, c):\n    return {}\n"):
    """Three small specs like build_pipelines() returns: a parameter, a step, a code upload, a Lambda."""
    import hashlib

    sha = hashlib.sha256(code).hexdigest()
    code_uri = f"s3://{env.buckets.artifacts}/code/{sha}/sourcedir.tar.gz"
    specs = {}
    for key in ("train", "hpo", "inference"):
        definition = {
            "Version": "2020-12-01",
            "Metadata": {},
            "Parameters": [
                {"Name": "AucThreshold", "Type": "Float", "DefaultValue": float(threshold)},
                {"Name": "InputData", "Type": "String", "DefaultValue": f"s3://{env.buckets.artifacts}/in"},
            ],
            "Steps": [
                {
                    "Name": "Preprocess",
                    "Type": "Processing",
                    "Arguments": {"AppSpecification": {"ContainerEntrypoint": ["python3", code_uri]}},
                }
            ],
        }
        functions = []
        if key == "inference":
            functions.append(
                LambdaFunction(
                    f"{env.project}-latest-approved",
                    env.role_arn("lambda"),
                    "latest_approved.handler",
                    "python3.11",
                    lambda_zip(lambda_source),
                )
            )
        specs[key] = PipelineSpec(
            env.pipelines[key],
            json.dumps(definition),
            {"AucThreshold": float(threshold), "InputData": f"s3://{env.buckets.artifacts}/in"},
            env.role_arn("execution"),
            [CodeUpload(code_uri, code)],
            functions,
        )
    return specs


class CallCounter:
    """Counts the AWS API calls a boto3 session makes, through botocore's own event hooks."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def attach(self, session):
        session.events.register("before-call", self._record)
        return self

    def _record(self, event_name, **kwargs):
        _, service, operation = event_name.split(".", 2)
        self.calls.append((service, operation))

    def reset(self):
        self.calls.clear()

    @property
    def reads(self):
        return [c for c in self.calls if c[1].startswith(("Describe", "Get", "List", "Head"))]

    @property
    def writes(self):
        return [c for c in self.calls if c not in self.reads]
