"""Every policy document the bootstrap creates, as data built from the environment.

Trust policies, identity policies, key policies, bucket policies and the model package group's
resource policy are plain dicts built here and nowhere else; `${kms-key-arn:ALIAS}` stands for a key
whose ARN AWS only knows once the key exists (the executor substitutes it). Each statement that
keeps `"Resource": "*"` says why in `STAR_RESOURCE_JUSTIFIED`: the API has no resource to scope to.
"""

from __future__ import annotations

from mlops_core.branches import branch_group
from mlops_core.config import Environment
from pipelines.metrics import namespace as metrics_namespace

VERSION = "2012-10-17"
# Where the pipeline upsert puts objects in a workload's artifacts bucket, all content-addressed: the
# code bundle, the built-in sample datasets and the data contracts (tests check every upload is here).
UPSERT_PREFIXES = ("code/", "datasets/", "contracts/")
# The tag mlops-infra/ puts on everything it creates (provider default_tags, from promote/infra.py).
INFRA_MANAGED_BY = "mlops-infra"

# Actions AWS only authorises against "*" (they name no resource); the linter test accepts exactly these.
STAR_RESOURCE_JUSTIFIED = {
    "ecr:GetAuthorizationToken": "returns a registry login token; ECR defines no resource for it",
    "cloudwatch:PutMetricData": "metrics have no ARN; scoped by the cloudwatch:namespace condition instead",
    "sagemaker:ListModelPackages": "List* calls in SageMaker take no resource; the group policy scopes them",
    "sagemaker:ListModelPackageGroups": "List* calls in SageMaker take no resource",
    "sagemaker:Search": "Search takes no resource and reaches what Describe* would (SageMaker's API permissions "
    "reference); only the approver holds it, in the registry account, whose SageMaker resources are the model "
    "registry the approver may describe anyway",
    "sns:GetSubscriptionAttributes": "SNS authorises subscription calls against no resource (Terraform reads "
    "the email subscriptions it creates)",
    "sns:Unsubscribe": "SNS authorises subscription calls against no resource (Terraform removes subscriptions)",
    "kms:CreateKey": "a key that does not exist yet has no ARN; Terraform creates the notification topic's key",
    "kms:ListAliases": "ListAliases takes no resource; Terraform reads the topic key's alias with it",
    "events:RemovePermission": "authorised against no resource (IAM reference as parliament ships it); Terraform "
    "retires the bus statement older mlops-infra/ versions added (removing can only close the bus)",
    "ec2:DescribeDhcpOptions": "EC2 Describe* calls support no resource-level permissions; SageMaker reads the "
    "VPC's DHCP options for a job in a VPC",
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeSecurityGroups": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeSubnets": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeVpcs": "EC2 Describe* calls support no resource-level permissions",
    "cloudtrail:LookupEvents": "LookupEvents takes no resource (Service Authorization Reference); the audit role "
    "that holds it does nothing else but read pipeline executions",
    "events:DescribeEventBus": "read-only; Terraform calls it without a bus name to read the default bus's "
    "permissions, and which ARN that is authorised against is not documented",
}

# Findings of the `parliament` linter we accept, each with the reason; tests/iam fail on any other
# finding and on an entry here that no longer matches anything. (file name pattern, issue, why)
LINT_ACCEPTED = [
    ("*.trust.json", "MALFORMED", "a trust policy is a resource policy on the role: it has no Resource element"),
    ("kms-key-policy.*", "RESOURCE_STAR", 'in a key policy, Resource "*" means this key and nothing else'),
    (
        "kms-key-policy.*",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "kms:* for the account root is AWS's default key policy: it hands the decision to IAM policies",
    ),
    (
        "role.*-sagemaker-execution.sagemaker-pipeline-steps.json",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "iam:PassRole of the role itself, only to sagemaker.amazonaws.com: pipelines pass it to their jobs",
    ),
    (
        "role.*-sagemaker-execution.data-and-keys.json",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "kms:CreateGrant on its own key, only for AWS resources: SageMaker grants itself use of the key for the "
        "encrypted volumes of the jobs",
    ),
    (
        "role.*-sagemaker-execution.vpc-network-interfaces.json",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "ec2:CreateNetworkInterfacePermission only on interfaces in the environment's subnets (ec2:Subnet): "
        "SageMaker attaches the job's network interfaces to its instances with it",
    ),
    (
        "role.cross-account-jenkins-role.deploy-pipelines.json",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "iam:PassRole of exactly the execution, Lambda and EventBridge roles, each only to its own service",
    ),
    (
        "role.cross-account-jenkins-role.deploy-pipelines.json",
        "PRIVILEGE_ESCALATION",
        "lambda:UpdateFunctionCode on the project's functions, deploying them is the point; their role (the "
        "Lambda role) can only read the registry, write its logs and start the pipelines arrival triggers name",
    ),
    (
        "role.*-sagemaker-execution.runtime.json",
        "CREDENTIALS_EXPOSURE",
        "ecr:GetAuthorizationToken: SageMaker pulls the framework images with the execution role",
    ),
    (
        "role.*-approver.approve-model-packages.json",
        "CREDENTIALS_EXPOSURE",
        "sts:AssumeRole of exactly the workload accounts' registration-audit roles, which only read CloudTrail "
        "and the project's pipeline executions: separation of duties reads who started a run there",
    ),
    (
        "role.cross-account-jenkins-role.deploy-infra.json",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "sns:SetTopicAttributes and kms:PutKeyPolicy on the project's topic and its key (keys tagged "
        "managed-by=mlops-infra for this project and environment): Terraform sets the policies that let "
        "EventBridge publish; the bootstrap's key is denied explicitly",
    ),
    (
        "role.cross-account-jenkins-role.deploy-infra.json",
        "RESOURCE_MISMATCH",
        "AWS authorises kms:*Alias on the alias and on the key separately: the alias half is granted by name "
        "prefix (TopicKeyAlias), the key half only on keys tagged as the toolkit's (ManageOnlyTheToolkitsKeys)",
    ),
]


