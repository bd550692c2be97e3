"""Deterministic, sticky A/B assignment.

A unit (a user, an account, a session: whatever ``unit_id`` the caller sends) is hashed with
the test's salt into one of 10,000 buckets; buckets below ``split x 10,000`` see the
challenger. The hash is BLAKE2s from :mod:`hashlib`, so the same ``(salt, unit_id)`` lands in
the same bucket in every process, on every machine, under every ``PYTHONHASHSEED`` — unlike
Python's ``hash()``, which is salted per process and would reshuffle users on every restart.

>>> bucket("spring-test", "user-42")
4866
>>> arm_for("spring-test", "user-42", 0.1)
'champion'
"""

from __future__ import annotations

import hashlib
import secrets

BUCKETS = 10_000
CHAMPION_ARM = "champion"
CHALLENGER_ARM = "challenger"
ARMS = (CHAMPION_ARM, CHALLENGER_ARM)

_blake2s = hashlib.blake2s
_from_bytes = int.from_bytes


def bucket(salt: str, unit_id: str) -> int:
    """The bucket of ``unit_id`` under ``salt``: an int in ``[0, 10000)``, stable everywhere.

    64 bits of BLAKE2s of the UTF-8 text ``salt:unit_id``, modulo 10,000 (the modulo bias,
    about 1e-15, is far below anything a test could see).
    """
    digest = _blake2s((salt + ":" + unit_id).encode(), digest_size=8).digest()
    return _from_bytes(digest, "big") % BUCKETS


def threshold(split: float) -> int:
    """Buckets ``[0, threshold)`` go to the challenger."""
    if not 0.0 < split < 1.0:
        raise ValueError(f"split must be between 0 and 1 (exclusive), got {split!r}")
    return round(split * BUCKETS)


def arm_for(salt: str, unit_id: str, split: float) -> str:
    """``'challenger'`` for a ``split`` share of units, ``'champion'`` for the rest."""
    return CHALLENGER_ARM if bucket(salt, unit_id) < threshold(split) else CHAMPION_ARM


def new_salt() -> str:
    """A fresh salt, so two tests never reuse one assignment (units would carry over)."""
    return secrets.token_hex(8)


__all__ = ["ARMS", "BUCKETS", "CHALLENGER_ARM", "CHAMPION_ARM", "arm_for", "bucket", "new_salt", "threshold"]
