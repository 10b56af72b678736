"""`promote infra`: plan, apply or destroy mlops-infra/ for one environment, variables generated from its YAML.

Terraform runs in a per-environment working directory outside the source tree (.terraform-work/<env>,
or $MLOPS_TERRAFORM_WORKDIR/<env>) holding a copy of mlops-infra/, the generated
terraform.tfvars.json, the saved plan (plan.tfplan) and its text (plan.txt). State is remote: the
environment's state bucket with its DynamoDB lock table. Whatever a backend needs beyond that (the
sandbox: endpoints, an offline provider mirror) comes from `backend.terraform_overrides()`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlops_core.config import REPO_ROOT
from mlops_core.errors import ToolkitError

SOURCE_DIR = REPO_ROOT / "mlops-infra"
VARS_FILE = "terraform.tfvars.json"
PLAN_FILE = "plan.tfplan"
PLAN_TEXT = "plan.txt"
CLI_CONFIG_FILE = "terraform.rc"


def terraform_vars(env) -> dict:
    """The variables of mlops-infra/, all derived from the environment: the one source of truth."""
    return {
        "region": env.region,
        "project": env.project,
        "environment": env.name,
        "account_id": env.account_id,
        "registry_account_id": env.registry_account_id,
        "model_package_group_name": env.model_package_group,
        "inference_pipeline_arn": env.pipeline_arn("inference"),
        "train_pipeline_arn": env.pipeline_arn("train"),
        "events_role_arn": env.role_arn("events"),
        "schedule_expression": env.schedule,
        "notification_emails": list(env.notification_emails),
        "tags": {"project": env.project, "environment": env.name, "managed-by": "mlops-infra"},
    }


def check_target_account(env, account_id: str | None) -> None:
    """The account a caller (Jenkins' prodAccount) says it deploys to must be the environment's."""
    import re
    from mlops_core.errors import ConfigError

    if account_id is None:
        return
    if not re.fullmatch(r"\d{12}", account_id):
        raise ConfigError(f"{account_id!r} is not a 12-digit AWS account id", field="--account-id")
    if account_id != env.account_id:
        raise ConfigError(
            f"{account_id} is not the account of environment '{env.name}' "
            f"({env.account_id}, accounts.{env.account} in {env.source.name})",
            field="--account-id",
        )


def deploy_target(env) -> dict:
    """What a deployer needs to reach the environment (`promote infra --check`): no secret in it."""
    return {
        "environment": env.name,
        "account_id": env.account_id,
        "region": env.region,
        "jenkins_role": env.roles.jenkins,
        "jenkins_role_arn": env.role_arn("jenkins"),
        "external_id": env.jenkins.external_id,
        "terraform_vars": terraform_vars(env),
        "state": state_backend_config(env),
    }


def state_backend_config(env) -> dict:
    """Remote state in the bootstrap's bucket, locked with its DynamoDB table, encrypted with the env key."""
    return {
        "bucket": env.buckets.terraform_state,
        "key": f"mlops-infra/{env.name}/terraform.tfstate",
        "region": env.region,
        "dynamodb_table": env.terraform_lock_table,
        "encrypt": "true",
        "kms_key_id": f"arn:{env.partition}:kms:{env.region}:{env.account_id}:{env.kms_key_alias}",
    }


class StateStorageMissing(ToolkitError):
    """The Terraform state bucket or lock table is not there: the account was not bootstrapped."""


def check_state_storage(env, sessions) -> None:
    """Fail before Terraform does, naming the missing bucket or table and the command that creates it."""
    from botocore.exceptions import ClientError

    session = sessions.workload()
    fix = f"run `bootstrap-account --env {env.name} --account {env.account} --apply` first"
    try:
        # ListObjectsV2 needs s3:ListBucket, as Terraform's S3 backend does; nothing more is asked for
        sessions.client("s3", session).list_objects_v2(
            Bucket=env.buckets.terraform_state, MaxKeys=1, Prefix=state_backend_config(env)["key"]
        )
    except ClientError as exc:
        if exc.response["Error"].get("Code") in ("404", "NoSuchBucket"):
            raise StateStorageMissing(
                f"Terraform state bucket '{env.buckets.terraform_state}' (buckets.terraform_state) "
                f"does not exist in account {env.account_id}: {fix}"
            ) from None
        raise
    try:
        sessions.client("dynamodb", session).describe_table(TableName=env.terraform_lock_table)
    except ClientError as exc:
        if exc.response["Error"].get("Code") == "ResourceNotFoundException":
            raise StateStorageMissing(
                f"Terraform lock table '{env.terraform_lock_table}' (terraform.lock_table) "
                f"does not exist in account {env.account_id}: {fix}"
            ) from None
        raise


def working_dir(env) -> Path:
    base = os.environ.get("MLOPS_TERRAFORM_WORKDIR")
    # absolute: terraform runs inside it, and paths handed to it must not be relative to the caller
    return ((Path(base) if base else Path.cwd() / ".terraform-work") / env.name).resolve()


@dataclass(frozen=True)
class InfraResult:
    mode: str
    working_dir: Path
    has_changes: bool
    plan_text: str
    applied: bool
    outputs: dict

    @property
    def plan_file(self) -> Path:
        return self.working_dir / PLAN_FILE

    @property
    def plan_text_file(self) -> Path:
        return self.working_dir / PLAN_TEXT

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "working_dir": str(self.working_dir),
            "has_changes": self.has_changes,
            "applied": self.applied,
            "plan_file": str(self.plan_file),
            "plan_text_file": str(self.plan_text_file),
            "outputs": self.outputs,
        }


