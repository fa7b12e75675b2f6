"""Event times as sent: RFC 3339 text brought to what voxmeter keeps, before it is parsed.

Times are kept to the microsecond. Extra fractional digits are cut off (truncated), never
rounded: rounding 23:59:59.9999999 up would move an event into the next second, day or month.
A leap second (`23:59:60` UTC, which RFC 3339 allows) has no instant of its own in epoch time;
it is kept as the last microsecond of its minute (`23:59:59.999999`), in the same day and month.
"""

from __future__ import annotations

import re

_KEPT_DIGITS = 6
_LAST_MINUTE_OF_DAY = 23 * 60 + 59
#: The shape of every time the parser accepts: date, time to the second, fraction, offset.
_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ])(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):"
    r"(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))",
    re.ASCII,
)
#: Cheap tests on raw bytes: could they hold a time that `kept_time` would change? (Searching
#: for the two separately is several times faster than one pattern.)
LONG_FRACTION = re.compile(rb"\.[0-9]{7}")
LEAP_SECOND = b":60"


def kept_time(text: str) -> str:
    """`text` with the fraction cut to 6 digits and a leap second as 23:59:59.999999; any other
    text unchanged (the parser then judges it)."""
    match = _TIME.fullmatch(text)
    if match is None:
        return text
    second, fraction = match["second"], match["fraction"]
    if second == "60":
        if not _is_last_minute_of_utc_day(match):
            return text  # no leap second there: refused as an invalid time
        second, fraction = "59", "9" * _KEPT_DIGITS
    elif fraction is None or len(fraction) <= _KEPT_DIGITS:
        return text
    else:
        fraction = fraction[:_KEPT_DIGITS]
    return f"{match['date']}{match['hour']}:{match['minute']}:{second}.{fraction}{match['offset']}"


def _is_last_minute_of_utc_day(match: re.Match[str]) -> bool:
    local = int(match["hour"]) * 60 + int(match["minute"])
    offset = 0
    if match["sign"] is not None:
        offset = int(match["oh"]) * 60 + int(match["om"])
        offset = -offset if match["sign"] == "-" else offset
    return (local - offset) % (24 * 60) == _LAST_MINUTE_OF_DAY
