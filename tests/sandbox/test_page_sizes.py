"""The sandbox pages SageMaker's list calls as AWS does (sandbox/patches/pagination.py), so a caller that
reads only the first page misses data here as it would on AWS.

MaxResults is 1..100 for each of these actions (AWS API reference: API_ListModelPackages.html,
API_ListModelPackageGroups.html, API_ListPipelines.html, API_ListPipelineExecutions.html,
API_ListPipelineExecutionSteps.html, API_Search.html under
https://docs.aws.amazon.com/sagemaker/latest/APIReference/); without it SageMaker answers 10 items.
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.sandbox.pipeline_account import ACCOUNT, ROLE_ARN, ROLE_NAME

GROUP = "page-size-models"
GROUP_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/{GROUP}"


def _all(call, key, **kwargs):
    """Every item of a list call and the size of each page it took."""
    items, sizes, token = [], [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items += page[key]
        sizes.append(len(page[key]))
        token = page.get("NextToken")
        if not token:
            return items, sizes


def _refused(call, **kwargs) -> str:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    assert refused.value.response["Error"]["Code"] == "ValidationException", refused.value.response
    return refused.value.response["Error"]["Message"]


@pytest.fixture
def registry(account):
    """A group with 25 versions (the first 10 Approved) in a clean account."""
    from sandbox import client

    sm = account.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    container = {"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}], "SupportedContentTypes": ["x"]}
    client.call(
        "register-versions",
        {
            "versions": [
                {
                    "ModelPackageGroupName": GROUP_ARN,
                    "InferenceSpecification": container,
                    "ModelApprovalStatus": "Approved" if n <= 10 else "PendingManualApproval",
                }
                for n in range(1, 26)
            ]
        },
    )
    return sm


def test_list_model_packages_pages_ten_by_default_and_at_most_a_hundred(registry):
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListModelPackages.html
    summaries, sizes = _all(registry.list_model_packages, "ModelPackageSummaryList", ModelPackageGroupName=GROUP)
    assert sizes == [10, 10, 5]
    assert sorted(s["ModelPackageVersion"] for s in summaries) == list(range(1, 26))
    assert _all(registry.list_model_packages, "ModelPackageSummaryList", ModelPackageGroupName=GROUP, MaxResults=100)[
        1
    ] == [25]
    newest_approved = registry.list_model_packages(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    assert [s["ModelPackageVersion"] for s in newest_approved["ModelPackageSummaryList"]] == [10]
    assert newest_approved["NextToken"]

    message = _refused(registry.list_model_packages, ModelPackageGroupName=GROUP, MaxResults=101)
    assert "less than or equal to 100" in message  # (botocore itself refuses MaxResults below 1)


def test_a_next_token_belongs_to_the_request_that_returned_it(registry):
    token = registry.list_model_packages(ModelPackageGroupName=GROUP)["NextToken"]
    # the same request may change its page size between pages, as on AWS
    assert (
        len(
            registry.list_model_packages(ModelPackageGroupName=GROUP, NextToken=token, MaxResults=15)[
                "ModelPackageSummaryList"
            ]
        )
        == 15
    )
    assert "another request" in _refused(
        registry.list_model_packages, ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved", NextToken=token
    )
    _refused(registry.list_model_packages, ModelPackageGroupName=GROUP, NextToken="not-a-token")
    _refused(registry.search, Resource="ModelPackage", NextToken=token)


def test_search_pages_and_sorts_model_packages(registry):
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Search.html
    where = {"Filters": [{"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": GROUP}]}
    records, sizes = _all(registry.search, "Results", Resource="ModelPackage", SearchExpression=where)
    assert sizes == [10, 10, 5]
    versions = [r["ModelPackage"]["ModelPackageVersion"] for r in records]
    assert sorted(versions) == list(range(1, 26))
    oldest_first, _ = _all(
        registry.search,
        "Results",
        Resource="ModelPackage",
        SearchExpression=where,
        SortBy="CreationTime",
        SortOrder="Ascending",
        MaxResults=100,
    )
    assert [r["ModelPackage"]["ModelPackageVersion"] for r in oldest_first] == list(range(1, 26))
    # a Search record carries what DescribeModelPackage answers, so callers need no Describe per version
    assert oldest_first[0]["ModelPackage"]["InferenceSpecification"]["Containers"][0]["Image"] == "i"
    # every filter must hold (API_SearchExpression.html); Equals, NotEquals and Contains as API_Filter.html
    pending = {
        "Filters": [
            {"Name": "ModelPackageGroupName", "Operator": "Contains", "Value": "page-size"},
            {"Name": "ModelApprovalStatus", "Operator": "NotEquals", "Value": "Approved"},
        ]
    }
    records, _ = _all(registry.search, "Results", Resource="ModelPackage", SearchExpression=pending, MaxResults=100)
    assert sorted(r["ModelPackage"]["ModelPackageVersion"] for r in records) == list(range(11, 26))
    approved = {"Filters": [*where["Filters"], {"Name": "ModelApprovalStatus", "Value": "Approved"}]}
    records, _ = _all(registry.search, "Results", Resource="ModelPackage", SearchExpression=approved, MaxResults=100)
    assert sorted(r["ModelPackage"]["ModelPackageVersion"] for r in records) == list(range(1, 11))
    assert "less than or equal to 100" in _refused(registry.search, Resource="ModelPackage", MaxResults=500)


def test_list_model_package_groups_pages_ten_by_default(account):
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListModelPackageGroups.html
    sm = account.client("sagemaker")
    for n in range(11):
        sm.create_model_package_group(ModelPackageGroupName=f"group-{n:02d}")
    groups, sizes = _all(sm.list_model_package_groups, "ModelPackageGroupSummaryList")
    assert sizes == [10, 1] and len({g["ModelPackageGroupName"] for g in groups}) == 11
    _refused(sm.list_model_package_groups, MaxResults=101)


def _pipeline(sm, name: str, steps: list) -> None:
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": steps}
    sm.create_pipeline(PipelineName=name, PipelineDefinition=json.dumps(definition), RoleArn=ROLE_ARN)


def _condition(n: int) -> dict:
    condition = {"Type": "Equals", "LeftValue": n, "RightValue": n}
    return {"Name": f"Check{n:02d}", "Type": "Condition", "Arguments": {"Conditions": [condition]}}


def test_pipelines_their_executions_and_steps_page_ten_by_default(account):
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListPipelines.html,
    # API_ListPipelineExecutions.html, API_ListPipelineExecutionSteps.html
    sm = account.client("sagemaker")
    for n in range(10):
        _pipeline(sm, f"other-{n:02d}", [_condition(0)])
    _pipeline(sm, "paged", [_condition(n) for n in range(12)])
    # moto filtered by prefix after cutting the page: the one match, created last, was on no page
    assert [p["PipelineName"] for p in sm.list_pipelines(PipelineNamePrefix="paged")["PipelineSummaries"]] == ["paged"]
    pipelines, sizes = _all(sm.list_pipelines, "PipelineSummaries")
    assert sizes == [10, 1] and len({p["PipelineName"] for p in pipelines}) == 11
    _refused(sm.list_pipelines, MaxResults=101)

    started = [sm.start_pipeline_execution(PipelineName="paged")["PipelineExecutionArn"] for _ in range(11)]
    executions, sizes = _all(sm.list_pipeline_executions, "PipelineExecutionSummaries", PipelineName="paged")
    assert sizes == [10, 1] and {e["PipelineExecutionArn"] for e in executions} == set(started)
    _refused(sm.list_pipeline_executions, PipelineName="paged", MaxResults=101)

    for _ in range(300):
        if sm.describe_pipeline_execution(PipelineExecutionArn=started[0])["PipelineExecutionStatus"] != "Executing":
            break
        time.sleep(0.1)
    steps, sizes = _all(sm.list_pipeline_execution_steps, "PipelineExecutionSteps", PipelineExecutionArn=started[0])
    assert sizes == [10, 2] and sorted(s["StepName"] for s in steps) == [f"Check{n:02d}" for n in range(12)]
    _refused(sm.list_pipeline_execution_steps, PipelineExecutionArn=started[0], MaxResults=101)


def test_iam_role_policies_and_kms_keys_page_with_markers(account):
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListRolePolicies.html (MaxItems 1..1000,
    # default 100) and https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeys.html (Limit
    # 1..1000, default 100): moto answered everything in one page whatever the caller asked
    iam, kms = account.client("iam"), account.client("kms")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}
    for n in range(3):
        iam.put_role_policy(RoleName=ROLE_NAME, PolicyName=f"extra-{n}", PolicyDocument=json.dumps(document))
    first = iam.list_role_policies(RoleName=ROLE_NAME, MaxItems=2)
    assert len(first["PolicyNames"]) == 2 and first["IsTruncated"] and first["Marker"]
    paginated = iam.get_paginator("list_role_policies").paginate(RoleName=ROLE_NAME, PaginationConfig={"PageSize": 2})
    assert sorted(n for page in paginated for n in page["PolicyNames"]) == sorted(
        ["engine-test", "extra-0", "extra-1", "extra-2"]
    )
    with pytest.raises(ClientError) as refused:
        iam.list_role_policies(RoleName=ROLE_NAME, MaxItems=1001)
    assert refused.value.response["Error"]["Code"] == "ValidationError"

    before = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    made = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)}
    first = kms.list_keys(Limit=2)
    assert len(first["Keys"]) == 2 and first["Truncated"] and first["NextMarker"]
    listed = {
        k["KeyId"]
        for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
        for k in page["Keys"]
    }
    assert listed == before | made
    with pytest.raises(ClientError) as refused:
        kms.list_keys(Limit=1001)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as refused:
        kms.list_keys(Marker=first["NextMarker"] + "x")
    assert refused.value.response["Error"]["Code"] == "InvalidMarkerException"
