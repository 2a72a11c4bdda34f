"""PET DICOM series -> body-weight SUV (being written)."""

from __future__ import annotations

from pathlib import Path


def find_pet_series(root: Path) -> list:
    """PET series under ``root`` as prediction cases (none found yet: placeholder)."""
    return []
