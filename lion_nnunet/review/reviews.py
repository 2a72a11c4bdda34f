"""``GALLERY/reviews.csv``: one row per reviewed case, the last decision recorded for it.

Columns :data:`COLUMNS`: ``case_id``, ``decision`` (``accept`` or ``reject``, empty for a
comment alone; ``corrected`` once a corrected mask was saved by the server), ``comment``,
``reviewer``, ``timestamp`` (UTC, ISO 8601, seconds), ``lesions`` (decisions on single lesions,
``<lesion_id>:accept`` or ``<lesion_id>:reject`` separated by spaces, e.g. ``1:accept 3:reject``;
ids as in the case's report.json). Files without the ``lesions`` column (older galleries) are
read as having none. The page
served by ``lion review --serve`` records each click here (:class:`ReviewBook`); the page opened
from disk exports the same columns as a download.

A comment or reviewer name that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
return) is stored with a leading ``'`` (:func:`spreadsheet_safe`): a spreadsheet opening
reviews.csv shows it as text instead of running it as a formula (OWASP's "CSV injection").
"""

from __future__ import annotations

import csv
import io
import threading
from datetime import datetime, timezone
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path

COLUMNS = ("case_id", "decision", "comment", "reviewer", "timestamp", "lesions")
#: Decisions a reader gives on the page; ``corrected`` is set by the server when a corrected mask
#: of the case is saved (:mod:`.corrections`).
DECISIONS = ("accept", "reject", "")
CORRECTED = "corrected"
#: Decisions on one lesion (the ``lesions`` column, ``1:accept 3:reject``; report.json's ids).
LESION_DECISIONS = ("accept", "reject")
#: Longest comment or reviewer name kept (characters).
MAX_TEXT = 2000
#: First characters a spreadsheet reads as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` with a ``'`` in front when a spreadsheet would run it as a formula.

    Examples:
        >>> spreadsheet_safe("=SUM(A1:A9)"), spreadsheet_safe("-2 cm"), spreadsheet_safe("bladder")
        ("'=SUM(A1:A9)", "'-2 cm", 'bladder')
    """
    return "'" + text if text.startswith(FORMULA_START) else text


def read_reviews(path: str | Path) -> dict[str, dict]:
    """Rows of a reviews.csv by case id ({} when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("case_id", "decision") if c not in (reader.fieldnames or [])]
        if missing:
            raise LionError(
                f"{path}: no {' or '.join(missing)} column (found {reader.fieldnames}); expected "
                f"{','.join(COLUMNS)}: move the file away to start a new one"
            )
        return {row["case_id"]: {c: row.get(c) or "" for c in COLUMNS} for row in reader}


def to_csv(rows: list[dict]) -> str:
    """CSV text with the header :data:`COLUMNS` (the page's export writes the same).

    Examples:
        >>> print(to_csv([{"case_id": "PETCT_0af7ffe12a", "decision": "reject",
        ...                "comment": "bladder, not tumor", "reviewer": "AB",
        ...                "timestamp": "2026-12-03T14:00:00+00:00"}]), end="")
        case_id,decision,comment,reviewer,timestamp,lesions
        PETCT_0af7ffe12a,reject,"bladder, not tumor",AB,2026-12-03T14:00:00+00:00,
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def clean_review(data: object, case_ids: set[str]) -> dict:
    """A review row from a client's JSON object, or ValueError saying what is wrong.

    ``case_id`` must be one of ``case_ids``, ``decision`` one of :data:`DECISIONS`; texts are
    cut at :data:`MAX_TEXT` characters and made :func:`spreadsheet_safe`; the timestamp is set
    here (UTC).
    """
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object {case_id, decision, comment, reviewer}")
    case_id = data.get("case_id")
    if case_id not in case_ids:
        raise ValueError(f"unknown case_id {case_id!r}")
    decision = data.get("decision") or ""
    if decision not in (*DECISIONS, CORRECTED):  # corrected: the page re-sends the server's
        raise ValueError(f"decision {decision!r}: expected accept, reject, corrected or empty")
    texts = {
        k: spreadsheet_safe(str(data.get(k) or "")[:MAX_TEXT]) for k in ("comment", "reviewer")
    }
    lesions = clean_lesions(data.get("lesions"))
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"case_id": case_id, "decision": decision, **texts, "timestamp": stamp,
            "lesions": lesions}  # fmt: skip


def clean_lesions(value: object) -> str:
    """The ``lesions`` column from ``{lesion_id: "accept" | "reject"}`` (or its text form), or
    ValueError; sorted by lesion id.

    Examples:
        >>> clean_lesions({"3": "reject", 1: "accept"})
        '1:accept 3:reject'
    """
    if value in (None, "", {}):
        return ""
    if isinstance(value, str):
        pairs = [item.split(":", 1) for item in value.split()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"lesions {value!r}: expected '<lesion_id>:accept|reject ...'")
        value = dict(pairs)
    if not isinstance(value, dict):
        raise ValueError("lesions: expected an object {lesion_id: 'accept' | 'reject'}")
    out = {}
    for key, decision in value.items():
        if not str(key).isdigit() or int(key) < 1:
            raise ValueError(f"lesion id {key!r}: expected a whole number from 1")
        if decision not in LESION_DECISIONS:
            raise ValueError(f"lesion {key}: {decision!r}; expected accept or reject")
        out[int(key)] = decision
    return " ".join(f"{k}:{v}" for k, v in sorted(out.items()))


class ReviewBook:
    """reviews.csv with a lock: each :meth:`record` replaces the case's row and rewrites the
    file atomically (temporary file + rename), so a reader never sees half a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def rows(self) -> list[dict]:
        with self._lock:
            return list(read_reviews(self.path).values())

    def mark(self, case_id: str, decision: str, reviewer: str = "") -> dict:
        """Set a case's decision (e.g. ``corrected``), keeping its comment and lesion decisions."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            rows = read_reviews(self.path)
            row = {**dict.fromkeys(COLUMNS, ""), **rows.get(case_id, {}), "case_id": case_id,
                   "decision": decision, "timestamp": stamp}  # fmt: skip
            if reviewer:
                row["reviewer"] = spreadsheet_safe(reviewer[:MAX_TEXT])
            rows[case_id] = row
            with atomic_path(self.path) as tmp:
                tmp.write_text(to_csv(list(rows.values())), encoding="utf-8")
        return row

    def record(self, row: dict) -> None:
        """Add or replace the row of ``row["case_id"]`` (from :func:`clean_review`)."""
        with self._lock:
            rows = read_reviews(self.path)
            rows[row["case_id"]] = {c: row.get(c, "") for c in COLUMNS}
            with atomic_path(self.path) as tmp:
                tmp.write_text(to_csv(list(rows.values())), encoding="utf-8")
