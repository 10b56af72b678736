"""`promote infra --apply --plan-file`: the plan Jenkins archived and a person approved is the one that
is applied, and a plan made from other code, other variables or an older state is refused with one
line, changing nothing."""

from __future__ import annotations

import re
import shutil

import pytest

pytestmark = pytest.mark.slow


def _rule_names(sessions, env) -> list[str]:
    events = sessions.client("events", sessions.in_account(env.account_id))
    return [r["Name"] for r in events.list_rules(NamePrefix=f"{env.project}-{env.name}-")["Rules"]]


def _refused(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    return line


def test_apply_uses_the_archived_plan_and_refuses_stale_or_foreign_ones(
    cli, bootstrapped_prod, prod_env, terraform_workdir, tmp_path, monkeypatch
):
    from promote import infra

    planned = cli("promote", "infra", "--env", "prod", "--plan")
    assert planned.returncode == 0, planned.stderr
    [to_add] = re.findall(r"Plan: (\d+) to add, 0 to change, 0 to destroy\.", planned.stdout)
    archived = tmp_path / "archive" / "plan.tfplan"
    archived.parent.mkdir()
    shutil.copy(terraform_workdir / "prod" / "plan.tfplan", archived)

    # Not a plan at all.
    junk = tmp_path / "junk.tfplan"
    junk.write_text("not a zip")
    line = _refused(cli("promote", "infra", "--env", "prod", "--apply", "--plan-file", str(junk)))
    assert "is not a Terraform plan file" in line, line

    # The same plan against other code: a copy of mlops-infra/ with one module changed.
    other_code = tmp_path / "mlops-infra"
    shutil.copytree(infra.SOURCE_DIR, other_code)
    module = other_code / "modules" / "retraining" / "main.tf"
    module.write_text(module.read_text() + "\n# a reviewer never saw this line\n")
    monkeypatch.setattr(infra, "SOURCE_DIR", other_code)
    with pytest.raises(infra.PlanRefused, match=r"made from other code \(modules/retraining/main.tf differs"):
        infra.run_infra(prod_env, "apply", sessions=bootstrapped_prod, echo=lambda _: None, plan_file=archived)
    monkeypatch.undo()

    # Other variables (the YAML changed after the plan was reviewed).
    from dataclasses import replace

    later = replace(prod_env, schedule="rate(1 hour)")
    # (the no-successful-inference alarm's window follows the schedule)
    with pytest.raises(infra.PlanRefused, match=r"made with other variables \(alarms, schedule_expression differ"):
        infra.run_infra(later, "apply", sessions=bootstrapped_prod, echo=lambda _: None, plan_file=archived)
    assert _rule_names(bootstrapped_prod, prod_env) == []

    # The archived plan itself applies, exactly: no new plan is made.
    applied = cli("promote", "infra", "--env", "prod", "--apply", "--plan-file", str(archived))
    assert applied.returncode == 0, applied.stderr
    assert f"applying the saved plan {archived}" in applied.stdout
    assert f"Apply complete! Resources: {to_add} added" in applied.stdout
    assert "Plan:" not in applied.stdout
    # the schedule, the two retraining rules, the arrival triggers, a run-metrics rule per pipeline and the
    # notification rules
    expected = 3 + len(prod_env.arrivals) + len(prod_env.pipelines) + len(prod_env.notifications.rules)
    assert len(_rule_names(bootstrapped_prod, prod_env)) == expected

    # Applying it again: the state moved on since it was planned; Terraform refuses, so do we, in one line.
    line = _refused(cli("promote", "infra", "--env", "prod", "--apply", "--plan-file", str(archived)))
    assert line == (
        f"error: plan file {archived} is stale: the prod state changed since it was planned; "
        "plan again and review the new plan"
    ), line


def test_plan_file_only_goes_with_apply(cli, sandbox, tmp_path):
    result = cli("promote", "infra", "--env", "prod", "--plan", "--plan-file", str(tmp_path / "x.tfplan"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "--plan-file goes with --apply only" in line
