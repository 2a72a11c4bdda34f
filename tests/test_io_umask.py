"""Atomic writes (``lion_nnunet.io.atomic_path``) create files as ``open()`` does: 0666 less umask.

Expected modes are worked out by hand: 0o666 & ~0o022 = 0o644, & ~0o027 = 0o640, & ~0o077 = 0o600.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.inference.pictures import save_mip_png
from lion_nnunet.io import write_csv, write_image, write_json

UMASK_MODE = [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)]


@pytest.fixture(params=UMASK_MODE, ids=lambda p: f"umask-{p[0]:03o}")
def umask_and_mode(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    umask, mode = request.param
    old = os.umask(umask)
    yield umask, mode
    os.umask(old)


def test_atomic_writers_honour_the_umask(umask_and_mode: tuple[int, int], tmp_path: Path) -> None:
    _, mode = umask_and_mode
    case = tmp_path / "out" / "PETCT_0af7ffe12a"
    suv = np.zeros((12, 10, 8), np.float32)
    suv[4:7, 3:6, 2:5] = 7.5
    tumor = (suv > 2.5).astype(np.uint8)
    image = sitk.GetImageFromArray(tumor)
    image.SetSpacing((2.0364, 2.0364, 3.0))
    summary = pd.DataFrame({"case_id": ["PETCT_0af7ffe12a"], "tmtv_ml": [0.337]})
    written = [
        write_image(image, case / "tumor.nii.gz"),
        write_json({"case_id": "PETCT_0af7ffe12a", "tmtv_ml": 0.337}, case / "report.json"),
        write_csv(summary, tmp_path / "out" / "summary.csv"),
        save_mip_png(suv, tumor, None, (3.0, 2.0364, 2.0364), case / "mip.png"),
    ]
    for path in written:
        assert path.stat().st_size > 0, path
        assert path.stat().st_mode & 0o777 == mode, (path.name, oct(path.stat().st_mode))
    leftovers = [p.name for p in tmp_path.rglob("*.part*")]
    assert not leftovers  # no temporary file left beside the outputs


def test_overwrite_takes_the_current_umask(tmp_path: Path) -> None:
    """A file replaced through the temp path gets the umask of the run that wrote it."""
    path = tmp_path / "report.json"
    old = os.umask(0o077)
    try:
        write_json({"tmtv_ml": 1.0}, path)
        assert path.stat().st_mode & 0o777 == 0o600
        os.umask(0o022)
        write_json({"tmtv_ml": 2.0}, path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.read_text().strip().endswith("}") and "2.0" in path.read_text()
