"""The sandbox clock: EventBridge schedules (`cron()` / `rate()`) fire when the clock is advanced
(`sandbox tick --by 1d`, `--to 2026-01-02T06:00Z`, or POST /_sandbox/tick), never on their own, so
tests and demos decide when a schedule runs.

Sandbox time is wall-clock time plus an offset that only grows. Each scheduled rule fires once for
every occurrence in (last tick, now]: `advance()` says which are due and sandbox/events.py delivers
them to their targets like any other EventBridge event.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.engine import runtime
from sandbox.patching import Patch, Route

MAX_FIRINGS_PER_RULE = 100  # a tick of a year on rate(1 minute) must not start 500k pipelines
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$")


class ScheduleError(ValueError):
    """A schedule expression the sandbox (or EventBridge) does not accept."""


# -- cron -----------------------------------------------------------------------------------------
def _field(text: str, low: int, high: int, names: dict | None = None, what: str = "") -> set[int] | None:
    """The values a cron field allows, or None for '*'/'?' (any)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"cron {what}: bad step '{step_text}'")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names, what), _value(b, names, what)
        else:
            start = _value(part, names, what)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"cron {what}: '{part}' outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names, what) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if text.isdigit():
        return int(text)
    raise ScheduleError(f"cron {what}: '{text}' is not supported by the sandbox clock (L, W and # are not)")


class Cron:
    """An EventBridge cron: minutes hours day-of-month month day-of-week year (UTC)."""

    def __init__(self, expression: str):
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleError(f"cron({expression}): EventBridge cron has 6 fields, got {len(fields)}")
        minute, hour, dom, month, dow, year = fields
        if dom != "?" and dow != "?":
            raise ScheduleError(f"cron({expression}): one of day-of-month and day-of-week must be '?'")
        self.minutes = sorted(_field(minute, 0, 59, what="minutes") or range(60))
        self.hours = sorted(_field(hour, 0, 23, what="hours") or range(24))
        self.dom = _field(dom, 1, 31, what="day-of-month")
        self.months = _field(month, 1, 12, _MONTHS, "month")
        self.dow = _field(dow, 1, 7, _DAYS, "day-of-week")
        self.years = _field(year, 1970, 2199, what="year")

    def _day_matches(self, day: datetime) -> bool:
        if self.years is not None and day.year not in self.years:
            return False
        if self.months is not None and day.month not in self.months:
            return False
        if self.dom is not None and day.day not in self.dom:
            return False
        # EventBridge numbers days 1=SUN..7=SAT; Python's weekday() is 0=MON..6=SUN
        return self.dow is None or (day.weekday() + 1) % 7 + 1 in self.dow

    def between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Occurrences t with after < t <= until, in order."""
        day = after.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= until:
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        at = day.replace(hour=hour, minute=minute)
                        if after < at <= until:
                            yield at
            day += timedelta(days=1)


class Rate:
    def __init__(self, expression: str, anchor: datetime):
        parts = expression.split()
        if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in _RATE_UNITS or int(parts[0]) < 1:
            raise ScheduleError(f"rate({expression}): expected 'rate(N minute|minutes|hour|hours|day|days)'")
        if (parts[0] == "1") != (parts[1] in ("minute", "hour", "day")):
            raise ScheduleError(f"rate({expression}): EventBridge wants the singular unit for 1 and plural otherwise")
        self.period = timedelta(seconds=int(parts[0]) * _RATE_UNITS[parts[1]])
        self.anchor = anchor

    def between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        k = max(0, int((after - self.anchor) / self.period))
        while True:
            at = self.anchor + k * self.period
            if at > until:
                return
            if at > after:
                yield at
            k += 1


def schedule(expression: str, anchor: datetime) -> Cron | Rate:
    m = re.fullmatch(r"\s*(cron|rate)\((.*)\)\s*", expression or "")
    if not m:
        raise ScheduleError(f"'{expression}' is not a cron() or rate() expression")
    return Cron(m.group(2)) if m.group(1) == "cron" else Rate(m.group(2), anchor)


# -- the clock ------------------------------------------------------------------------------------
def _state() -> dict:
    srv = runtime.server()
    holder = srv.extra if srv is not None else _local
    return holder.setdefault("clock", {"offset": 0.0, "seen": {}, "anchors": {}})


_local: dict = {}


def instant() -> datetime:
    """Sandbox time to the microsecond: what pipeline executions, their steps and CloudWatch stamp."""
    return datetime.fromtimestamp(time.time() + _state()["offset"], UTC)


def now() -> datetime:
    return instant().replace(microsecond=0)


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(str(text))
    if not m:
        raise ScheduleError(f"'{text}' is not a duration (e.g. 90s, 15m, 6h, 1d, 2w)")
    unit = {"s": 1, "sec": 1, None: 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return timedelta(seconds=float(m.group(1)) * unit)


def parse_time(text: str) -> datetime:
    value = str(text).strip().replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"'{text}' is not an ISO time (e.g. 2026-01-02T06:00:00Z)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def scheduled_rules() -> Iterator[tuple[str, str, Any]]:
    from moto.events.models import events_backends

    for account_id, regions in list(events_backends.items()):
        for region, backend in list(regions.items()):
            for bus in list(backend.event_buses.values()):
                for rule in list(bus.rules.values()):
                    if rule.scheduled_expression:
                        yield account_id, region, rule


def observe(at: datetime) -> None:
    """Anchor rules created since the last tick, so their first occurrence comes after creation."""
    state = _state()
    for _, _, rule in scheduled_rules():
        state["seen"].setdefault(rule.arn, at.isoformat())
        state["anchors"].setdefault(rule.arn, at.isoformat())  # rate() counts from the rule's creation


def advance(to: datetime | None = None, by: timedelta | None = None) -> tuple[datetime, list, list[dict]]:
    """Move the clock forward; returns the new time, the due (rule, occurrences) of every enabled
    scheduled rule, and the rules skipped with the reason. Firing them is EventBridge's job (sandbox.events)."""
    state = _state()
    before = now()
    observe(before)
    target = to if to is not None else before + (by or timedelta(0))
    if target < before:
        raise ScheduleError(
            f"the sandbox clock only moves forward: it is {before.isoformat()}, {target.isoformat()} is in the past"
        )
    state["offset"] += (target - before).total_seconds()
    due, skipped = [], []
    for _, _, rule in scheduled_rules():
        last = parse_time(state["seen"].get(rule.arn, before.isoformat()))
        state["seen"][rule.arn] = target.isoformat()
        if rule.state != "ENABLED":
            continue
        try:
            anchor = parse_time(state["anchors"].get(rule.arn, last.isoformat()))
            occurrences = list(_limited(schedule(rule.scheduled_expression, anchor).between(last, target)))
        except ScheduleError as exc:
            skipped.append({"rule": rule.arn, "reason": str(exc)})
            continue
        due.append((rule, occurrences))
    return target, due, skipped


def _limited(occurrences):
    for index, at in enumerate(occurrences):
        if index >= MAX_FIRINGS_PER_RULE:
            return
        yield at


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _clock(_server, _body):
    return 200, {"now": iso(now())}


def _reset(server):
    server.extra.pop("clock", None)


PATCH = Patch(
    name="sandbox-clock",
    adds="a clock only `sandbox tick` moves: EventBridge schedules (cron/rate) fire when it passes them",
    routes={"clock": Route(_clock, methods=("GET", "POST"))},
    reset=_reset,
)
