"""Exact quantities.

Figures are Decimal at every boundary. Inside, a quantity is an integer count of millionths of
its unit ("micro-units"): a quantity has at most 6 decimal places, so this is exact, and
Python integers never overflow, so sums stay exact for any number of events.
"""

from __future__ import annotations

from decimal import Decimal

MICRO = 1_000_000
MAX_DECIMALS = 6
#: The largest quantity one event may carry (10^12 units): far above any real usage, and it
#: keeps every stored per-event value inside a 64-bit integer column.
MAX_QUANTITY = Decimal(10) ** 12
MAX_MICROS = 10**12 * MICRO
_MAX_DIGITS = 13  # adjusted exponent of 10^12 is 12


class QuantityError(ValueError):
    """A quantity that cannot be metered; the message is shown to the caller."""


def micro_or_invalid(value: Decimal) -> int:
    """Micro-units of a valid quantity, or -1. Exact (no context rounding) and bounded: huge or
    tiny exponents are refused before any integer arithmetic. The hot path of validation."""
    if not value.is_finite():
        return -1
    if value.is_zero():
        return 0
    if not -MAX_DECIMALS <= value.adjusted() < _MAX_DIGITS:
        return -1
    numerator, denominator = value.as_integer_ratio()
    if numerator < 0 or MICRO % denominator:
        return -1
    micros = numerator * (MICRO // denominator)
    return micros if micros <= MAX_MICROS else -1


def to_micro(value: Decimal) -> int:
    """Micro-units of a quantity, or QuantityError saying what is wrong with it."""
    micros = micro_or_invalid(value)
    if micros >= 0:
        return micros
    if not value.is_finite():
        raise QuantityError("must be a finite number")
    if value < 0:
        raise QuantityError("must not be negative")
    if value > MAX_QUANTITY:
        raise QuantityError(f"must not exceed {MAX_QUANTITY:f}")
    raise QuantityError(f"has more than {MAX_DECIMALS} decimal places")


def from_micro(micro: int) -> Decimal:
    """Micro-units back to an exact Decimal."""
    return Decimal(micro).scaleb(-MAX_DECIMALS)


def format_micro(micro: int) -> str:
    """Plain decimal text, no exponent, no trailing zeros: 0, 12, 12.5."""
    if micro < 0:
        return "-" + format_micro(-micro)
    whole, frac = divmod(micro, MICRO)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:06d}".rstrip("0")


def format_decimal(value: Decimal) -> str:
    """Plain text of a Decimal without exponent or trailing zeros."""
    if value == 0:
        return "0"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def ceil_units(micro: int) -> int:
    """Round a quantity up to a whole unit, still in micro-units (0.1 -> 1, 2.01 -> 3)."""
    return -(-micro // MICRO) * MICRO
