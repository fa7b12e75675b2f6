"""Exact quantities.

Figures are Decimal at every boundary. Inside, a quantity is an integer count of millionths of
its unit ("micro-units"): the contract allows at most 6 decimal places, so this is exact, and
Python integers never overflow, so sums stay exact for any number of events.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICRO = 1_000_000
MAX_DECIMALS = 6
#: The largest quantity one event may carry (10^12 units): far above any real usage, and it
#: keeps every stored per-event value inside a 64-bit integer column.
MAX_QUANTITY = Decimal(10) ** 12


class QuantityError(ValueError):
    """A quantity that cannot be metered; the message is shown to the caller."""


def to_micro(value: Decimal) -> int:
    """Convert a validated-shape Decimal into micro-units, or raise QuantityError."""
    if not value.is_finite():
        raise QuantityError("must be a finite number")
    if value < 0 and not value.is_zero():
        raise QuantityError("must not be negative")
    if value > MAX_QUANTITY:
        raise QuantityError(f"must not exceed {MAX_QUANTITY:f}")
    if not value.is_zero() and value.adjusted() < -MAX_DECIMALS:
        raise QuantityError(f"has more than {MAX_DECIMALS} decimal places")
    scaled = value.scaleb(MAX_DECIMALS)
    try:
        whole = scaled.to_integral_value()
    except InvalidOperation as exc:  # pragma: no cover - guarded by the checks above
        raise QuantityError("is not a number") from exc
    if scaled != whole:
        raise QuantityError(f"has more than {MAX_DECIMALS} decimal places")
    return int(whole)


def from_micro(micro: int) -> Decimal:
    """Micro-units back to an exact Decimal."""
    return Decimal(micro).scaleb(-MAX_DECIMALS)


def format_micro(micro: int) -> str:
    """Plain decimal text, no exponent, no trailing zeros: 0, 12, 12.5."""
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
