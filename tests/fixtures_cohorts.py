"""Session-scoped synthetic cohorts (``lion phantoms``) shared by the tests.

Each returns the cohort folder: ``studies/<patient>/<study>/{SUV,CTres,SEG}.nii.gz``,
``organs/<patient>/<study>/``, ``cases.csv`` and ``lesions.csv`` (see docs/phantoms.md).
Treat them as read-only; copy a cohort into ``tmp_path`` before changing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lion_nnunet.synthetic.phantoms import make_cohort


@pytest.fixture(scope="session")
def fdg_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 small FDG studies (seed 0; every FDG disease incl. 2 negatives), per-class masks."""
    out = tmp_path_factory.mktemp("fdg_cohort")
    make_cohort(out, "fdg", 10, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def fdg_cohort_ml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 10 FDG studies as ``fdg_cohort``, organs as TotalSegmentator --ml files."""
    out = tmp_path_factory.mktemp("fdg_cohort_ml")
    make_cohort(out, "fdg", 10, seed=0, organ_format="ml", progress=False)
    return out


@pytest.fixture(scope="session")
def psma_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 small PSMA studies (seed 1; prostate cancer + negatives), organs as --ml files."""
    out = tmp_path_factory.mktemp("psma_cohort")
    make_cohort(out, "psma", 8, seed=1, organ_format="ml", progress=False)
    return out
