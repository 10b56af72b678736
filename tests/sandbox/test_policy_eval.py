"""The sandbox's IAM policy evaluator on its own: the policy language as AWS documents it
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html), no server."""

import pytest

from sandbox.iam_policy import ALLOW, DENY, Principal, evaluate, wildcard_match

BUCKET = "arn:aws:s3:::mlops-demo-registry-artifacts"
PROD_ROLE = "arn:aws:iam::222222222222:role/mlops-demo-sagemaker-execution"
PROD = Principal(
    account_id="222222222222",
    arn="arn:aws:sts::222222222222:assumed-role/mlops-demo-sagemaker-execution/step",
    principal_arn=PROD_ROLE,
)


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_nothing_allows_by_default():
    assert evaluate([], "s3:GetObject", BUCKET + "/a").decision is None


def test_action_wildcards_are_case_insensitive_and_resource_wildcards_cross_slashes():
    doc = policy(allow("S3:Get*", BUCKET + "/prod/*"))
    assert evaluate([doc], "s3:GetObject", BUCKET + "/prod/models/1/model.tar.gz").decision == ALLOW
    assert evaluate([doc], "s3:PutObject", BUCKET + "/prod/x").decision is None
    assert evaluate([doc], "s3:GetObject", BUCKET + "/dev/x").decision is None


def test_question_mark_matches_exactly_one_character():
    assert wildcard_match("model-package/grp/?", "model-package/grp/7")
    assert not wildcard_match("model-package/grp/?", "model-package/grp/17")


def test_explicit_deny_beats_any_allow_across_documents():
    docs = [
        policy(allow("s3:*", "*")),
        policy({"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": BUCKET + "/*"}),
    ]
    assert evaluate(docs, "s3:DeleteObject", BUCKET + "/k").decision == DENY
    assert evaluate(docs, "s3:GetObject", BUCKET + "/k").decision == ALLOW


