"""Usage-limit messages: detection and reset times, with a fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from seqharness.limits import (
    Limit,
    detect_limit,
    limit_from_text,
    one_line,
    parse_reset,
    parse_retry_after,
)

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday, 14:00 UTC (15:00 in Paris)
T = NOW.timestamp()
H = 3600.0


def at(year: int, month: int, day: int, hour: int, minute: int, tz: tzinfo = UTC) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()


# --------------------------------------------------------------------------- relative
@pytest.mark.parametrize("text, seconds", [
    ("You've hit your usage limit. Upgrade to Pro or try again in 2 days 17 hours.", 2 * 86400 + 17 * H),
    ("try again in 5 minutes", 300),
    ("Try again in 1h 30m", 5400),
    ("Your quota will reset after 2h31m7s.", 2 * H + 31 * 60 + 7),
    ("Please retry in 37.45s.", 37.45),
    ("try again in 5 minutes and 3 seconds", 303),
    ("try again in 1 day, 2 hours", 86400 + 2 * H),
    ("try again in 1 week", 7 * 86400),
    ("retry after 30 seconds", 30),
    ("in 0 minutes", 0),
])
def test_relative_spans(text: str, seconds: float) -> None:
    assert parse_reset(text, NOW) == pytest.approx(T + seconds)


# --------------------------------------------------------------------------- clock times
@pytest.mark.parametrize("text, expected", [
    ("Try again at 2:51 PM.", at(2026, 11, 25, 14, 51)),          # later today
    ("Try again at 1:05 PM.", at(2026, 11, 26, 13, 5)),           # earlier than now: tomorrow
    ("Try again at 2:00 PM.", T + 60),                            # exactly now: due, wait a minute
    ("Try again at 1:51 PM.", T + 60),                            # 9 minutes ago: a rounded reset
    ("Try again at 1:49 PM.", at(2026, 11, 26, 13, 49)),          # 11 minutes ago: tomorrow
    ("resets 5pm", at(2026, 11, 25, 17, 0)),
    ("resets 12pm", at(2026, 11, 26, 12, 0)),
    ("resets 12am", at(2026, 11, 26, 0, 0)),
    ("resets 10:30am", at(2026, 11, 26, 10, 30)),
    ("until 17:00", at(2026, 11, 25, 17, 0)),                     # 24-hour clock
    ("resets 5 p.m.", at(2026, 11, 25, 17, 0)),
    ("Try again at Nov 30th, 2026 2:51 PM.", at(2026, 11, 30, 14, 51)),
    ("Try again at Dec 1st, 2026 9:05 AM.", at(2026, 12, 1, 9, 5)),
])
def test_clock_times_in_the_zone_of_now(text: str, expected: float) -> None:
    assert parse_reset(text, NOW) == pytest.approx(expected)


def test_named_zone_in_parentheses() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 15:00 in Paris now: 5pm is later today, 2pm is tomorrow.
    assert parse_reset("You've hit your limit · resets 5pm (Europe/Paris)", NOW) == at(2026, 11, 25, 17, 0, tz=paris)
    assert parse_reset("You've hit your limit · resets 5pm (Europe/Paris)", NOW) == at(2026, 11, 25, 16, 0)
    assert parse_reset("You've hit your limit · resets 2pm (Europe/Paris)", NOW) == at(2026, 11, 26, 13, 0)
    assert parse_reset("resets 9am (UTC)", NOW) == at(2026, 11, 26, 9, 0)


def test_zone_without_daylight_saving() -> None:
    # Tokyo (UTC+9) and Recife (UTC-3) never change their clocks.
    assert parse_reset("resets 9am (Asia/Tokyo)", NOW) == at(2026, 11, 26, 0, 0)     # 23:00 in Tokyo now
    assert parse_reset("resets 10pm (Asia/Tokyo)", NOW) == at(2026, 11, 26, 13, 0)  # an hour ago: tomorrow
    assert parse_reset("You've hit your limit · resets Apr 23 at 4pm (America/Recife)", NOW) == at(2027, 4, 23, 19, 0)
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert parse_reset("resets 9am (Asia/Tokyo)", summer) == at(2026, 7, 2, 0, 0)


def test_daylight_saving_change_between_now_and_the_reset() -> None:
    # Paris moves to UTC+2 on 2026-03-29 at 01:00 UTC.  At 17:30 UTC on the 28th
    # (18:30 in Paris) "5pm" means the next day, whose 5pm is 15:00 UTC, not 16:00.
    now = datetime(2026, 3, 28, 17, 30, tzinfo=UTC)
    assert parse_reset("resets 5pm (Europe/Paris)", now) == at(2026, 3, 29, 15, 0)
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert parse_reset("resets 5pm (Europe/Paris)", summer) == at(2026, 7, 1, 15, 0)


def test_now_in_another_zone_gives_clock_times_in_that_zone() -> None:
    new_york = ZoneInfo("America/New_York")
    now = datetime(2026, 11, 25, 9, 0, tzinfo=new_york)
    assert parse_reset("Try again at 2:51 PM.", now) == at(2026, 11, 25, 19, 51)
    assert parse_reset("Try again at 8:00 AM.", now) == at(2026, 11, 26, 8, 0, tz=new_york)


def test_month_without_year_rolls_into_next_year() -> None:
    now = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
    assert parse_reset("resets Jan 2 at 4pm", now) == at(2027, 1, 2, 16, 0)


def test_naive_now_is_local_time() -> None:
    naive = datetime(2026, 11, 25, 14, 0)
    assert parse_reset("in 10 minutes", naive) == pytest.approx(naive.astimezone().timestamp() + 600)


# --------------------------------------------------------------------------- timestamps
def test_epoch_forms() -> None:
    reset = int(T + 2 * H)
    assert parse_reset(f"Claude AI usage limit reached|{reset}", NOW) == reset
    assert parse_reset(f'{{"resetsAt": {reset}}}', NOW) == reset
    assert parse_reset(f"resets_at={reset * 1000}", NOW) == reset  # milliseconds


def test_iso_timestamps() -> None:
    assert parse_reset("resets at 2026-11-25T18:00:00Z", NOW) == at(2026, 11, 25, 18, 0)
    assert parse_reset("reset: 2026-11-25T18:00:00+02:00", NOW) == at(2026, 11, 25, 16, 0)
    assert parse_reset("reset: 2026-11-25 18:30", NOW) == at(2026, 11, 25, 18, 30)  # zone of now


def test_retry_after_values() -> None:
    assert parse_reset("Retry-After: 120", NOW) == T + 120
    assert parse_reset('"retryDelay": "37s"', NOW) == T + 37
    assert parse_retry_after("30", NOW) == T + 30
    assert parse_retry_after("Wed, 25 Nov 2026 15:00:00 GMT", NOW) == at(2026, 11, 25, 15, 0)
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after("-5", NOW) is None


# --------------------------------------------------------------------------- garbage
@pytest.mark.parametrize("text", [
    "", "hello", "limit reached", "at 5", "resets 25pm", "resets 13pm", "Try again at 13:75",
    "in many hours", "resets Feb 30 at 4pm", "2026-13-45T99:99:00Z",
    "Claude AI usage limit reached|1000000000",          # 2001: long past
    "try again in 1000 days",                             # absurdly far
    "Try again at Nov 30th, 2025 2:51 PM.",              # a year ago
    "\x00\xff<promise>", "in -5 minutes",
])
def test_garbage_gives_none(text: str) -> None:
    assert parse_reset(text, NOW) is None


def test_unknown_zone_falls_back_to_the_zone_of_now() -> None:
    assert parse_reset("resets 5pm (Mars/Olympus_Mons)", NOW) == at(2026, 11, 25, 17, 0)


def test_most_explicit_form_wins() -> None:
    reset = int(T + 5 * H)
    text = f"Claude AI usage limit reached|{reset} (try again in 10 minutes)"
    assert parse_reset(text, NOW) == reset


# --------------------------------------------------------------------------- detection
@pytest.mark.parametrize("text", [
    "You've hit your limit · resets 5pm (Europe/Paris)",
    "You’ve hit your weekly limit · resets Oct 9, 10am",
    "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro) or try again at 2:51 PM.",
    "Claude AI usage limit reached|1753077600",
    "5-hour limit reached ∙ resets 3am",
    "API Error: Rate limit reached",
    '429 {"type":"error","error":{"type":"rate_limit_error","message":"..."}}',
    '{"error":{"code":429,"message":"Quota exceeded for quota metric","status":"RESOURCE_EXHAUSTED"}}',
    "HTTP 429",
    "status code: 429",
    "429 Too Many Requests",
    "You have exhausted your capacity on this model. Your quota will reset after 2h31m7s.",
    "litellm.RateLimitError: RateLimitError: OpenAIException - rate limited",
    "Rate limited. Please try again later.",
    # gemini's real 429 (RESOURCE_EXHAUSTED) mentions billing but resets by itself
    "Attempt 1 failed: You exceeded your current quota, please check your plan and billing details.",
])
def test_detects_limit_messages(text: str) -> None:
    assert detect_limit(text)


@pytest.mark.parametrize("text", [
    "",
    "timeout: the agent ran longer than the --timeout (600s) and was stopped",
    "idle: the agent printed nothing for longer than --idle-timeout",
    "the loop has a limit of 10 iterations",
    "error in line 429 of main.py",
    "Failed to authenticate. API Error: 401",
    "You exceeded your current quota, please check your plan and billing details. insufficient_quota",
    "Your credit balance is too low to access the Anthropic API",
    "context window limit exceeded",
    "Request timed out.",
    "<promise>TASK_DONE</promise>",
])
def test_does_not_detect_other_text(text: str) -> None:
    assert not detect_limit(text)


def test_limit_from_text() -> None:
    found = limit_from_text("You've hit your usage limit. Try again in 2 hours.", NOW, who="codex")
    assert isinstance(found, Limit)
    assert found.reason.startswith("codex: usage limit: You've hit your usage limit.")
    assert found.resume_at == T + 2 * H
    assert limit_from_text("Failed to authenticate", NOW) is None
    assert limit_from_text("HTTP 429", NOW) == Limit("usage limit: HTTP 429", None)


def test_one_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 300, 10) == "x" * 9 + "…"
    assert len(one_line("y" * 1000)) == 240


def test_relative_uses_now_not_the_wall_clock() -> None:
    later = NOW + timedelta(days=3)
    assert parse_reset("in 1 hour", later) == later.timestamp() + H
