"""Kubernetes timestamps: metav1.Time (RFC 3339, seconds) and metav1.MicroTime (microseconds).

Both are UTC with a ``Z``, as the apiserver writes them (apimachinery pkg/apis/meta/v1/time.go
``Time.MarshalJSON`` uses ``time.RFC3339``; micro_time.go ``MicroTime`` uses
``2006-01-02T15:04:05.000000Z07:00``). Leases need MicroTime; everything else takes Time.
"""

from __future__ import annotations

import datetime

_TIME = "%Y-%m-%dT%H:%M:%SZ"
_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(when: datetime.datetime | None = None, micro: bool = False) -> str:
    """``when`` (default: now) as a metav1.Time, or a metav1.MicroTime with ``micro``."""
    return (when or utc_now()).astimezone(datetime.UTC).strftime(_MICRO if micro else _TIME)


def parse_rfc3339(text: str | None) -> datetime.datetime | None:
    """A Time or MicroTime as the apiserver writes them; None for anything else."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age_seconds(text: str | None) -> float | None:
    """Seconds since the timestamp ``text`` (None when it does not parse)."""
    when = parse_rfc3339(text)
    return None if when is None else (utc_now() - when).total_seconds()
