"""The desired state of one account, as plain data: which keys, roles, buckets, tables and groups exist
and with which documents. Pure: built from the environment, no AWS call.

Resources are listed in the order they must be created: roles before the key whose policy names
them (AWS rejects a policy naming a principal that does not exist), the key before the role
policies, buckets and table that name the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from iam import policies
from mlops_core.config import Environment
from mlops_core.errors import ConfigError

MANAGED_BY = "bootstrap-account"


@dataclass(frozen=True)
class KmsKey:
    alias: str
    description: str
    policy: dict
    tags: dict
    kind = "kms-key"

    @property
    def name(self) -> str:
        return self.alias

    @property
    def arn_variable(self) -> str:
        return policies.key_arn_ref(self.alias)


@dataclass(frozen=True)
class Role:
    """A role and its trust policy; its permissions are a separate RolePolicies entry so the role can
    exist before the key its permissions name."""

    name: str
    description: str
    trust_policy: dict
    tags: dict
    kind = "iam-role"


@dataclass(frozen=True)
class RolePolicies:
    """The complete set of a role's inline policies; anything else attached to it is removed."""

    role: str
    policies: dict
    kind = "iam-role-policies"

    @property
    def name(self) -> str:
        return self.role


@dataclass(frozen=True)
class Bucket:
    name: str
    kms_key: str  # a key ARN or its placeholder
    policy: dict
    region: str
    tags: dict
    versioning: bool = True
    # S3 sends every object event of the bucket to the account's default EventBridge bus (the arrival
    # rules of mlops-infra/ pick theirs): on for the buckets data lands in.
    event_bridge: bool = False
    kind = "s3-bucket"


@dataclass(frozen=True)
class LockTable:
    name: str
    kms_key: str
    tags: dict
    kind = "dynamodb-table"


@dataclass(frozen=True)
class ModelPackageGroup:
    name: str
    description: str
    policy: dict
    tags: dict
    kind = "model-package-group"


@dataclass(frozen=True)
class EventRule:
    """A rule on the account's default bus with its targets. The registry forwards its model package
    state changes to the workload accounts' buses: AWS puts them only on the registry's own bus, where
    the approval-notification rules that mlops-infra/ creates in prod would never see them."""

    name: str
    description: str
    pattern: dict
    targets: tuple  # ((target id, target ARN), ...)
    tags: dict
    kind = "events-rule"


@dataclass(frozen=True)
class EventBusPermission:
    """One statement of the default bus's resource policy: another account may put events on it. Set by
    the bootstrap (an admin), never by the deploy role: PutPermission cannot be limited to a principal by
    IAM, so whoever may call it may open the bus to Principal "*"."""

    name: str  # the statement id
    principal_account: str
    policy: dict  # the statement as the bus's policy shows it, for review
    kind = "bus-permission"


@dataclass(frozen=True)
class AccountState:
    """Everything `bootstrap-account` manages in one account."""

    account_kind: str
    account_id: str
    region: str
    resources: tuple = field(default_factory=tuple)

    def documents(self) -> dict[str, dict]:
        """Every policy document by a reviewable file name (what iam/policies/<kind>/ holds)."""
        docs: dict[str, dict] = {}
        for r in self.resources:
            if isinstance(r, KmsKey):
                docs[f"kms-key-policy.{r.alias.removeprefix('alias/')}.json"] = r.policy
            elif isinstance(r, Role):
                docs[f"role.{r.name}.trust.json"] = r.trust_policy
            elif isinstance(r, RolePolicies):
                for name, doc in r.policies.items():
                    docs[f"role.{r.role}.{name}.json"] = doc
            elif isinstance(r, Bucket):
                docs[f"bucket-policy.{r.name}.json"] = r.policy
            elif isinstance(r, ModelPackageGroup):
                docs[f"model-package-group-policy.{r.name}.json"] = r.policy
            elif isinstance(r, EventBusPermission):
                docs[f"event-bus-permission.{r.name}.json"] = r.policy
        return docs


def check_account_kind(env: Environment, account_kind: str) -> str:
    """The account id `account_kind` means for this environment, or a one-line ConfigError.

    `account_kind` is `registry` or the environment's own workload account label (dev, stage, prod,
    any label in `accounts:`); whether that account is dev-like or prod-like is the environment's
    `kind`, which decides nothing here: every workload account gets the same shape."""
    labels = [*env.workload_accounts, "registry"]
    if account_kind not in labels:
        raise ConfigError(f"'{account_kind}' is not one of {', '.join(labels)}", field="--account")
    for label, account_id in env.workload_accounts.items():
        if account_id == env.registry_account_id:
            raise ConfigError(
                f"'{account_id}' is the same account as accounts.{label}: the registry must be a separate account",
                source=str(env.source),
                field="accounts.registry",
            )
    if account_kind == "registry":
        return env.registry_account_id
    if account_kind != env.account:
        raise ConfigError(
            f"'{account_kind}': environment '{env.name}' describes the {env.account} account; "
            f"use the environment whose account is {account_kind} to bootstrap that account",
            field="--account",
        )
    return env.account_id


