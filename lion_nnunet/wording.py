"""Collections put into sentences for the console: never a Python ``{...}`` or ``[...]`` repr.

Examples:
    >>> from lion_nnunet.wording import counted, failures, names
    >>> names(["case_id", "pet"])
    'case_id, pet'
    >>> names([])
    'none'
    >>> counted({"lymphoma": 3, "negative": 2})
    '3 lymphoma, 2 negative'
    >>> print(failures({"p1": "p1/SUV.nii.gz: truncated", "p2": "KilledWorker: lost"}))
      - p1: p1/SUV.nii.gz: truncated
      - p2: KilledWorker: lost
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def names(items: Iterable[object], empty: str = "none") -> str:
    """``items`` joined by ", " (``empty`` when there are none)."""
    text = ", ".join(str(i) for i in items)
    return text or empty


def counted(counts: Mapping[object, int], empty: str = "none") -> str:
    """ "3 lymphoma, 2 negative" from ``{"lymphoma": 3, "negative": 2}``, in the mapping's order."""
    return names((f"{int(n)} {what}" for what, n in counts.items()), empty)


def failures(reasons: Mapping[str, str]) -> str:
    """One line per failed case, ``  - <case id>: <reason>``, each on its own line."""
    return "".join(f"\n  - {case}: {why}" for case, why in reasons.items()).lstrip("\n")
