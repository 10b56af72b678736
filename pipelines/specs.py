"""What building the pipelines produces (contract 1): plain data, no AWS objects."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CodeUpload:
    """An object the upsert puts (SSE-KMS) before creating/updating the pipeline that references it."""

    s3_uri: str
    body: bytes = field(repr=False)

    @property
    def bucket(self) -> str:
        return self.s3_uri[len("s3://") :].split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.s3_uri[len("s3://") :].split("/", 1)[1]


@dataclass(frozen=True)
class LambdaFunction:
    """A Lambda function a pipeline's Lambda step invokes; created/updated by the upsert."""

    name: str
    role_arn: str
    handler: str
    runtime: str
    zip_bytes: bytes = field(repr=False)
    sha256: str = ""
    timeout: int = 60
    environment: dict = field(default_factory=dict)


@dataclass
class PipelineSpec:
    """One pipeline as it should exist: name, definition JSON, parameter defaults, and what it needs first."""

    name: str
    definition: str
    parameters: dict
    role_arn: str
    uploads: list = field(default_factory=list)
    lambda_functions: list = field(default_factory=list)
    description: str = ""
    parallelism: dict | None = None  # the pipeline's ParallelismConfiguration (CreatePipeline/UpdatePipeline)
