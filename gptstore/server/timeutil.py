"""Timestamps in the one format the Hub client parses: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
