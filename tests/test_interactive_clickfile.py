"""Click files: both official forms, physical points, and one sentence for a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from interactive_cases import ORIGIN, SHAPE, SPACING, affine

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError
from lion_nnunet.interactive.clickfile import Clicks, read_clicks, to_gc, write_clicks

CASE = "PETCT_0af7ffe12a_2002-10-19"


@pytest.fixture
def pet(tmp_path: Path) -> Path:
    path = tmp_path / f"{CASE}_0000.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.float32), affine()), path)
    return path


def _file(tmp_path: Path, data: object, name: str = f"{CASE}_clicks.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _check(path: Path, pet: Path) -> int:
    return main(["clicks", "check", str(path), "--pet", str(pet), "--json"])


def test_both_forms_give_the_same_clicks_in_order(tmp_path: Path) -> None:
    simple = {"tumor": [[1, 2, 3], [4, 5, 6]], "background": [[7, 8, 9]]}
    gc = {
        "version": {"major": 1, "minor": 0},
        "type": "Multiple points",
        "points": [  # interleaved: the order within each kind is what counts
            {"point": [1, 2, 3], "name": "tumor"},
            {"point": [7, 8, 9], "name": "background"},
            {"point": [4, 5, 6], "name": "tumor"},
        ],
    }
    expected = Clicks(((1, 2, 3), (4, 5, 6)), ((7, 8, 9),))
    assert read_clicks(_file(tmp_path, simple, "a.json"), SHAPE) == expected
    assert read_clicks(_file(tmp_path, gc, "b.json"), SHAPE) == expected
    assert expected.first(1) == Clicks(((1, 2, 3),), ((7, 8, 9),))


def test_written_files_read_back(tmp_path: Path) -> None:
    clicks = Clicks(((1, 2, 3),), ((7, 8, 9), (0, 0, 0)))
    for form in ("simple", "gc"):
        assert read_clicks(write_clicks(clicks, tmp_path / f"{form}.json", form)) == clicks
    assert to_gc(clicks)["points"][0] == {"point": [1, 2, 3], "name": "tumor"}


@pytest.mark.parametrize("space", ["LPS", "RAS"])
def test_physical_points_map_to_the_nearest_voxel(tmp_path: Path, pet: Path, space) -> None:
    """Voxel (i, j, k) lies at RAS mm ORIGIN + (4 i, 4 j, 3 k) (the nibabel affine); LPS negates
    x and y. 1 mm off the voxel centre still picks that voxel."""
    voxels = [(3, 7, 20), (39, 0, 63)]
    ras = [[ORIGIN[a] + SPACING[a] * v[a] + 1.0 for a in range(3)] for v in voxels]
    points = ras if space == "RAS" else [[-x, -y, z] for x, y, z in ras]
    data = {"space": space, "tumor": [points[0]], "background": [points[1]]}
    assert _check(_file(tmp_path, data), pet) == 0
    from lion_nnunet.io import read_image

    clicks = read_clicks(tmp_path / f"{CASE}_clicks.json", image=read_image(pet))
    assert clicks == Clicks((voxels[0],), (voxels[1],))


BAD = [
    ({"tumor": [[40, 0, 0]], "background": []}, "point 1 [40, 0, 0] (tumor) lies outside"),
    ({"tumor": [], "background": [[0, -1, 0]]}, "point 1 [0, -1, 0] (background) lies outside"),
    (
        {"type": "Multiple points", "points": [{"point": [1, 2, 3], "name": "lesion"}]},
        "point 1 [1, 2, 3] has the unknown name 'lesion'",
    ),
    ({"tumor": [[1, 2, 3]], "lesions": [[1, 1, 1]]}, "unknown click name(s) 'lesions'"),
    ({"tumor": [[1, 2]]}, "point 1 is [1, 2]; expected three numbers"),
    ({"tumor": [[1.5, 2, 3]]}, "point 1 [1.5, 2, 3] (tumor) is not a whole voxel index"),
    ({"space": "mm", "tumor": []}, "'space' is 'mm'"),
    ('{"tumor": [[1, 2, 3]', "not a valid JSON click file"),
    ("[[1, 2, 3]]", "expected a JSON object"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_a_bad_click_file_is_one_sentence_naming_file_and_point(
    tmp_path: Path, pet: Path, capsys, data, message: str
) -> None:
    path = _file(tmp_path, data)
    assert _check(path, pet) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith(f"lion clicks: error: {path}: ") and message in err
    assert "\n" not in err and "Traceback" not in err
    with pytest.raises(LionError, match=str(path)):
        read_clicks(path, SHAPE)


def test_physical_points_without_an_image_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, {"space": "LPS", "tumor": [[0.0, 0.0, 0.0]]})
    with pytest.raises(LionError, match="need the PET image"):
        read_clicks(path, SHAPE)
