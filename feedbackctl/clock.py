"""The clock lives in the shell: ``--now`` or the real time, always UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime

from feedbackctl.errors import UsageError


def parse_instant(text: str, option: str = "--now") -> datetime:
    raw = text.strip()
    try:
        if raw.lstrip("-").replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), UTC)
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
    return value.astimezone(UTC)


def now_or(text: str | None) -> datetime:
    """Evaluation time: ``--now`` when given (replays), else the real clock."""
    if text:
        return parse_instant(text)
    return datetime.now(UTC).replace(microsecond=0)
