"""The registry forwards its model package state changes to the workload accounts' buses."""

import json


def _register_a_version(sessions, prod):
    registry = sessions.client("sagemaker", sessions.in_account(prod.registry_account_id))
    registry.create_model_package(
        ModelPackageGroupName=prod.model_package_group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {"Image": "example.com/xgboost:1", "ModelDataUrl": f"s3://{prod.buckets.registry}/prod/model.tar.gz"}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )


def test_a_version_registered_in_the_registry_reaches_a_rule_in_prod(bootstrapped, module_sessions, envs):
    """AWS puts "SageMaker Model Package State Change" only on the bus of the account that owns the
    package (the registry). Without the forwarding rule the bootstrap creates there, the approval
    notification rule mlops-infra/ creates in prod never fires; and the receiving bus must allow the
    registry account (bootstrap-account grants it) or EventBridge drops the event (AWS: "Sending and receiving
    events between AWS accounts in Amazon EventBridge")."""
    prod = envs["prod"]
    sessions = module_sessions["prod"]
    in_prod = sessions.in_account(prod.account_id)
    sqs = sessions.client("sqs", in_prod)
    queue_url = sqs.create_queue(QueueName="approvals-seen-in-prod")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = sessions.client("events", in_prod)
    events.put_rule(
        Name="approvals-seen",
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {"ModelPackageGroupName": [prod.model_package_group]},
            }
        ),
    )
    events.put_targets(Rule="approvals-seen", Targets=[{"Id": "queue", "Arn": queue_arn}])

    # the bootstrap let the registry account put events on the prod bus: the forwarded event arrives
    _register_a_version(sessions, prod)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    events_seen = [json.loads(m["Body"]) for m in messages]
    assert [
        (e["account"], e["detail"]["ModelPackageGroupName"], e["detail"]["ModelApprovalStatus"]) for e in events_seen
    ] == [(prod.registry_account_id, prod.model_package_group, "PendingManualApproval")]
    for m in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

    # without that statement the forwarded event is dropped
    [sid] = [s["Sid"] for s in json.loads(events.describe_event_bus()["Policy"])["Statement"]]
    events.remove_permission(StatementId=sid)
    try:
        _register_a_version(sessions, prod)
        assert sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []) == []
    finally:
        events.put_permission(Action="events:PutEvents", Principal=prod.registry_account_id, StatementId=sid)


def test_the_forwarding_rule_targets_every_workload_account_and_reapplies_as_a_no_op(
    bootstrapped, module_sessions, envs
):
    prod = envs["prod"]
    sessions = module_sessions["prod"]
    events = sessions.client("events", sessions.in_account(prod.registry_account_id))
    targets = events.list_targets_by_rule(Rule=f"{prod.project}-model-package-events")["Targets"]
    assert sorted(t["Arn"] for t in targets) == [
        f"arn:aws:events:{prod.region}:{account}:event-bus/default"
        for account in ("111111111111", "222222222222", "555555555555")
    ]
    from iam.bootstrap import bootstrap

    again = bootstrap(prod, "registry", apply=True, sessions=sessions)
    assert again.writes == 0
