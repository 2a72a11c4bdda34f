"""Session-scoped synthetic cohorts (lion phantoms) shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lion_nnunet.dataset_conversion.phantoms import make_cohort


@pytest.fixture(scope="session")
def fdg_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 small FDG studies (seed 0), organ masks as per-class files."""
    out = tmp_path_factory.mktemp("fdg_cohort")
    make_cohort(out, "fdg", 10, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def psma_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 small PSMA studies (seed 1), organ masks as TotalSegmentator --ml files."""
    out = tmp_path_factory.mktemp("psma_cohort")
    make_cohort(out, "psma", 8, seed=1, organ_format="ml", progress=False)
    return out