def desired_state(env: Environment, account_kind: str) -> AccountState:
    account_id = check_account_kind(env, account_kind)
    tags = {"project": env.project, "managed-by": MANAGED_BY}
    if account_kind == "registry":
        return _registry(env, account_id, tags)
    return _workload(env, account_id, tags)


def _workload(env, account_id: str, tags: dict) -> AccountState:
    key = KmsKey(
        env.kms_key_alias,
        f"{env.project} {env.name}: pipeline data and model artefacts",
        policies.workload_key_policy(env),
        tags,
    )
    roles = [
        (
            Role(
                env.roles.execution,
                f"{env.project}: SageMaker pipelines and their jobs",
                policies.trust("sagemaker.amazonaws.com"),
                tags,
            ),
            policies.execution_role_policies(env),
        ),
        (
            Role(
                env.roles.lambda_,
                f"{env.project}: the latest-approved-model Lambda step",
                policies.trust("lambda.amazonaws.com"),
                tags,
            ),
            policies.lambda_role_policies(env),
        ),
        # dev is deployed like prod (Jenkins ENV=dev, its own schedule and retrain rule), so it gets the
        # same deploy role, EventBridge role and Terraform state
        (
            Role(
                env.roles.jenkins,
                f"{env.project}: Jenkins deploys pipelines and mlops-infra",
                policies.jenkins_trust(env),
                tags,
            ),
            policies.jenkins_role_policies(env),
        ),
        (
            Role(
                env.roles.events,
                f"{env.project}: EventBridge starts the project's pipelines",
                policies.trust("events.amazonaws.com"),
                tags,
            ),
            policies.events_role_policies(env),
        ),
        (
            Role(
                policies.audit_role_name(env),
                f"{env.project}: the approver reads who started the run that registered a version",
                policies.audit_trust(env),
                tags,
            ),
            policies.audit_role_policies(env),
        ),
    ]
    resources: list = [role for role, _ in roles]
    resources.append(key)
    resources += [RolePolicies(role.name, docs) for role, docs in roles]
    resources.append(
        Bucket(
            env.buckets.artifacts,
            key.arn_variable,
            policies.data_bucket_policy(env, env.buckets.artifacts),
            env.region,
            tags,
            event_bridge=bool(getattr(env, "arrivals", ())),
        )
    )
    resources.append(
        Bucket(
            env.buckets.terraform_state,
            key.arn_variable,
            policies.data_bucket_policy(env, env.buckets.terraform_state),
            env.region,
            tags,
        )
    )
    resources.append(LockTable(env.terraform_lock_table, key.arn_variable, tags))
    # the registry forwards model package events here (model_package_events_forwarding)
    # alphanumeric: a valid statement id for both EventBridge and IAM's policy grammar
    sid = "".join(w.title() for w in re.split(r"[^A-Za-z0-9]+", env.project)) + "RegistryModelEvents"
    resources.append(EventBusPermission(sid, env.registry_account_id, policies.registry_puts_events_policy(env, sid)))
    return AccountState(env.account, account_id, env.region, tuple(resources))


def _registry(env, account_id: str, tags: dict) -> AccountState:
    # The registry key encrypts what the registry account itself writes (bucket default); artefacts
    # from workload accounts stay under the key of the account that trained them.
    key = KmsKey(
        policies.registry_key_alias(env),
        f"{env.project} registry: bucket default encryption",
        policies.registry_key_policy(env),
        tags,
    )
    approver = Role(
        env.roles.approver,
        f"{env.project}: approves or rejects model package versions",
        policies.person_trust(policies.Arns(env).root(account_id)),
        tags,
    )
    return AccountState(
        "registry",
        account_id,
        env.region,
        (
            approver,
            key,
            RolePolicies(approver.name, policies.approver_role_policies(env)),
            Bucket(env.buckets.registry, key.arn_variable, policies.registry_bucket_policy(env), env.region, tags),
            ModelPackageGroup(
                env.model_package_group,
                f"{env.project}: model versions promoted from dev to prod",
                policies.model_package_group_policy(env),
                tags,
            ),
            ModelPackageGroup(
                policies.branch_group(env),
                f"{env.project}: versions trained on git branches in dev; none can be approved",
                policies.branch_model_package_group_policy(env),
                tags,
            ),
            model_package_events_forwarding(env, tags),
        ),
    )


def model_package_events_forwarding(env: Environment, tags: dict) -> EventRule:
    """Forward the group's package state changes (registered, approved, rejected) to every workload
    account's default bus; each receiving bus allows the registry account (EventBusPermission)."""
    pattern = {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [env.model_package_group]},
    }
    targets = tuple(
        (f"{label}-default-bus", f"arn:{env.partition}:events:{env.region}:{account}:event-bus/default")
        for label, account in sorted(env.workload_accounts.items())
    )
    return EventRule(
        f"{env.project}-model-package-events",
        f"{env.project}: package state changes to workload accounts, where approvers are notified",
        pattern,
        targets,
        tags,
    )