def key_arn_ref(alias: str) -> str:
    """Placeholder for the ARN of the key behind `alias`, resolved when the key exists."""
    return f"${{kms-key-arn:{alias}}}"


def document(*statements: dict | None) -> dict:
    return {"Version": VERSION, "Statement": [s for s in statements if s]}


def statement(
    sid: str,
    actions: str | list[str],
    resources: str | list[str] | None = None,
    *,
    effect: str = "Allow",
    principal: str | dict | None = None,
    condition: dict | None = None,
) -> dict:
    """One statement with a stable key order, so reviewed JSON and diffs read the same every time."""
    out: dict = {"Sid": sid, "Effect": effect}
    if principal is not None:
        out["Principal"] = principal
    out["Action"] = sorted(actions) if isinstance(actions, (list, tuple, set)) else actions
    if resources is not None:
        out["Resource"] = list(resources) if isinstance(resources, (list, tuple)) else resources
    if condition:
        out["Condition"] = condition
    return out


def trust(
    service: str | None = None,
    *,
    aws: str | list[str] | None = None,
    condition: dict | None = None,
    actions: str | list[str] = "sts:AssumeRole",
) -> dict:
    principal = {"Service": service} if service else {"AWS": aws}
    return document(statement("Trust", actions, principal=principal, condition=condition))


# Who acts in a role is its STS source identity, set once at sign-in and carried through role chaining
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html).
# Roles that act for a person or for Jenkins may be assumed only by a session that has one: setting it,
# or carrying it in a chain, needs sts:SetSourceIdentity in the trust policy, and sts:SourceIdentity is
# in the request either way.
WITH_SOURCE_IDENTITY = ["sts:AssumeRole", "sts:SetSourceIdentity"]
SOURCE_IDENTITY_PRESENT = {"Null": {"sts:SourceIdentity": "false"}}

# Registration can only be pending: the approval status a workload role may put on a new version
# (sagemaker:ModelApprovalStatus, in the request of CreateModelPackage and UpdateModelPackage).
PENDING = "PendingManualApproval"
ONLY_PENDING = {"StringEquals": {"sagemaker:ModelApprovalStatus": PENDING}}


def person_trust(aws: str | list[str]) -> dict:
    """A role a person (or Jenkins) assumes: only with a source identity."""
    return trust(aws=aws, actions=WITH_SOURCE_IDENTITY, condition=SOURCE_IDENTITY_PRESENT)


def audit_role_name(env: Environment) -> str:
    """The read-only role in each workload account through which the approver reads who started a run."""
    return env.audit_role


class Arns:
    """ARNs of the environment's resources in any of its accounts."""

    def __init__(self, env):
        self.env = env
        self.p = env.partition
        self.region = env.region

    def root(self, account_id: str) -> str:
        return f"arn:{self.p}:iam::{account_id}:root"

    def role(self, name: str, account_id: str) -> str:
        return f"arn:{self.p}:iam::{account_id}:role/{name}"

    def bucket(self, name: str) -> str:
        return f"arn:{self.p}:s3:::{name}"

    def objects(self, name: str, prefix: str = "") -> str:
        return f"arn:{self.p}:s3:::{name}/{prefix}*"

    def sagemaker(self, account_id: str, resource: str) -> str:
        return f"arn:{self.p}:sagemaker:{self.region}:{account_id}:{resource}"

    def kms_keys(self, account_id: str) -> str:
        return f"arn:{self.p}:kms:{self.region}:{account_id}:key/*"

    def table(self, account_id: str, name: str) -> str:
        return f"arn:{self.p}:dynamodb:{self.region}:{account_id}:table/{name}"

    def group_and_packages(self, group: str | None = None) -> list[str]:
        registry, group = self.env.registry_account_id, group or self.env.model_package_group
        return [
            self.sagemaker(registry, f"model-package-group/{group}"),
            self.sagemaker(registry, f"model-package/{group}/*"),
        ]

    def pipelines(self, account_id: str) -> list[str]:
        return [self.sagemaker(account_id, f"pipeline/{name}") for name in self.env.pipelines.values()]


KEY_USE = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
]
KEY_READ = ["kms:Decrypt", "kms:DescribeKey"]


def promotion_neighbours(env: Environment, label: str) -> tuple[list[str], list[str]]:
    """(upstream, downstream) workload account labels of `label` on the promotion path, in file order:
    a model trained upstream (dev) is read downstream (prod), never the other way round."""
    labels = list(env.workload_accounts)
    i = labels.index(label)
    return labels[:i], labels[i + 1 :]


def registry_prefix(label: str) -> str:
    """Where a workload account writes model artefacts in the registry bucket."""
    return f"{label}/"


