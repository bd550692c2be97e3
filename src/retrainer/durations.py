"""Human durations (``30d``, ``6h``, ``15m``) for configuration and the CLI."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: Any) -> timedelta:
    """Parse ``30d``, ``6h``, ``15m``, ``45s``, ``2w``, a number of seconds, or a timedelta.

    >>> parse_duration("6h")
    datetime.timedelta(seconds=21600)
    >>> parse_duration(90)
    datetime.timedelta(seconds=90)
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):  # bool is an int subclass; True seconds is never meant
        raise ValueError(f"{value!r} is not a duration: use e.g. 30d, 6h, 15m, 45s or 2w")
    elif isinstance(value, (int, float)):
        result = timedelta(seconds=float(value))
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        result = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise ValueError(f"{value!r} is not a duration: use e.g. 30d, 6h, 15m, 45s or 2w")
    if result.total_seconds() < 0:
        raise ValueError(f"{value!r} is negative: a duration must be zero or more")
    return result


def format_duration(value: timedelta) -> str:
    """The shortest exact form: 86400 s -> ``1d``, 5400 s -> ``90m``.

    >>> format_duration(timedelta(days=30)), format_duration(timedelta(minutes=90))
    ('30d', '90m')
    """
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
"""A pydantic field type that accepts ``30d``/``6h``/``15m``/seconds and serialises back to that form."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration (e.g. 7d, 6h)")
    return value


PositiveDuration = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_positive), PlainSerializer(format_duration, return_type=str)
]
"""A :data:`Duration` that must be above zero (trigger windows, lookbacks, ages)."""
