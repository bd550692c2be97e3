"""Validation of SQL identifiers that come from configuration.

Table and column names from retrainer.yaml end up in SQL text (SQLAlchemy quotes them, but a
name such as ``x"; DROP TABLE`` should never reach a statement at all), so they are checked
against a plain-identifier pattern before any SQL runs.
"""

from __future__ import annotations

import re

from retrainer.errors import InvalidIdentifierError

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_QUALIFIED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


def is_plain_identifier(name: str) -> bool:
    """True when ``name`` is a letter/underscore followed by up to 62 letters, digits or underscores.

    >>> is_plain_identifier("amount_usd"), is_plain_identifier("1st"), is_plain_identifier("a-b")
    (True, False, False)
    """
    return isinstance(name, str) and bool(_PLAIN_IDENTIFIER.match(name))


def validate_identifier(name: str, what: str = "identifier", *, qualified: bool = False) -> str:
    """Return ``name`` unchanged if it is a plain SQL name, else raise InvalidIdentifierError.

    ``qualified`` also allows one ``schema.table`` dot.
    """
    pattern = _QUALIFIED if qualified else _PLAIN_IDENTIFIER
    if not isinstance(name, str) or not pattern.match(name):
        shape = "schema.name or name" if qualified else "name"
        raise InvalidIdentifierError(
            f"{what} {name!r} is not a plain SQL {shape}: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return name