def sealed_prefix(label: str) -> str:
    """Where a workload account's Seal step writes, once, what a registered version points at."""
    return f"sealed/{label}/"


# -- KMS key policies -------------------------------------------------------------------------------


def key_policy(env: Environment, account_id: str, *, users: list[str], readers: list[str]) -> dict:
    """Root delegation (so IAM policies in the account decide), named users, and other accounts that
    may only decrypt: their own IAM policies must still allow it, as AWS evaluates both sides."""
    arns = Arns(env)
    return document(
        statement("EnableIamPolicies", "kms:*", "*", principal={"AWS": arns.root(account_id)}),
        statement("AccountRolesUseKey", KEY_USE, "*", principal={"AWS": users}) if users else None,
        statement("OtherAccountsDecrypt", KEY_READ, "*", principal={"AWS": [arns.root(a) for a in readers]})
        if readers
        else None,
    )


def workload_key_policy(env: Environment) -> dict:
    arns = Arns(env)
    _, downstream = promotion_neighbours(env, env.account)
    users = [arns.role(env.roles.execution, env.account_id), arns.role(env.roles.jenkins, env.account_id)]
    readers = [env.accounts[label] for label in downstream] + [env.registry_account_id]
    return key_policy(env, env.account_id, users=users, readers=readers)


def registry_key_alias(env: Environment) -> str:
    return f"alias/{env.project}-registry"


def registry_key_policy(env: Environment) -> dict:
    """The approver uses the key; workload accounts may decrypt, so that an object the registry account
    itself wrote under sealed/ (the bucket default key) is still read and hash-checked by inference,
    not merely unreadable. What each may read stays decided by the bucket policy."""
    arns = Arns(env)
    return key_policy(
        env,
        env.registry_account_id,
        users=[arns.role(env.roles.approver, env.registry_account_id)],
        readers=list(env.workload_accounts.values()),
    )


# -- bucket policies --------------------------------------------------------------------------------


def _secure_transport_only(arns: Arns, bucket: str) -> dict:
    return statement(
        "DenyInsecureTransport",
        "s3:*",
        [arns.bucket(bucket), arns.objects(bucket)],
        effect="Deny",
        principal="*",
        condition={"Bool": {"aws:SecureTransport": "false"}},
    )


