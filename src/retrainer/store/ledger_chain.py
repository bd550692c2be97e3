"""The ledger's hash chain: each row carries a SHA-256 over its content and the previous row's hash.

The database refuses UPDATE, DELETE, TRUNCATE and REPLACE on the ledger (triggers); the chain is
what catches the rest — an edit of the file itself, triggers dropped by someone with the
database's password, a forged INSERT. :func:`verify` recomputes the chain and names the first
row that does not match. What a chain alone cannot see: the newest rows removed together (tail
truncation) by someone able to drop the triggers; anchor the head hash elsewhere for that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The first row's "previous hash": a fixed value, so the chain's start is checkable too.
GENESIS = "0" * 64

# The fields a row's hash covers, in this order. ``id`` is left out on purpose: it is assigned by
# the database after the hash is computed; the order of rows is pinned by ``prev_hash`` instead.
HASHED_FIELDS = ("model_name", "action", "from_version", "to_version", "actor", "reason", "run_id", "at", "details")


def row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the previous hash and the row's content in canonical JSON.

    ``at`` is epoch seconds as a float: ``repr`` round-trips exactly through both dialects'
    double columns; ``details`` is sorted so JSONB's key reordering does not change the hash.
    """
    content = {f: row.get(f) for f in HASHED_FIELDS}
    content["at"] = repr(float(content["at"])) if content["at"] is not None else None
    payload = json.dumps([prev_hash, content], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    rows: int
    first_bad_id: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "first_bad_id": self.first_bad_id, "reason": self.reason}


def verify_rows(rows: Iterable[Mapping[str, Any]]) -> ChainVerdict:
    """Walk the rows in id order; the first whose ``prev_hash`` or ``row_hash`` is off is named."""
    prev = GENESIS
    n = 0
    for row in rows:
        n += 1
        rid = int(row["id"])
        if row.get("prev_hash") != prev:
            what = "has no hash" if row.get("prev_hash") is None else "does not follow the row before it"
            return ChainVerdict(False, n, rid, f"ledger row {rid} {what} (a row was inserted, removed or reordered)")
        expected = row_hash(prev, row)
        if row.get("row_hash") != expected:
            return ChainVerdict(False, n, rid, f"ledger row {rid} was changed after it was written (its hash does not match its content)")
        prev = expected
    return ChainVerdict(True, n, None, f"{n} ledger rows, hash chain intact")


__all__ = ["GENESIS", "HASHED_FIELDS", "ChainVerdict", "row_hash", "verify_rows"]
