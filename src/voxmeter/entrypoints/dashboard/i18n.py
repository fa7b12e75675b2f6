"""Languages: the gettext catalogs (compiled from the `.po` files in `locale/`), the choice of
language per request, and Babel's formatting of numbers, amounts and dates for it."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

from voxmeter.domain.months import Month

log = logging.getLogger("voxmeter.dashboard")

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español", "pt-BR": "Português (Brasil)"}
"""Each language the dashboard speaks, by its BCP 47 tag (the page's `lang`), named in itself."""
DEFAULT = "en"
REMEMBERED_AMOUNTS = 50_000
"""Formatted amounts kept per language before the memory starts over."""


def babel_name(tag: str) -> str:
    """`pt-BR` -> `pt_BR`: the catalog and Babel locale name of a language tag."""
    return tag.replace("-", "_")


def load_translations(tag: str) -> NullTranslations:
    """The compiled catalog of a language. Where set-up has not compiled it (a source checkout
    that skipped `scripts/dev.sh setup`), the `.po` file is compiled in memory instead."""
    if tag == DEFAULT:
        return NullTranslations()
    folder = LOCALE_DIR / babel_name(tag) / "LC_MESSAGES"
    mo = folder / f"{DOMAIN}.mo"
    if mo.exists():
        with mo.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    log.warning("%s is not compiled; compiling %s.po in memory", mo, DOMAIN)
    with (folder / f"{DOMAIN}.po").open("rb") as handle:
        catalog = read_po(handle, locale=babel_name(tag))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def accepted(header: str) -> str | None:
    """The best of LANGUAGES for an Accept-Language header, or None when none is acceptable."""
    wanted: list[tuple[float, str]] = []
    for part in header.split(","):
        piece = part.strip()
        if not piece:
            continue
        name, _, params = piece.partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if weight > 0:
            wanted.append((weight, name.strip()))
    for _, name in sorted(wanted, key=lambda w: -w[0]):
        tag = name.lower()
        for spoken in LANGUAGES:  # exactly, else the same language (es-CO -> es, pt -> pt-BR)
            if spoken.lower() == tag or spoken.lower().split("-")[0] == tag.split("-")[0]:
                return spoken
    return None


class Formats:
    """Babel's formatting for one language: what the templates call as filters."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.locale = Locale.parse(babel_name(tag))  # parsed once, not on every call
        self._amounts: dict[tuple[Decimal, str], str] = {}
        self._numbers: dict[Decimal, str] = {}

    def money(self, amount: Decimal | str, currency: str) -> str:
        """An amount already rounded to the currency's minor unit, with its symbol. Formatting
        one costs about 0.1 ms, and an overview of a thousand operations shows two each, so the
        text of each amount is remembered (pages render on the event loop alone)."""
        key = (Decimal(amount), currency)
        found = self._amounts.get(key)
        if found is None:
            if len(self._amounts) >= REMEMBERED_AMOUNTS:
                self._amounts.clear()
            found = format_currency(key[0], currency, locale=self.locale)
            self._amounts[key] = found
        return found

    def number(self, value: Decimal | str | int) -> str:
        """Every digit kept (figures are exact): 1234.5 -> 1,234.5 / 1.234,5. Remembered like
        amounts."""
        key = Decimal(value)
        found = self._numbers.get(key)
        if found is None:
            if len(self._numbers) >= REMEMBERED_AMOUNTS:
                self._numbers.clear()
            found = format_decimal(key, locale=self.locale, decimal_quantization=False)
            self._numbers[key] = found
        return found

    def day(self, value: date) -> str:
        return format_date(value, "medium", locale=self.locale)

    def month(self, value: Month) -> str:
        return format_skeleton("yMMMM", date(value.year, value.month, 1), locale=self.locale)

    def moment(self, value: datetime) -> str:
        return format_datetime(value, "medium", locale=self.locale)

    def filters(self) -> dict[str, Callable[..., str]]:
        return {
            "number": self.number,
            "money": self.money,
            "day": self.day,
            "month_name": self.month,
            "moment": self.moment,
        }