def test_not_action_and_not_resource():
    doc = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": BUCKET + "/secret/*"})
    assert evaluate([doc], "s3:GetObject", BUCKET + "/public/a").decision == ALLOW
    assert evaluate([doc], "iam:CreateUser", "*").decision is None
    assert evaluate([doc], "s3:GetObject", BUCKET + "/secret/a").decision is None


def test_identity_policies_ignore_statements_with_a_principal():
    doc = policy(allow("s3:GetObject", "*", Principal={"AWS": "*"}))
    assert evaluate([doc], "s3:GetObject", BUCKET + "/a").decision is None


def test_resource_policy_principal_forms():
    by_account = policy(allow("s3:GetObject", BUCKET + "/*", Principal={"AWS": "arn:aws:iam::222222222222:root"}))
    by_id = policy(allow("s3:GetObject", BUCKET + "/*", Principal={"AWS": "222222222222"}))
    by_role = policy(allow("s3:GetObject", BUCKET + "/*", Principal={"AWS": [PROD_ROLE]}))
    other = policy(allow("s3:GetObject", BUCKET + "/*", Principal={"AWS": "arn:aws:iam::111111111111:root"}))
    everyone = policy(allow("s3:GetObject", BUCKET + "/*", Principal="*"))
    for doc, allowed, specific in (
        (by_account, True, False),
        (by_id, True, False),
        (by_role, True, True),
        (other, False, False),
        (everyone, True, True),
    ):
        result = evaluate([doc], "s3:GetObject", BUCKET + "/a", principal=PROD)
        assert (result.allowed, result.allowed_specifically) == (allowed, specific), doc


def test_service_principals_match_only_that_service():
    trust = policy({"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"})
    events = Principal(account_id="", arn="events.amazonaws.com", service="events.amazonaws.com")
    lam = Principal(account_id="", arn="lambda.amazonaws.com", service="lambda.amazonaws.com")
    assert evaluate([trust], "sts:AssumeRole", PROD_ROLE, principal=events).decision == ALLOW
    assert evaluate([trust], "sts:AssumeRole", PROD_ROLE, principal=lam).decision is None
    assert evaluate([trust], "sts:AssumeRole", PROD_ROLE, principal=PROD).decision is None


def test_not_principal_applies_to_everyone_else():
    doc = policy({"Effect": "Deny", "NotPrincipal": {"AWS": PROD_ROLE}, "Action": "s3:*", "Resource": "*"})
    other = Principal(
        account_id="111111111111",
        arn="arn:aws:iam::111111111111:user/u",
        principal_arn="arn:aws:iam::111111111111:user/u",
    )
    assert evaluate([doc], "s3:GetObject", BUCKET, principal=other).decision == DENY
    assert evaluate([doc], "s3:GetObject", BUCKET, principal=PROD).decision is None


@pytest.mark.parametrize(
    "condition, context, holds",
    [
        ({"StringEquals": {"sts:ExternalId": "abc"}}, {"sts:ExternalId": "abc"}, True),
        ({"StringEquals": {"sts:ExternalId": "abc"}}, {"sts:ExternalId": "abd"}, False),
        ({"StringEquals": {"sts:ExternalId": "abc"}}, {}, False),  # absent key: no match
        ({"StringNotEquals": {"aws:PrincipalAccount": "111111111111"}}, {}, True),  # negated + absent: true
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/mlops-*"}}, {"aws:PrincipalArn": PROD_ROLE}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/*"}}, {"aws:PrincipalArn": PROD_ROLE}, False),
        ({"ArnNotEquals": {"aws:PrincipalArn": PROD_ROLE}}, {"aws:PrincipalArn": PROD_ROLE}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
        ({"Null": {"s3:x-amz-server-side-encryption": "true"}}, {}, True),
        ({"Null": {"s3:x-amz-server-side-encryption": "true"}}, {"s3:x-amz-server-side-encryption": "aws:kms"}, False),
        ({"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}, {}, True),
        (
            {"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            {"s3:x-amz-server-side-encryption": "AES256"},
            False,
        ),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "cost"]}}, {"aws:TagKeys": ["owner", "team"]}, True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}, {}, False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, {"aws:TagKeys": ["team", "owner"]}, False),
        (
            {"StringEquals": {"kms:CallerAccount": "222222222222", "kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            {"kms:CallerAccount": "222222222222"},
            False,
        ),  # every key must hold
        (
            {"StringEquals": {"KMS:callerAccount": ["111111111111", "222222222222"]}},
            {"kms:CallerAccount": "222222222222"},
            True,
        ),
    ],
)
def test_condition_operators(condition, context, holds):
    doc = policy(allow("kms:Decrypt", "*", Condition=condition))
    assert (
        evaluate([doc], "kms:Decrypt", "arn:aws:kms:us-east-1:111111111111:key/k", context).decision == ALLOW
    ) is holds


def test_unknown_condition_operator_is_refused_loudly():
    doc = policy(allow("kms:Decrypt", "*", Condition={"IpAddressMaybe": {"aws:SourceIp": "10.0.0.0/8"}}))
    with pytest.raises(ValueError, match="IpAddressMaybe"):
        evaluate([doc], "kms:Decrypt", "*", {})


def test_documents_may_be_json_text_or_url_encoded():
    import json
    from urllib.parse import quote

    text = json.dumps(policy(allow("sns:Publish", "arn:aws:sns:us-east-1:222222222222:alerts")))
    for doc in (text, quote(text)):
        assert evaluate([doc], "sns:Publish", "arn:aws:sns:us-east-1:222222222222:alerts").decision == ALLOW


def test_single_statement_object_and_string_action():
    doc = {
        "Version": "2012-10-17",
        "Statement": allow("logs:PutLogEvents", "arn:aws:logs:*:*:log-group:/aws/sagemaker/*"),
    }
    assert (
        evaluate(
            [doc], "logs:PutLogEvents", "arn:aws:logs:us-east-1:1:log-group:/aws/sagemaker/TrainingJobs:*"
        ).decision
        == ALLOW
    )
