"""Usage and rate limits: recognise the message, find when it resets.

Agent CLIs report a spent quota in prose, each its own way:

* claude: ``You've hit your limit · resets 5pm (Europe/Paris)``, ``resets Apr 23
  at 4pm (America/Recife)``, the older ``Claude AI usage limit reached|1753077600``
  (epoch seconds after the bar), ``5-hour limit reached ∙ resets 3am``; its
  structured ``rate_limit_event`` carries ``resetsAt`` in epoch seconds.
* codex: ``You've hit your usage limit. ... try again in 2 days 17 hours`` (older),
  ``Try again at 2:51 PM.`` (same day, local time) or ``Try again at Nov 30th, 2025
  2:51 PM.``.
* gemini: ``RESOURCE_EXHAUSTED`` / HTTP 429, ``Please retry in 37.45s``,
  ``"retryDelay": "37s"``, ``Your quota will reset after 2h31m7s``.
* anything speaking HTTP: status 429 and a ``Retry-After`` header (seconds or an
  HTTP date).

Users of other orchestrators lose nights because a grep over the whole output
took a timeout for a limit, or a limit message for success.  These functions
are therefore only ever given *error text* (an error event, a failed result, the
last lines of a failed run) by the backend profiles, never the agent's output as
a whole, and they are strict about what counts: :func:`detect_limit` wants a
limit phrase, not just the word "limit" or a bare ``429`` somewhere.

A billing failure (``insufficient_quota``, "credit balance is too low") is
deliberately *not* a limit: waiting does not fix it, so it must
fail the task instead of pausing the run again and again.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Limit", "detect_limit", "limit_from_text", "one_line", "parse_reset", "parse_retry_after"]


@dataclass(frozen=True)
class Limit:
    """A usage limit seen in an attempt: why (one line) and when it resets."""

    reason: str
    resume_at: float | None = None  # epoch seconds, None when the CLI did not say


# ----------------------------------------------------------------------- detection
_LIMIT_RE = re.compile(
    r"""
      you(?:(?:'|’)?ve|\s+have)\s+(?:hit|reached)\s+your\s+(?:[\w-]+\s+){0,2}limit  # claude / codex
    | usage\s+limit\s+(?:has\s+been\s+)?reached
    | \b\d+-hour\s+limit\s+reached
    | \bweekly\s+limit\s+reached
    | rate[\s_-]?limit(?:ed|[\s_-]+(?:reached|exceeded|error))   # Rate limit reached, rate_limit_error
    | rate\s+limited
    | \bRateLimitError\b                                        # litellm (aider)
    | \bRESOURCE_EXHAUSTED\b                                    # gemini / Google APIs
    | quota\s+(?:exceeded|exhausted)
    | exceeded\s+your\s+(?:current\s+)?quota
    | exhausted\s+your\s+(?:\w+\s+)?(?:quota|capacity)
    | too\s+many\s+requests
    | (?:\bHTTP|\bstatus(?:\s*code)?|\bcode|\berror|API\s+Error)["'\s:=(]{0,4}429\b
    | \b429\s+Too\s+Many
    """,
    re.IGNORECASE | re.VERBOSE,
)

# Billing problems look like limits but do not reset by waiting.
# (Google's per-minute 429 says "You exceeded your current quota, please check
# your plan and billing details" too, with RESOURCE_EXHAUSTED: that one resets,
# so only explicit billing codes count here.)
_BILLING_RE = re.compile(
    r"insufficient_quota|credit\s+balance\s+is\s+too\s+low|billing_error|payment\s+required",
    re.IGNORECASE,
)


def detect_limit(text: str) -> bool:
    """True if *text* (error text, not a whole transcript) reports a usage or
    rate limit that will reset by itself."""
    if not text:
        return False
    if _BILLING_RE.search(text):
        return False
    return _LIMIT_RE.search(text) is not None


# ----------------------------------------------------------------------- reset time
_MONTHS = {
    name: index + 1
    for index, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"), ("dec", "december")]
    )
    for name in names
}
_MONTH_RE = r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"

# "…limit reached|1753077600" (claude before 2.x): epoch seconds after a bar.
_BAR_EPOCH_RE = re.compile(r"limit\s+reached\s*\|\s*(\d{10,13})\b", re.IGNORECASE)
# resetsAt / resets_at / reset_at = <epoch>
_KEY_EPOCH_RE = re.compile(r"resets?_?at[\"']?\s*[:=]\s*[\"']?(\d{10,13})\b", re.IGNORECASE)
_ISO_RE = re.compile(
    r"\b(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?(?![\d:])"
)
_RETRY_AFTER_RE = re.compile(
    r"retry[-_ ]after[\"']?\s*[:=]\s*[\"']?(\d+(?:\.\d+)?)(?!\d|\s*(?:ms|min|h\b|d\b|:))", re.IGNORECASE
)
_RETRY_DELAY_RE = re.compile(r"retry_?delay[\"']?\s*[:=]\s*[\"']?(\d+(?:\.\d+)?)s\b", re.IGNORECASE)

_UNIT_SECONDS = {
    "w": 604800, "week": 604800, "weeks": 604800,
    "d": 86400, "day": 86400, "days": 86400,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
}
_UNIT_RE = r"(?:weeks?|w|days?|d|hours?|hrs?|hr|h|minutes?|mins?|min|m|seconds?|secs?|sec|s)"
_AMOUNT_RE = rf"\d+(?:\.\d+)?\s*{_UNIT_RE}(?![a-z])"
# "in 2 days 17 hours", "in 1h 30m", "after 2h31m7s", "in 37.45s", "in 5 minutes and 3 seconds"
_RELATIVE_RE = re.compile(
    rf"\b(?:in|after)\s+(?P<span>{_AMOUNT_RE}(?:(?:\s*,\s*|\s+and\s+|\s*)(?:{_AMOUNT_RE}))*)",
    re.IGNORECASE,
)
_AMOUNT_PART_RE = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT_RE})(?![a-z])", re.IGNORECASE)

# "at 2:51 PM", "resets 5pm", "resets Apr 23 at 4pm (America/Recife)",
# "Try again at Nov 30th, 2025 2:51 PM", "until 17:00 (UTC)".
_CLOCK_RE = re.compile(
    rf"""
    \b(?:resets?|reset\s+at|at|until)\s+
    (?:(?:on\s+)?{_MONTH_RE}\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?(?:\s+(?P<year>\d{{4}}))?,?\s+(?:at\s+)?)?
    (?P<hour>\d{{1,2}})(?::(?P<minute>\d{{2}}))?\s*(?P<ampm>[ap]\.?m\.?)?
    (?![\w:])
    (?:\s*\((?P<zone>[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*)\))?
    """,
    re.IGNORECASE | re.VERBOSE,
)

_MAX_AHEAD = 400 * 86400  # a "reset" further away than this is a misreading
JUST_PASSED = 600.0  # a clock time at most this long ago is a rounded reset, not tomorrow's
JUST_PASSED_WAIT = 60.0  # ... and means: wait this long, then try again


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.astimezone()


def _epoch(value: str) -> float:
    number = float(value)
    return number / 1000.0 if number > 1e11 else number  # milliseconds


def _zone(name: str | None, fallback: tzinfo) -> tzinfo:
    if not name:
        return fallback
    if name.upper() in ("UTC", "GMT", "Z"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def _at(day: date, hour: int, minute: int, zone: tzinfo) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()


def _clock(match: re.Match[str], now: datetime) -> float | None:
    hour = int(match.group("hour"))
    minute = int(match.group("minute") or 0)
    ampm = (match.group("ampm") or "").replace(".", "").lower()
    if not ampm and match.group("minute") is None:
        return None  # "at 5" is not a time
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone = _zone(match.group("zone"), now.tzinfo or timezone.utc)
    local_now = now.astimezone(zone)
    month = match.group("month")
    if month:
        day_number = int(match.group("day"))
        year = int(match.group("year")) if match.group("year") else local_now.year
        try:
            day = date(year, _MONTHS[month.lower().rstrip(".")], day_number)
        except ValueError:
            return None
        stamp = _at(day, hour, minute, zone)
        if not match.group("year") and stamp < now.timestamp() - 86400:
            try:  # "Jan 2" seen on Dec 31st: next year
                stamp = _at(date(year + 1, day.month, day.day), hour, minute, zone)
            except ValueError:
                return None
        return stamp
    stamp = _at(local_now.date(), hour, minute, zone)
    base = now.timestamp()
    if base - JUST_PASSED <= stamp <= base:
        # CLIs print resets rounded to the minute or hour ("try again at 7:00 PM"
        # seen at 19:00:20): a time that has just passed means "any moment now",
        # not tomorrow.  A short wait, not a retry loop without any wait.
        return base + JUST_PASSED_WAIT
    if stamp <= base:  # a time earlier than now means tomorrow
        stamp = _at(local_now.date() + timedelta(days=1), hour, minute, zone)
    return stamp


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Epoch seconds from an HTTP ``Retry-After`` value (delay seconds or HTTP date)."""
    now = _aware(now)
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    if seconds < 0 or seconds > _MAX_AHEAD:
        return None
    return now.timestamp() + seconds


def parse_reset(text: str, now: datetime) -> float | None:
    """When a limit described by *text* resets, as epoch seconds, or None.

    Understands epoch seconds (``|1753077600``, ``resetsAt: 1753077600``), ISO
    timestamps, ``Retry-After`` / ``retryDelay`` values, relative spans ("in 2
    days 17 hours", "in 1h 30m", "after 2h31m7s") and clock times ("at 2:51 PM",
    "resets 5pm (Europe/Paris)", "Nov 30th, 2025 2:51 PM").  A clock time
    without a zone is in *now*'s zone; one without a date that is earlier
    than *now* means tomorrow, except that a time passed less than
    ``JUST_PASSED`` (10 minutes) ago is a rounded reset that is due: it gives
    *now* + ``JUST_PASSED_WAIT`` (60 s).  *now* should be timezone-aware (a naive one is
    taken as local time).
    """
    if not text:
        return None
    now = _aware(now)
    base = now.timestamp()
    for candidate in _candidates(text, now):
        if candidate is not None and base - _PAST_SLACK <= candidate <= base + _MAX_AHEAD:
            return candidate
    return None


_PAST_SLACK = 300.0  # an absolute reset this far in the past is still "now" (clock skew)


def _candidates(text: str, now: datetime) -> Iterator[float | None]:
    """Reset times found in *text*, most explicit form first (lazily)."""
    base = now.timestamp()
    match = _BAR_EPOCH_RE.search(text) or _KEY_EPOCH_RE.search(text)
    if match:
        yield _epoch(match.group(1))
    for match in _ISO_RE.finditer(text):
        yield _iso(match, now)
    match = _RETRY_AFTER_RE.search(text) or _RETRY_DELAY_RE.search(text)
    if match:
        yield base + float(match.group(1))
    match = _RELATIVE_RE.search(text)
    if match:
        total = 0.0
        for amount, unit in _AMOUNT_PART_RE.findall(match.group("span")):
            total += float(amount) * _UNIT_SECONDS[unit.lower()]
        yield base + total
    for match in _CLOCK_RE.finditer(text):
        yield _clock(match, now)


def _iso(match: re.Match[str], now: datetime) -> float | None:
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    second = int(match.group(6) or 0)
    offset = match.group(7)
    zone: tzinfo = now.tzinfo or timezone.utc
    if offset:
        if offset.upper() == "Z":
            zone = timezone.utc
        else:
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()
    except ValueError:
        return None


# ----------------------------------------------------------------------- helpers
def one_line(text: str, limit: int = 240) -> str:
    """*text* squeezed onto one line and cut to *limit* characters, for reasons."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def limit_from_text(text: str, now: datetime | None = None, *, who: str = "") -> Limit | None:
    """A :class:`Limit` if error text *text* reports a usage limit, else None."""
    if not detect_limit(text):
        return None
    when = datetime.now().astimezone() if now is None else now
    prefix = f"{who}: " if who else ""
    return Limit(f"{prefix}usage limit: {one_line(text, 200)}", parse_reset(text, when))