def data_bucket_policy(env: Environment, bucket: str) -> dict:
    """An account's own bucket: TLS only, and no put may ask for anything but SSE-KMS. A put without
    the header gets the bucket's default SSE-KMS key, so nothing lands unencrypted either way."""
    arns = Arns(env)
    return document(
        _secure_transport_only(arns, bucket),
        statement(
            "DenyNonKmsEncryption",
            "s3:PutObject",
            arns.objects(bucket),
            effect="Deny",
            principal="*",
            condition={"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        ),
    )


def registry_bucket_policy(env: Environment) -> dict:
    """Each workload execution role reads and writes under its own prefix and reads upstream prefixes.
    Writers come from other accounts, so they must name their own key: a put without SSE-KMS headers
    would fall back to the registry's key, which the reading accounts cannot use."""
    arns = Arns(env)
    bucket = env.buckets.registry
    statements = []
    for label, account_id in env.workload_accounts.items():
        upstream, _ = promotion_neighbours(env, label)
        role = {"AWS": arns.role(env.roles.execution, account_id)}
        sid = label.title().replace("-", "")
        statements.append(
            statement(
                f"{sid}ReadWriteOwnPrefix",
                ["s3:GetObject", "s3:PutObject"],
                [arns.objects(bucket, registry_prefix(label)), arns.objects(bucket, sealed_prefix(label))],
                principal=role,
            )
        )
        if upstream:
            statements.append(
                statement(
                    f"{sid}ReadUpstreamPrefixes",
                    "s3:GetObject",
                    [arns.objects(bucket, p(u)) for u in upstream for p in (registry_prefix, sealed_prefix)],
                    principal=role,
                )
            )
        statements.append(
            statement(
                f"{sid}InferenceAppendsRunRecords",
                "s3:PutObject",
                arns.objects(bucket, f"{registry_prefix(label)}runs/"),
                principal={"AWS": arns.role(env.roles.lambda_, account_id)},
            )
        )
        statements.append(
            statement(
                f"{sid}ListItsPrefixes",
                "s3:ListBucket",
                arns.bucket(bucket),
                principal=role,
                condition={
                    "StringLike": {
                        "s3:prefix": [f"{f(p)}*" for p in [label, *upstream] for f in (registry_prefix, sealed_prefix)]
                    }
                },
            )
        )
        # the inference Lambda verifies the sealed bytes' sha256 before any step uses them
        statements.append(
            statement(
                f"{sid}LambdaReadsSealed",
                "s3:GetObject",
                [arns.objects(bucket, sealed_prefix(p)) for p in [label, *upstream]],
                principal={"AWS": arns.role(env.roles.lambda_, account_id)},
            )
        )
    workloads = [
        arns.role(r, a) for a in env.workload_accounts.values() for r in (env.roles.execution, env.roles.lambda_)
    ]
    return document(
        *statements,
        # Sealed objects are written once: every put must carry If-None-Match (S3 then refuses an existing
        # key with 412), and nothing is deleted (a delete would let a later put "create" the key again).
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
        # Multipart uploads (their parts cannot carry the header) and CopyObject are refused there too.
        statement(
            "SealedObjectsAreWrittenOnce",
            "s3:PutObject",
            arns.objects(bucket, "sealed/"),
            effect="Deny",
            principal={"AWS": workloads},
            condition={"Null": {"s3:if-none-match": "true"}},
        ),
        statement(
            "SealedObjectsStay",
            ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            arns.objects(bucket, "sealed/"),
            effect="Deny",
            principal={"AWS": workloads},
        ),
        _secure_transport_only(arns, bucket),
        # where versions ran is append-only: a put there must be conditional on the key not existing
        statement(
            "RunRecordsAreAppendOnly",
            "s3:PutObject",
            arns.objects(bucket, "*/runs/"),
            effect="Deny",
            principal="*",
            condition={"Null": {"s3:if-none-match": "true"}},
        ),
        statement(
            "DenyUnencryptedPuts",
            "s3:PutObject",
            arns.objects(bucket),
            effect="Deny",
            principal="*",
            condition={"Null": {"s3:x-amz-server-side-encryption": "true"}},
        ),
        statement(
            "DenyNonKmsEncryption",
            "s3:PutObject",
            arns.objects(bucket),
            effect="Deny",
            principal="*",
            condition={"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        ),
    )


# -- event bus ----------------------------------------------------------------------------------------


def registry_puts_events_policy(env: Environment, sid: str) -> dict:
    """The statement PutPermission adds to a workload account's default bus: the registry account may put
    events on it (the forwarded model package state changes)."""
    arns = Arns(env)
    return document(
        statement(
            sid,
            "events:PutEvents",
            f"arn:{arns.p}:events:{env.region}:{env.account_id}:event-bus/default",
            principal={"AWS": arns.root(env.registry_account_id)},
        )
    )


# -- model package group --------------------------------------------------------------------------

LOOKUP_ACTIONS = [
    "sagemaker:DescribeModelPackage",
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:ListModelPackages",
]


def branch_model_package_group_policy(env: Environment) -> dict:
    """The group branch runs register in: dev-like accounts' execution roles register and read; no
    principal at all may update a package (approve, or anything else): branch versions stay
    PendingManualApproval forever, so no inference Lambda, which reads only Approved versions of the
    main group, can ever serve one in stage or prod."""
    arns = Arns(env)
    group = branch_group(env)
    dev_like = [arns.role(env.roles.execution, a) for label, a in env.workload_accounts.items() if label == "dev"]
    resources = arns.group_and_packages(group)
    return document(
        statement(
            "DevExecutionRolesRegisterBranchRunsPending",
            "sagemaker:CreateModelPackage",
            resources,
            principal={"AWS": dev_like},
            condition=ONLY_PENDING,
        ),
        statement("DevExecutionRolesReadBranchRuns", LOOKUP_ACTIONS, resources, principal={"AWS": dev_like}),
        statement(
            "NoBranchVersionIsEverApproved",
            ["sagemaker:UpdateModelPackage"],
            resources,
            effect="Deny",
            principal={"AWS": "*"},
        ),
    )


def model_package_group_policy(env: Environment) -> dict:
    """Workload accounts register (only as PendingManualApproval) and read; nobody outside the registry
    account changes a package: approval is the approver role's, which its own (same-account) IAM policy
    grants. The Deny statements hold even if a workload role's own policy were widened."""
    arns = Arns(env)
    accounts = env.workload_accounts.values()
    executions = [arns.role(env.roles.execution, a) for a in accounts]
    lookups = [arns.role(env.roles.lambda_, a) for a in accounts]
    workload = executions + lookups + [arns.role(env.roles.jenkins, a) for a in accounts]
    resources = arns.group_and_packages()
    return document(
        statement(
            "WorkloadExecutionRolesRegisterPending",
            "sagemaker:CreateModelPackage",
            resources,
            principal={"AWS": executions},
            condition=ONLY_PENDING,
        ),
        statement("WorkloadExecutionRolesRead", LOOKUP_ACTIONS, resources, principal={"AWS": executions}),
        statement("InferenceLambdaLooksUpApproved", LOOKUP_ACTIONS, resources, principal={"AWS": lookups}),
        statement(
            "NoApprovedRegistrationFromWorkloadAccounts",
            "sagemaker:CreateModelPackage",
            resources,
            effect="Deny",
            principal={"AWS": workload},
            condition={"StringNotEquals": {"sagemaker:ModelApprovalStatus": PENDING}},
        ),
        statement(
            "NoApprovalFromWorkloadAccounts",
            ["sagemaker:UpdateModelPackage"],
            resources,
            effect="Deny",
            principal={"AWS": workload},
        ),
    )


# -- identity policies ----------------------------------------------------------------------------


def _name_prefixed(arns: Arns, account_id: str, env) -> list[str]:
    # SageMaker Pipelines names the jobs it launches "pipelines-<execution>-<step>-..."; jobs the
    # toolkit starts itself carry the project prefix. Tuning job names are capped at 32 characters, so
    # a pipeline's tuning job carries neither prefix: any tuning job in this account (what it may train
    # is still bounded by PassRole to this role only and by the data and key statements).
    kinds = ["processing-job", "training-job", "transform-job", "model"]
    return [
        arns.sagemaker(account_id, f"{kind}/{prefix}*")
        for kind in kinds
        for prefix in (f"{env.project}-", "pipelines-")
    ] + [arns.sagemaker(account_id, "hyper-parameter-tuning-job/*")]


def execution_role_policies(env: Environment) -> dict[str, dict]:
    arns = Arns(env)
    account_id, label = env.account_id, env.account
    upstream, _ = promotion_neighbours(env, label)
    key = key_arn_ref(env.kms_key_alias)
    data, registry = env.buckets.artifacts, env.buckets.registry
    own_prefix = registry_prefix(label)
    read_prefixes = [own_prefix] + [registry_prefix(u) for u in upstream]
    region = env.region
    data_access = document(
        statement("DataBucketObjects", ["s3:GetObject", "s3:PutObject"], arns.objects(data)),
        statement("DataBucketList", ["s3:GetBucketLocation", "s3:ListBucket"], arns.bucket(data)),
        statement(
            "RegistryArtifactsOwnPrefix",
            ["s3:GetObject", "s3:PutObject"],
            [arns.objects(registry, own_prefix), arns.objects(registry, sealed_prefix(label))],
        ),
        statement(
            "RegistryArtifactsUpstreamRead",
            "s3:GetObject",
            [arns.objects(registry, p(u)) for u in upstream for p in (registry_prefix, sealed_prefix)],
        )
        if upstream
        else None,
        statement(
            "RegistryArtifactsList",
            "s3:ListBucket",
            arns.bucket(registry),
            condition={
                "StringLike": {
                    "s3:prefix": [f"{p}*" for p in read_prefixes] + [f"{sealed_prefix(p)}*" for p in [label, *upstream]]
                }
            },
        ),
        statement("OwnKey", KEY_USE, key),
        statement(
            "OwnKeyGrantsForSageMakerVolumes",
            "kms:CreateGrant",
            key,
            condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        # Models trained upstream are encrypted with the upstream account's key; that key's policy
        # names this account, so only keys that chose to share with us are usable.
        statement("UpstreamKeysDecrypt", KEY_READ, [arns.kms_keys(env.accounts[u]) for u in upstream])
        if upstream
        else None,
    )
    sagemaker = document(
        statement(
            "PipelineJobs",
            [
                "sagemaker:AddTags",
                "sagemaker:CreateHyperParameterTuningJob",
                "sagemaker:CreateModel",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:CreateTransformJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:DescribeModel",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:DescribeTransformJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                "sagemaker:StopHyperParameterTuningJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:StopTransformJob",
            ],
            _name_prefixed(arns, account_id, env),
        ),
        statement(
            "RegisterInCentralRegistryOnlyPending",
            "sagemaker:CreateModelPackage",
            arns.group_and_packages(),
            condition=ONLY_PENDING,
        ),
        statement("ReadCentralRegistry", LOOKUP_ACTIONS[:-1], arns.group_and_packages()),
        # branch runs (dev-like accounts only) register in the group where nothing can be approved
        statement(
            "RegisterBranchRuns",
            "sagemaker:CreateModelPackage",
            arns.group_and_packages(branch_group(env)),
            condition=ONLY_PENDING,
        )
        if env.kind == "dev"
        else None,
        statement("ReadBranchRuns", LOOKUP_ACTIONS[:-1], arns.group_and_packages(branch_group(env)))
        if env.kind == "dev"
        else None,
        statement("ListRegistryPackages", "sagemaker:ListModelPackages", "*"),
        statement(
            "InvokeInferenceStepLambda",
            "lambda:InvokeFunction",
            f"arn:{arns.p}:lambda:{region}:{account_id}:function:{env.project}-*",
        ),
        statement(
            "PassOnlyItselfToSageMaker",
            "iam:PassRole",
            arns.role(env.roles.execution, account_id),
            condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
    )
    runtime = document(
        statement(
            "PullSageMakerImages",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            f"arn:{arns.p}:ecr:{region}:*:repository/sagemaker-*",
        ),
        statement("EcrLogin", "ecr:GetAuthorizationToken", "*"),
        statement(
            "JobLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [
                f"arn:{arns.p}:logs:{region}:{account_id}:log-group:/aws/sagemaker/*",
                f"arn:{arns.p}:logs:{region}:{account_id}:log-group:/aws/sagemaker/*:log-stream:*",
            ],
        ),
        statement(
            "JobMetrics",
            "cloudwatch:PutMetricData",
            "*",
            condition={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        ),
        # the run metrics the steps publish (pipelines/metrics.py), in the project's namespace only
        run_metrics_statement(env, "RunMetrics"),
    )
    policies = {"data-and-keys": data_access, "sagemaker-pipeline-steps": sagemaker, "runtime": runtime}
    if env.network is not None:
        policies["vpc-network-interfaces"] = vpc_network_interfaces(env)
    return policies


JOB_CREATION = [
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateModel",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
]


def vpc_network_interfaces(env: Environment) -> dict:
    """What SageMaker needs from the execution role to put a job's network interfaces in the environment's
    subnets (https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html): creating one only in
    those subnets with those security groups, and managing only interfaces in those subnets (ec2:Subnet)."""
    arns = Arns(env)
    ec2 = f"arn:{arns.p}:ec2:{env.region}:{env.account_id}"
    assert env.network is not None  # asked for only when the environment has a network block
    subnets = [f"{ec2}:subnet/{s}" for s in env.network.subnets]
    groups = [f"{ec2}:security-group/{g}" for g in env.network.security_groups]
    return document(
        statement(
            "CreateJobInterfacesInProjectSubnets",
            "ec2:CreateNetworkInterface",
            [*subnets, *groups, f"{ec2}:network-interface/*"],
        ),
        statement(
            "ManageJobInterfacesInProjectSubnets",
            [
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            f"{ec2}:network-interface/*",
            condition={"ArnEquals": {"ec2:Subnet": subnets}},
        ),
        # AWS-enforced: this role creates no job or model outside the environment's subnets and groups
        statement(
            "NoJobOutsideTheEnvironmentVpc",
            JOB_CREATION,
            "*",
            effect="Deny",
            condition={"Null": {"sagemaker:VpcSubnets": "true"}},
        ),
        statement(
            "NoJobInOtherSubnets",
            JOB_CREATION,
            "*",
            effect="Deny",
            condition={"ForAnyValue:StringNotEquals": {"sagemaker:VpcSubnets": list(env.network.subnets)}},
        ),
        statement(
            "NoJobWithOtherSecurityGroups",
            JOB_CREATION,
            "*",
            effect="Deny",
            condition={
                "ForAnyValue:StringNotEquals": {"sagemaker:VpcSecurityGroupIds": list(env.network.security_groups)}
            },
        ),
        statement(
            "DescribeNetwork",
            [
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            "*",
        ),
    )


def run_metrics_statement(env: Environment, sid: str) -> dict:
    """cloudwatch:PutMetricData in MLOps/<project> only: metrics have no ARN, AWS scopes publishing by the
    cloudwatch:namespace condition key
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html)."""
    return statement(
        sid,
        "cloudwatch:PutMetricData",
        "*",
        condition={"StringEquals": {"cloudwatch:namespace": metrics_namespace(env.project)}},
    )


def lambda_role_policies(env: Environment) -> dict[str, dict]:
    arns = Arns(env)
    upstream, _ = promotion_neighbours(env, env.account)
    logs = f"arn:{arns.p}:logs:{env.region}:{env.account_id}:log-group:/aws/lambda/{env.project}-*"
    docs = {
        "latest-approved-model": document(
            statement("DescribeRegistryPackages", LOOKUP_ACTIONS[:-1], arns.group_and_packages()),
            statement("ListRegistryPackages", "sagemaker:ListModelPackages", "*"),
            # it checks the sha256 of what the version points at: the sealed copies, under the key of the
            # account that trained them (whose key policy names this account when it is downstream)
            statement(
                "ReadSealedArtefacts",
                "s3:GetObject",
                [arns.objects(env.buckets.registry, sealed_prefix(p)) for p in [env.account, *upstream]],
            ),
            statement(
                "DecryptSealedArtefacts",
                KEY_READ,
                [key_arn_ref(env.kms_key_alias)]
                + [arns.kms_keys(env.accounts[u]) for u in upstream]
                + [arns.kms_keys(env.registry_account_id)],
            ),
            # the RecordRun step appends where a version ran; the registry bucket policy refuses any
            # put there without If-None-Match: *, so a record is never overwritten
            statement(
                "AppendRunRecords",
                "s3:PutObject",
                arns.objects(env.buckets.registry, f"{registry_prefix(env.account)}runs/"),
            ),
            statement("EncryptRunRecords", ["kms:DescribeKey", "kms:GenerateDataKey"], key_arn_ref(env.kms_key_alias)),
            statement(
                "FunctionLogs",
                ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                [logs, f"{logs}:log-stream:*"],
            ),
        )
    }
    # the run-metrics function (pipelines/triggers/run_metrics.py) publishes PipelineRuns/PipelineDuration
    docs["publish-run-metrics"] = document(run_metrics_statement(env, "PublishRunMetrics"))
    arrivals = getattr(env, "arrivals", ())
    if arrivals:
        # The arrival function starts exactly the pipelines an arrival trigger names, nothing else.
        targets = sorted({arns.sagemaker(env.account_id, f"pipeline/{env.pipelines[a.pipeline]}") for a in arrivals})
        docs["start-on-arrival"] = document(
            statement("StartArrivalPipelines", "sagemaker:StartPipelineExecution", targets)
        )
    return docs


def events_role_policies(env: Environment) -> dict[str, dict]:
    arns = Arns(env)
    return {
        "start-project-pipelines": document(
            statement(
                "StartProjectPipelines",
                "sagemaker:StartPipelineExecution",
                # dev-like accounts also hold branch namespaces' pipelines (<project>-<namespace>-...),
                # the pattern Jenkins deploys there already; prod-like accounts: the named pipelines only
                [arns.sagemaker(env.account_id, f"pipeline/{env.project}-*")]
                if env.kind == "dev"
                else arns.pipelines(env.account_id),
            )
        )
    }


def jenkins_trust(env: Environment) -> dict:
    """The Jenkins agent, with the ExternalId. A source identity the agent's session carries passes on
    (AWS requires sts:SetSourceIdentity for that), but none is required: Jenkins' withAWS step assumes the
    role without one. A run Jenkins starts without one has no verified starter, so separation of duties
    refuses every decision on what it registers (fail closed)."""
    return trust(
        aws=env.jenkins.principal_arn,
        actions=WITH_SOURCE_IDENTITY,
        condition={"StringEquals": {"sts:ExternalId": env.jenkins.external_id}},
    )


def audit_trust(env: Environment) -> dict:
    """Only the approver role, carrying the approver's source identity, may read who started a run here."""
    return person_trust(Arns(env).role(env.roles.approver, env.registry_account_id))


def audit_role_policies(env: Environment) -> dict[str, dict]:
    """Read who started the pipeline execution that registered a version, and which version it registered:
    CloudTrail's StartPipelineExecution record and the execution's steps. Nothing else."""
    arns = Arns(env)
    account_id, project = env.account_id, env.project
    return {
        "read-registration-provenance": document(
            statement(
                "ReadProjectPipelineExecutions",
                ["sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps"],
                [
                    arns.sagemaker(account_id, f"pipeline/{project}-*"),
                    arns.sagemaker(account_id, f"pipeline/{project}-*/execution/*"),
                ],
            ),
            statement("WhoStartedThem", "cloudtrail:LookupEvents", "*"),
        )
    }


def jenkins_role_policies(env: Environment) -> dict[str, dict]:
    """What a deploy from Jenkins does in this account: upsert the pipelines (code, Lambda, pipeline),
    and apply mlops-infra/ (rules, topics, its own roles) with Terraform state in S3 + DynamoDB."""
    arns = Arns(env)
    account_id, region, project = env.account_id, env.region, env.project
    key = key_arn_ref(env.kms_key_alias)
    pipelines_arns = [
        arns.sagemaker(account_id, f"pipeline/{project}-*"),
        arns.sagemaker(account_id, f"pipeline/{project}-*/execution/*"),
    ]
    function = f"arn:{arns.p}:lambda:{region}:{account_id}:function:{project}-*"
    state_bucket = env.buckets.terraform_state
    deploy_pipelines = document(
        statement(
            "UpsertProjectPipelines",
            [
                "sagemaker:AddTags",
                "sagemaker:CreatePipeline",
                "sagemaker:DescribePipeline",
                "sagemaker:DescribePipelineExecution",
                "sagemaker:ListPipelineExecutionSteps",
                "sagemaker:ListPipelineExecutions",
                "sagemaker:ListTags",
                "sagemaker:RetryPipelineExecution",
                "sagemaker:StartPipelineExecution",
                "sagemaker:StopPipelineExecution",
                "sagemaker:UpdatePipeline",
            ],
            pipelines_arns,
        ),
        statement(
            "PassExecutionRoleToSageMaker",
            "iam:PassRole",
            arns.role(env.roles.execution, account_id),
            condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        statement(
            "PassLambdaRoleToLambda",
            "iam:PassRole",
            arns.role(env.roles.lambda_, account_id),
            condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        ),
        statement(
            "PassEventsRoleToEventBridge",
            "iam:PassRole",
            arns.role(env.roles.events, account_id),
            condition={"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}},
        ),
        statement(
            "InferenceStepLambda",
            [
                "lambda:AddPermission",
                "lambda:CreateFunction",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:GetPolicy",
                "lambda:RemovePermission",
                "lambda:TagResource",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
            ],
            function,
        ),
        # write-only, and only where the upsert writes (UPSERT_PREFIXES). No read of the bucket: it holds
        # training data and pipeline outputs.
        statement(
            "PutPipelineCodeAndSampleData",
            "s3:PutObject",
            [arns.objects(env.buckets.artifacts, prefix) for prefix in UPSERT_PREFIXES],
        ),
        # dev-like accounts hold git branches' namespaces: a deploy claims one (branches/<ns>/branch.json)
        # and `run-pipeline teardown --branch` removes the branch's pipelines, Lambda and S3 data there
        statement(
            "TearDownBranches",
            ["lambda:DeleteFunction", "sagemaker:DeletePipeline"],
            [pipelines_arns[0], function],
        )
        if env.kind == "dev"
        else None,
        statement(
            "BranchNamespaces",
            ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            arns.objects(env.buckets.artifacts, "branches/"),
        )
        if env.kind == "dev"
        else None,
        statement(
            "ListBranchNamespaces",
            "s3:ListBucket",
            arns.bucket(env.buckets.artifacts),
            condition={"StringLike": {"s3:prefix": ["branches/*"]}},
        )
        if env.kind == "dev"
        else None,
        statement(
            "EncryptWithAccountKey", ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"], key
        ),
    )
    # mlops-infra/ names everything it creates <project>-<environment>-...; the bootstrap's own key alias
    # (alias/<project>-<environment>) does not match, so Terraform cannot re-point it.
    infra_prefix = f"{project}-{env.name}-"
    keys = f"arn:{arns.p}:kms:{region}:{account_id}:key/*"
    # Keys Terraform creates carry the provider's default tags (promote/infra.py: managed-by=mlops-infra,
    # project, environment); a key is the toolkit's only if it was created with them, and nothing may add
    # them to another key (TagResource itself needs them already). AWS KMS ABAC:
    # https://docs.aws.amazon.com/kms/latest/developerguide/abac.html
    infra_tags = {"managed-by": INFRA_MANAGED_BY, "project": project, "environment": env.name}
    toolkit_keys = {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in infra_tags.items()}}
    deploy_infra = document(
        statement(
            "ProjectRules",
            [
                "events:DeleteRule",
                "events:DescribeRule",
                "events:DisableRule",
                "events:EnableRule",
                "events:ListTagsForResource",
                "events:ListTargetsByRule",
                "events:PutRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:TagResource",
                "events:UntagResource",
            ],
            f"arn:{arns.p}:events:{region}:{account_id}:rule/{infra_prefix}*",
        ),
        # No events:PutPermission: it takes no resource and no condition on the principal, so whoever holds
        # it can open the bus to Principal "*". The bootstrap lets the registry account in (an admin's act);
        # Terraform only reads the bus and may remove the statement older versions of mlops-infra/ added.
        statement("ReadBusAndRetireOldPermission", ["events:DescribeEventBus", "events:RemovePermission"], "*"),
        statement(
            "ProjectTopics",
            [
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetTopicAttributes",
                "sns:ListSubscriptionsByTopic",
                "sns:ListTagsForResource",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:TagResource",
                "sns:UntagResource",
            ],
            f"arn:{arns.p}:sns:{region}:{account_id}:{infra_prefix}*",
        ),
        statement("TopicSubscriptions", ["sns:GetSubscriptionAttributes", "sns:Unsubscribe"], "*"),
        # The environment's alarms, whose actions may only publish to its own topics (cloudwatch:AlarmActions,
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-alarm-actions.html)
        statement(
            "ProjectAlarms",
            "cloudwatch:PutMetricAlarm",
            f"arn:{arns.p}:cloudwatch:{region}:{account_id}:alarm:{infra_prefix}*",
            condition={
                "ForAllValues:StringLike": {
                    "cloudwatch:AlarmActions": [f"arn:{arns.p}:sns:{region}:{account_id}:{infra_prefix}*"]
                }
            },
        ),
        statement(
            "ManageProjectAlarms",
            [
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            f"arn:{arns.p}:cloudwatch:{region}:{account_id}:alarm:{infra_prefix}*",
        ),
        # dashboards are global: their ARN has no region
        statement(
            "ProjectDashboards",
            ["cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard", "cloudwatch:PutDashboard"],
            f"arn:{arns.p}:cloudwatch::{account_id}:dashboard/{infra_prefix}*",
        ),
        # the notification topic's own key (EventBridge cannot publish to a topic under the AWS key),
        # created only with the toolkit's tags
        statement(
            "CreateTaggedTopicKey",
            "kms:CreateKey",
            "*",
            condition={"StringEquals": {f"aws:RequestTag/{k}": v for k, v in infra_tags.items()}},
        ),
        statement(
            "ManageOnlyTheToolkitsKeys",
            [
                "kms:CreateAlias",
                "kms:DeleteAlias",
                "kms:DescribeKey",
                "kms:EnableKeyRotation",
                "kms:GetKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:ListResourceTags",
                "kms:PutKeyPolicy",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateAlias",
                "kms:UpdateKeyDescription",
            ],
            keys,
            condition=toolkit_keys,
        ),
        statement(
            "TopicKeyAlias",
            ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
            f"arn:{arns.p}:kms:{region}:{account_id}:alias/{infra_prefix}*",
        ),
        statement("ListKeyAliases", "kms:ListAliases", "*"),
        statement(
            "HandsOffTheBootstrapKey",
            [
                "kms:CreateAlias",
                "kms:DeleteAlias",
                "kms:DisableKey",
                "kms:DisableKeyRotation",
                "kms:PutKeyPolicy",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateAlias",
                "kms:UpdateKeyDescription",
            ],
            key,
            effect="Deny",
        ),
        statement("TerraformStateList", "s3:ListBucket", arns.bucket(state_bucket)),
        statement(
            "TerraformStateObjects", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], arns.objects(state_bucket)
        ),
        statement(
            "TerraformLock",
            ["dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"],
            arns.table(account_id, env.terraform_lock_table),
        ),
    )
    return {"deploy-pipelines": deploy_pipelines, "deploy-infra": deploy_infra}


def approver_role_policies(env: Environment) -> dict[str, dict]:
    arns = Arns(env)
    registry = env.buckets.registry
    keys = [key_arn_ref(registry_key_alias(env))] + [arns.kms_keys(a) for a in env.workload_accounts.values()]
    return {
        "approve-model-packages": document(
            statement(
                "ApproveGroupPackages",
                [
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:UpdateModelPackage",
                ],
                arns.group_and_packages(),
            ),
            statement("ListPackages", ["sagemaker:ListModelPackageGroups", "sagemaker:ListModelPackages"], "*"),
            # `promote status` reads every version in one Search page per 100 versions instead of one
            # DescribeModelPackage each (Search reaches only this, the registry, account)
            statement("SearchPackages", "sagemaker:Search", "*"),
            # separation of duties reads who started the registering run, in the account where it ran
            statement(
                "ReadRegistrationProvenance",
                WITH_SOURCE_IDENTITY,
                [arns.role(audit_role_name(env), a) for a in env.workload_accounts.values()],
            ),
            statement("ReadArtifactsForReports", "s3:GetObject", arns.objects(registry)),
            statement("ListArtifacts", ["s3:GetBucketLocation", "s3:ListBucket"], arns.bucket(registry)),
            # Reports read artefacts encrypted with the key of the account that trained them; those keys'
            # policies name the registry account, the only keys in these accounts that do.
            statement("DecryptArtifacts", KEY_READ, keys),
        )
    }
