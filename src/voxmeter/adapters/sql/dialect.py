"""What differs between the SQL the two databases take, for the statements written once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class Dialect:
    """`param` is the placeholder (`?` or `%s`); `text_order` what follows a text column in
    ORDER BY so that both order by code point (SQLite's BINARY, PostgreSQL's `COLLATE "C"`)."""

    param: str
    text_order: str = ""

    def sql(self, template: str) -> str:
        """`template` written with `?` placeholders and `{order}` after ordered text columns."""
        return _render(template, self.param, self.text_order)


@cache
def _render(template: str, param: str, text_order: str) -> str:
    return template.replace("?", param).replace("{order}", text_order)


SQLITE = Dialect("?")
POSTGRES = Dialect("%s", ' COLLATE "C"')
