"""The sandbox clock: EventBridge cron()/rate() semantics, and `sandbox tick` firing the schedules
that fall due (a pipeline target starts, once per occurrence)."""

import json
from datetime import UTC, datetime

import pytest

from sandbox.clock import Rate, ScheduleError, parse_duration, schedule
from tests.conftest import run_cli
from tests.sandbox.events_helpers import create_quick_pipeline, events_role, executions


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def occurrences(expression, after, until):
    return [t.strftime("%a %Y-%m-%d %H:%M") for t in schedule(expression, after).between(after, until)]


def test_daily_cron_at_six():
    assert occurrences("cron(0 6 * * ? *)", utc(2026, 1, 1, 5, 0), utc(2026, 1, 3, 6, 0)) == [
        "Thu 2026-01-01 06:00",
        "Fri 2026-01-02 06:00",
        "Sat 2026-01-03 06:00",
    ]


def test_weekdays_by_name_and_number_sunday_is_one():
    weekdays = occurrences("cron(30 8 ? * MON-FRI *)", utc(2026, 1, 2, 9, 0), utc(2026, 1, 6, 9, 0))
    assert weekdays == ["Mon 2026-01-05 08:30", "Tue 2026-01-06 08:30"]
    assert occurrences("cron(0 0 ? * 1 *)", utc(2026, 1, 1), utc(2026, 1, 12)) == [
        "Sun 2026-01-04 00:00",
        "Sun 2026-01-11 00:00",
    ]


def test_lists_steps_ranges_months_and_years():
    assert occurrences("cron(0/20 9-10 1,15 JAN,MAR ? 2026)", utc(2026, 1, 1), utc(2027, 12, 31))[:4] == [
        "Thu 2026-01-01 09:00",
        "Thu 2026-01-01 09:20",
        "Thu 2026-01-01 09:40",
        "Thu 2026-01-01 10:00",
    ]
    assert len(occurrences("cron(0/20 9-10 1,15 JAN,MAR ? 2026)", utc(2026, 1, 1), utc(2027, 12, 31))) == 4 * 6
    assert occurrences("cron(0 12 28 2 ? 2027)", utc(2026, 1, 1), utc(2030, 1, 1)) == ["Sun 2027-02-28 12:00"]


def test_rate_counts_from_the_rule_creation():
    rate = Rate("6 hours", anchor=utc(2026, 1, 1, 1, 0))
    assert [t.hour for t in rate.between(utc(2026, 1, 1, 2, 0), utc(2026, 1, 2, 1, 0))] == [7, 13, 19, 1]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("cron(0 6 * * * *)", "one of day-of-month and day-of-week must be '?'"),
        ("cron(0 6 * *)", "6 fields"),
        ("cron(0 25 * * ? *)", "outside 0-23"),
        ("cron(0 6 L * ? *)", "not supported by the sandbox clock"),
        ("rate(1 days)", "singular unit"),
        ("rate(5 fortnights)", "expected"),
        ("every day", "not a cron() or rate() expression"),
    ],
)
def test_bad_schedules_say_what_is_wrong(expression, message):
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        schedule(expression, utc(2026, 1, 1))


def test_durations():
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1d").total_seconds() == 86400
    with pytest.raises(ScheduleError):
        parse_duration("tomorrow")


def test_tick_fires_due_schedules_once_per_occurrence(account):
    create_quick_pipeline(account, "inference")
    role = events_role(account, "events-schedule")
    events = account.client("events")
    target = [
        {
            "Id": "run",
            "Arn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/inference",
            "RoleArn": role,
            "SageMakerPipelineParameters": {"PipelineParameterList": [{"Name": "Reason", "Value": "schedule"}]},
        }
    ]
    events.put_rule(Name="every-six-hours", ScheduleExpression="rate(6 hours)")
    events.put_targets(Rule="every-six-hours", Targets=target)
    events.put_rule(Name="paused", ScheduleExpression="rate(1 hour)", State="DISABLED")
    events.put_targets(Rule="paused", Targets=target)

    assert executions(account, "inference") == []  # schedules never fire on their own
    result = run_cli("sandbox", "tick", "--by", "13h", "--output", "json")
    assert result.returncode == 0, result.stderr
    fired = json.loads(result.stdout)["fired"]
    assert [f["rule"].split("/")[-1] for f in fired] == ["every-six-hours", "every-six-hours"]
    assert all(d["status"] == "delivered" for f in fired for d in f["deliveries"])
    assert len(executions(account, "inference")) == 2

    text = run_cli("sandbox", "tick", "--by", "5h")
    assert "every-six-hours" in text.stdout and "delivered" in text.stdout  # the 18h occurrence
    assert len(executions(account, "inference")) == 3


def test_tick_refuses_to_go_back_in_time_and_bad_durations(account):
    result = run_cli("sandbox", "tick", "--to", "2001-01-01T00:00:00Z")
    assert result.returncode == 2 and "only moves forward" in result.stderr
    result = run_cli("sandbox", "tick", "--by", "soon")
    assert result.returncode == 2 and "not a duration" in result.stderr


def test_responses_are_dated_by_the_clock_and_progress_measures_running_steps_against_it(account):
    """AWS dates each response with its own time (HTTP Date, RFC 9110 section 6.6.1); the sandbox dates them with
    its clock, so `run-pipeline --wait` shows how long a step has run, not minus two days after a tick."""
    from datetime import timedelta

    from pipelines.progress import server_time, step_rows

    run_cli("sandbox", "tick", "--by", "2d")
    answered = account.client("sagemaker").list_pipelines()
    dated = server_time(answered)
    assert abs((dated - (datetime.now(UTC) + timedelta(days=2))).total_seconds()) < 60
    started = dated - timedelta(seconds=3)
    [row] = step_rows([{"StepName": "Train", "StepStatus": "Executing", "StartTime": started}], dated)
    assert row["duration"] == "3s"
