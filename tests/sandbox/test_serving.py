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
