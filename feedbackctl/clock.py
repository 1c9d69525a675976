"""The clock lives in the shell: ``--now`` or the real time, always UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime

from feedbackctl.errors import UsageError

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_instant(text: str, option: str = "--now") -> datetime:
    raw = text.strip()
    try:
        if raw.lstrip("-").replace(".", "", 1).isdigit():
            value = datetime.fromtimestamp(float(raw), UTC)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"{option} '{text}' is not an ISO-8601 time like 2026-11-08T00:00:00Z") from None
    if value.tzinfo is None:
        # Metric rows without a zone are refused (local time or UTC? nobody can tell
        # later); the evaluation time is read by the same rule.
        raise UsageError(
            f"{option} '{text}' has no time zone; add 'Z' or an offset such as '+00:00' "
            "(metric rows need one too)"
        )
    try:
        value = value.astimezone(UTC)
        # Windows and cooldowns reach weeks back and ahead; far-off years overflow.
        in_range = _EARLIEST <= value <= _LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise UsageError(
            f"{option} '{text}' is outside {_EARLIEST:%Y-%m-%d}..{_LATEST:%Y-%m-%d}; pass a time like "
            "2026-11-08T00:00:00Z"
        )
    return value


def now_or(text: str | None) -> datetime:
    """Evaluation time: ``--now`` when given (replays), else the real clock.

    An empty ``--now ''`` (an unset variable in a cron line) is an error, not the real clock.
    """
    if text is not None:
        return parse_instant(text)
    return datetime.now(UTC).replace(microsecond=0)