def prepare_working_dir(env, overrides=None) -> Path:
    """A fresh copy of mlops-infra/ (keeping .terraform/ so init stays fast), the vars and overrides."""
    workdir = working_dir(env)
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in list(workdir.glob("*.tf")) + [workdir / "modules"]:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    for item in SOURCE_DIR.iterdir():
        if item.name.startswith(".") or item.name.endswith((".tfstate", ".tfvars", ".tfvars.json")):
            continue
        if item.is_dir():
            shutil.copytree(item, workdir / item.name, ignore=shutil.ignore_patterns(".terraform*"))
        elif item.suffix == ".tf":
            shutil.copy2(item, workdir / item.name)
    (workdir / VARS_FILE).write_text(json.dumps(terraform_vars(env), indent=2, sort_keys=True) + "\n")
    if overrides is not None:
        for name, text in overrides.files.items():
            (workdir / name).write_text(text)
        if overrides.cli_config:
            (workdir / CLI_CONFIG_FILE).write_text(overrides.cli_config)
    return workdir


def terraform_environment(env, sessions, overrides, workdir: Path) -> dict:
    """Credentials of the identity that deploys to the environment's account (on a Jenkins agent: the
    cross-account role), handed to terraform as environment variables, never on its command line."""
    credentials = sessions.workload().get_credentials().get_frozen_credentials()
    variables = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_REGION": env.region,
        "AWS_DEFAULT_REGION": env.region,
        "AWS_SESSION_TOKEN": credentials.token,
    }
    if overrides is not None:
        variables.update(overrides.env)
        if overrides.cli_config:
            variables["TF_CLI_CONFIG_FILE"] = str(workdir / CLI_CONFIG_FILE)
    return variables


def run_infra(env, mode: str, *, sessions=None, echo=print, want_outputs: bool = True) -> InfraResult:
    """plan: show and save the plan. apply: plan, then apply that saved plan. destroy: plan a destroy
    and apply it. Re-running apply on an unchanged environment changes nothing and says so.
    want_outputs=False skips reading the Terraform outputs after an apply (one provider start-up)."""
    from mlops_core.session import Sessions
    from promote.terraform import TerraformCli

    if mode not in ("plan", "apply", "destroy"):
        raise ValueError(mode)
    sessions = sessions or Sessions(env)
    check_state_storage(env, sessions)
    overrides = _overrides(sessions.backend)
    workdir = prepare_working_dir(env, overrides)
    tf = TerraformCli(workdir, env=_process_env(terraform_environment(env, sessions, overrides, workdir)))
    _init_unless_current(tf, workdir, {**state_backend_config(env), **(overrides.backend_config if overrides else {})})
    plan = tf.plan(VARS_FILE, PLAN_FILE, destroy=(mode == "destroy"))
    (workdir / PLAN_TEXT).write_text(plan.text)
    echo(plan.text.rstrip())
    echo(f"plan saved: {workdir / PLAN_FILE} (text: {workdir / PLAN_TEXT})")
    applied = False
    if mode in ("apply", "destroy"):
        if plan.has_changes:
            summary = [
                line
                for line in tf.apply(PLAN_FILE).splitlines()
                if line.startswith(("Apply complete", "Destroy complete"))
            ]
            echo(summary[-1] if summary else "apply complete")
            applied = True
        else:
            echo(f"no changes: {env.name} infrastructure is up to date, nothing applied")
    outputs = tf.output() if mode == "apply" and want_outputs else {}
    for name, value in sorted(outputs.items()):
        echo(f"output {name} = {json.dumps(value, sort_keys=True)}")
    return InfraResult(mode, workdir, plan.has_changes, plan.text, applied, outputs)


def _init_unless_current(tf, workdir: Path, backend_config: dict) -> None:
    """`terraform init` only when the code, the backend settings or the CLI configuration changed
    since the last successful one: init starts the provider and reads remote state, seconds each run."""
    import hashlib

    digest = hashlib.sha256(json.dumps(backend_config, sort_keys=True).encode())
    for path in sorted(workdir.rglob("*")):
        if path.suffix in (".tf", ".rc") and ".terraform" not in path.relative_to(workdir).parts:
            digest.update(str(path.relative_to(workdir)).encode() + b"\0" + path.read_bytes())
    marker = workdir / ".terraform" / "mlops-init.sha256"
    current = digest.hexdigest()
    if (workdir / ".terraform" / "terraform.tfstate").exists() and marker.exists() and marker.read_text() == current:
        return
    tf.init(backend_config)
    marker.write_text(current)


def _overrides(backend):
    get = getattr(backend, "terraform_overrides", None)
    return get() if get else None


def _process_env(variables: dict) -> dict:
    # A profile from the caller's shell would override the credentials chosen above; None unsets it.
    return {"AWS_PROFILE": None, **variables}
