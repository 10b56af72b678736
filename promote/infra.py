"""`promote infra`: plan, apply or destroy mlops-infra/ for one environment, variables generated from its YAML.

Terraform runs in a per-environment working directory outside the source tree (.terraform-work/<env>,
or $MLOPS_TERRAFORM_WORKDIR/<env>) holding a copy of mlops-infra/, the generated
terraform.tfvars.json, the saved plan (plan.tfplan) and its text (plan.txt). State is remote: the
environment's state bucket with its DynamoDB lock table. Whatever a backend needs beyond that (the
sandbox: endpoints, an offline provider mirror) comes from `backend.terraform_overrides()`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops_core.backend import TerraformOverrides
from mlops_core.config import REPO_ROOT, Environment
from mlops_core.errors import ConfigError, ToolkitError
from mlops_core.session import Sessions
from pipelines.branches import claim_namespace
from pipelines.definitions import ARRIVAL_FUNCTION
from pipelines.metrics import namespace as metric_namespace
from promote.monitoring import alarm_arn, alarms, dashboard_body
from promote.notifications import notification_rules, notification_topics
from promote.terraform import TerraformCli

SOURCE_DIR = REPO_ROOT / "mlops-infra"
VARS_FILE = "terraform.tfvars.json"
PLAN_FILE = "plan.tfplan"
PLAN_TEXT = "plan.txt"
CLI_CONFIG_FILE = "terraform.rc"


def terraform_vars(env: Environment) -> dict:
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
        "quality_pipeline_arn": env.pipeline_arn("quality"),
        "hpo_pipeline_arn": env.pipeline_arn("hpo"),
        "events_role_arn": env.role_arn("events"),
        "schedule_expression": env.schedule,
        "notification_emails": list(env.notification_emails),
        "notification_rules": notification_rules(env),
        "notification_topics": notification_topics(env),
        "metric_namespace": metric_namespace(env.project),
        "dashboard_body": dashboard_body(env, [alarm_arn(env, a["name"]) for a in alarms(env)]),
        "alarms": alarms(env),
        "arrival_bucket": env.buckets.artifacts,
        "arrival_function_arn": arrival_function_arn(env),
        "arrival_triggers": [
            {
                "name": a.name,
                "prefix": a.prefix,
                "suffix": a.suffix,
                "pipeline_name": env.pipelines[a.pipeline],
                "parameter": a.parameter,
            }
            for a in env.arrivals
        ],
        # a branch's resources carry its environment's tags (what the deploy role's conditions name) and its own
        "tags": {
            "project": env.project,
            "environment": env.base_name or env.name,
            "managed-by": "mlops-infra",
            **({"branch-namespace": env.namespace} if env.namespace else {}),
        },
    }


def arrival_function_arn(env: Environment) -> str:
    return f"arn:{env.partition}:lambda:{env.region}:{env.account_id}:function:{env.project}-{ARRIVAL_FUNCTION}"


def check_target_account(env: Environment, account_id: str | None) -> None:
    """The account a caller (Jenkins' prodAccount) says it deploys to must be the environment's."""

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


def deploy_target(env: Environment) -> dict:
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


def state_backend_config(env: Environment) -> dict:
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


def check_state_storage(env: Environment, sessions: Sessions) -> None:
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


def working_dir(env: Environment) -> Path:
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


def prepare_working_dir(env: Environment, overrides: TerraformOverrides | None = None) -> Path:
    """A fresh copy of mlops-infra/ (keeping .terraform/ so init stays fast), the vars and overrides."""
    workdir = working_dir(env)
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in [*workdir.glob("*.tf"), workdir / "modules"]:
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


def terraform_environment(
    env: Environment, sessions: Sessions, overrides: TerraformOverrides | None, workdir: Path
) -> dict:
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


def run_infra(
    env: Environment,
    mode: str,
    *,
    sessions: Sessions | None = None,
    echo: Callable[[str], None] = print,
    want_outputs: bool = True,
    plan_file: str | Path | None = None,
) -> InfraResult:
    """plan: show and save the plan. apply: plan, then apply that saved plan. destroy: plan a destroy
    and apply it. Re-running apply on an unchanged environment changes nothing and says so.
    apply with plan_file: apply exactly that saved plan (the one Jenkins archived and a person
    approved), refused with PlanRefused when it was made from other code, variables or state.
    want_outputs=False skips reading the Terraform outputs after an apply (one provider start-up)."""

    if mode not in ("plan", "apply", "destroy"):
        raise ValueError(mode)
    if plan_file is not None:
        if mode != "apply":
            raise ConfigError("--plan-file goes with --apply only", field="--plan-file")
        plan_file = Path(plan_file).resolve()
        read_plan_config(plan_file)  # not a plan file: refused before anything is written
    sessions = sessions or Sessions(env)
    check_state_storage(env, sessions)
    if env.namespace and mode != "destroy":  # a branch: its namespace must be free or already its own
        claim_namespace(env, sessions)
    overrides = _overrides(sessions.backend)
    workdir = prepare_working_dir(env, overrides)
    tf = TerraformCli(workdir, env=_process_env(terraform_environment(env, sessions, overrides, workdir)))
    _init_unless_current(tf, workdir, {**state_backend_config(env), **(overrides.backend_config if overrides else {})})
    if plan_file is not None:
        return _apply_saved_plan(env, tf, workdir, plan_file, echo=echo, want_outputs=want_outputs)
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


class PlanRefused(ToolkitError):
    """A saved plan that is not what this code, these variables and this state would apply."""


def read_plan_config(plan_file: Path) -> dict:
    """What Terraform stores inside a saved plan (a zip: tfplan, tfstate, tfstate-prev, tfconfig/):
    `files`, the configuration snapshot {path relative to the root module: bytes}, module directories
    mapped back through tfconfig/modules.json; `prior_state`, the (lineage, serial) it was planned on."""

    try:
        with zipfile.ZipFile(plan_file) as archive:
            names = archive.namelist()
            if "tfplan" not in names:
                raise PlanRefused(f"{plan_file} is not a Terraform plan file (no tfplan inside)")
            files = {
                n[len("tfconfig/") :]: archive.read(n) for n in names if n.startswith("tfconfig/") and n[-1] != "/"
            }
            prior = json.loads(archive.read("tfstate-prev" if "tfstate-prev" in names else "tfstate"))
    except FileNotFoundError:
        raise PlanRefused(f"plan file {plan_file} does not exist") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise PlanRefused(f"{plan_file} is not a Terraform plan file ({exc})") from None
    # tfconfig/m-<module key>/<file>; modules.json maps each key ("" is the root) to its directory
    directories = {m["Key"]: m["Dir"] for m in json.loads(files.pop("modules.json", b"[]") or b"[]")}
    snapshot = {}
    for name, data in files.items():
        key, _, base = name.partition("/")
        directory = directories.get(key[len("m-") :], key)
        snapshot[str(Path(directory) / base)] = data
    return {"files": snapshot, "prior_state": (prior.get("lineage") or "", int(prior.get("serial") or 0))}


def _code_differences(workdir: Path, snapshot: dict) -> list[str]:
    current = {
        str(p.relative_to(workdir)): p.read_bytes()
        for p in workdir.rglob("*.tf")
        if ".terraform" not in p.relative_to(workdir).parts
    }
    return sorted(
        path
        for path in set(current) | set(snapshot)
        if current.get(path) != snapshot.get(path) and path.endswith(".tf")
    )


def _apply_saved_plan(env, tf, workdir: Path, plan_file: Path, *, echo, want_outputs: bool) -> InfraResult:
    """Apply a saved plan only if it was made from this code and these variables (checked here) and
    this state (checked by Terraform, which refuses a plan whose prior state is not the current one)."""
    saved = read_plan_config(plan_file)
    changed = _code_differences(workdir, saved["files"])
    if changed:
        raise PlanRefused(
            f"plan file {plan_file} was made from other code ({', '.join(changed)} differs from "
            f"mlops-infra/ now): plan again and review the new plan"
        )
    shown = json.loads(tf.show_json(str(plan_file)))
    planned_vars = {name: item.get("value") for name, item in (shown.get("variables") or {}).items()}
    expected = json.loads(json.dumps(terraform_vars(env)))
    different = sorted(k for k in set(planned_vars) | set(expected) if planned_vars.get(k) != expected.get(k))
    if different:
        raise PlanRefused(
            f"plan file {plan_file} was made with other variables ({', '.join(different)} differ from "
            f"{env.source.name}): plan again for environment '{env.name}'"
        )
    # Terraform 1.0 applies a plan made on an empty state over any later state: compare ourselves.
    state = tf.state_pull()
    if (state.get("lineage") or "", int(state.get("serial") or 0)) != saved["prior_state"]:
        raise PlanRefused(
            f"plan file {plan_file} is stale: the {env.name} state changed since it was planned; "
            "plan again and review the new plan"
        )
    actions = [tuple(c["change"]["actions"]) for c in shown.get("resource_changes", [])]
    has_changes = any(a != ("no-op",) and a != ("read",) for a in actions)
    echo(f"applying the saved plan {plan_file}")
    applied = False
    if has_changes:
        out = tf.apply(str(plan_file))
        summary = [line for line in out.splitlines() if line.startswith(("Apply complete", "Destroy complete"))]
        echo(summary[-1] if summary else "apply complete")
        applied = True
    else:
        echo(f"no changes: the saved plan changes nothing in {env.name}, nothing applied")
    outputs = tf.output() if want_outputs else {}
    for name, value in sorted(outputs.items()):
        echo(f"output {name} = {json.dumps(value, sort_keys=True)}")
    text_file = plan_file.with_name(PLAN_TEXT)
    text = text_file.read_text() if text_file.is_file() else ""
    return InfraResult("apply", workdir, has_changes, text, applied, outputs)


def _init_unless_current(tf, workdir: Path, backend_config: dict) -> None:
    """`terraform init` only when the code, the backend settings or the CLI configuration changed
    since the last successful one: init starts the provider and reads remote state, seconds each run."""

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


def teardown_branch_infra(env: Environment, sessions: Sessions, echo: Callable[[str], None] = print) -> dict:
    """A branch's teardown step (registered in pyproject.toml): destroy what mlops-infra/ created for
    the branch, then remove its Terraform state object and lock digest and its working directory.
    Nothing to do when the branch never applied infra."""
    from botocore.exceptions import ClientError

    if not env.namespace:
        raise ConfigError("only a branch's infrastructure is torn down", field="--branch")
    session = sessions.workload()
    s3, dynamodb = sessions.client("s3", session), sessions.client("dynamodb", session)
    key = state_backend_config(env)["key"]
    try:
        s3.head_object(Bucket=env.buckets.terraform_state, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return {"destroyed": False, "state": None}
        raise
    result = run_infra(env, "destroy", sessions=sessions, echo=echo, want_outputs=False)
    s3.delete_object(Bucket=env.buckets.terraform_state, Key=key)
    # the S3 backend keeps the state's checksum in the lock table under "<bucket>/<key>-md5"
    dynamodb.delete_item(
        TableName=env.terraform_lock_table, Key={"LockID": {"S": f"{env.buckets.terraform_state}/{key}-md5"}}
    )
    shutil.rmtree(result.working_dir, ignore_errors=True)
    echo(f"deleted Terraform state s3://{env.buckets.terraform_state}/{key}")
    return {"destroyed": result.applied, "state": key}
