"""The sandbox skips work moto does on every request (sandbox/patches/serving.py) without changing an
answer: the request id still reaches both the header and an XML body, each request gets its own, and
JSON answers keep their field names.

AWS answers every request with an `x-amzn-RequestId` header; query APIs (STS, IAM) repeat it in the
body's `ResponseMetadata/RequestId`, as the example of
https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html shows.
"""

from __future__ import annotations

from tests.sandbox.pipeline_account import ACCOUNT, PipelineAccount


def _raw_answers(client) -> list[dict]:
    """The undecoded body and headers of every answer `client` receives from now on."""
    seen: list[dict] = []
    client.meta.events.register(
        "before-parse",
        lambda response_dict, **_: seen.append(
            {"body": response_dict["body"].decode(), "request_id": response_dict["headers"].get("x-amzn-requestid")}
        ),
    )
    return seen


def test_a_query_answer_carries_its_own_request_id_in_the_header_and_the_body(sandbox_server):
    sts = PipelineAccount(sandbox_server).session().client("sts", endpoint_url=sandbox_server["endpoint"])
    answers = _raw_answers(sts)
    first, second = sts.get_caller_identity(), sts.get_caller_identity()

    ids = [a["request_id"] for a in answers]
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]
    for answer in answers:
        assert f"<RequestId>{answer['request_id']}</RequestId>" in answer["body"]
    assert [first["ResponseMetadata"]["RequestId"], second["ResponseMetadata"]["RequestId"]] == ids
    assert first["Account"] == ACCOUNT


def test_a_json_answer_is_left_as_moto_writes_it(sandbox_server):
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeModelPackageGroup.html
    sm = PipelineAccount(sandbox_server).session().client("sagemaker", endpoint_url=sandbox_server["endpoint"])
    answers = _raw_answers(sm)
    sm.create_model_package_group(ModelPackageGroupName="serving-models", ModelPackageGroupDescription="d")
    group = sm.describe_model_package_group(ModelPackageGroupName="serving-models")

    assert answers[-1]["request_id"] and "RequestId" not in answers[-1]["body"]
    assert group["ModelPackageGroupName"] == "serving-models" and group["ModelPackageGroupDescription"] == "d"
    assert group["ModelPackageGroupArn"].endswith(":model-package-group/serving-models")
    assert group["ModelPackageGroupStatus"] == "Completed" and group["CreationTime"]
    sm.delete_model_package_group(ModelPackageGroupName="serving-models")


def test_byte_ranges_answer_as_s3_does(account):
    """GetObject with a Range (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax,
    RFC 9110 byte ranges; S3 supports one range a request): 206 with `Content-Range: bytes first-last/size`,
    an end past the object clipped to its last byte, a suffix range `-n` the last n bytes, a start past the
    end refused with InvalidRange (416); several ranges answer the whole object (200). The sandbox reads a
    single range alone instead of the whole object; the answers stay the same, and the transfer manager's
    ranged, threaded download of an object larger than its part size reassembles it byte for byte."""
    import io
    import os

    import pytest
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    from tests.sandbox.pipeline_account import BUCKET

    s3 = account.client("s3")
    body = os.urandom(3 * 1024 * 1024 + 17)
    s3.put_object(Bucket=BUCKET, Key="ranges/object.bin", Body=body)
    size = len(body)

    def ranged(spec: str) -> tuple[int, str | None, bytes]:
        got = s3.get_object(Bucket=BUCKET, Key="ranges/object.bin", Range=spec)
        status = got["ResponseMetadata"]["HTTPStatusCode"]
        return status, got.get("ContentRange"), got["Body"].read()

    assert ranged("bytes=0-0") == (206, f"bytes 0-0/{size}", body[:1])
    assert ranged("bytes=1000-1999") == (206, f"bytes 1000-1999/{size}", body[1000:2000])
    assert ranged(f"bytes={size - 5}-") == (206, f"bytes {size - 5}-{size - 1}/{size}", body[-5:])
    assert ranged("bytes=-7") == (206, f"bytes {size - 7}-{size - 1}/{size}", body[-7:])
    assert ranged(f"bytes=100-{size * 2}") == (206, f"bytes 100-{size - 1}/{size}", body[100:])
    status, content_range, whole = ranged("bytes=0-1,5-6")
    assert (status, content_range, whole) == (200, None, body)
    with pytest.raises(ClientError) as refused:
        ranged(f"bytes={size}-")
    assert refused.value.response["Error"]["Code"] == "InvalidRange"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416

    downloaded = io.BytesIO()
    parts = TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=1024 * 1024, max_concurrency=4)
    s3.download_fileobj(BUCKET, "ranges/object.bin", downloaded, Config=parts)
    assert downloaded.getvalue() == body
