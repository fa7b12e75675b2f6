"""Currencies and amounts: ISO 4217 codes, their minor units, and rounding to them.

Amounts are exact: a unit price has at most 6 decimal places and a quantity too, so a line's
amount is an integer count of 10^-12 of the currency, rounded once, half-even, to the
currency's minor unit. No binary float anywhere.
"""

from __future__ import annotations

from functools import lru_cache

from babel.numbers import get_currency_precision, is_currency

DEFAULT_CURRENCY = "USD"
PICO = 10**12
"""Amounts before rounding are in 10^-12 of the currency: micro-units times micro-prices."""

ISO_MINOR_UNITS = {
    "AFN": 2,
    "ALL": 2,
    "COP": 2,
    "HUF": 2,
    "IDR": 2,
    "IQD": 3,
    "IRR": 2,
    "KPW": 2,
    "LAK": 2,
    "LBP": 2,
    "MGA": 2,
    "MMK": 2,
    "SLL": 2,
    "SOS": 2,
    "SYP": 2,
    "YER": 2,
}
"""Where Babel's CLDR data keeps fewer digits than ISO 4217's minor unit (CLDR records what is
customary in cash and accounting, e.g. 0 for COP), ISO 4217 wins: invoices follow the standard."""


class CurrencyError(ValueError):
    """A currency code that is not ISO 4217; the message is shown to the caller."""


def check_currency(code: str) -> str:
    """An ISO 4217 code as given (three capital letters), or CurrencyError."""
    if not (len(code) == 3 and code.isascii() and code.isupper() and is_currency(code)):
        raise CurrencyError(f"unknown currency {code!r}: use an ISO 4217 code such as USD or COP")
    return code


@lru_cache(maxsize=512)
def minor_units(code: str) -> int:
    """Digits after the decimal point of the currency's smallest unit (USD 2, CLP 0, BHD 3)."""
    found = ISO_MINOR_UNITS.get(code)
    return found if found is not None else int(get_currency_precision(code))


def round_amount(pico: int, code: str) -> int:
    """An amount in 10^-12 of the currency, rounded half-even to its minor unit (returned as a
    count of minor units)."""
    step: int = 10 ** (12 - minor_units(code))
    quotient, rest = divmod(pico, step)
    twice = 2 * rest
    if twice > step or (twice == step and quotient % 2):
        quotient += 1
    return quotient


def format_minor(minor: int, code: str) -> str:
    """A count of minor units as a plain decimal (no exponent, no trailing zeros): 12.5, 1200."""
    digits = minor_units(code)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{digits}d}".rstrip("0")
