"""PET MIP PNGs: projections, head up, tumor drawn in red where it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lion_nnunet.inference.pictures import mask_mip, mip, save_mip_png


def test_mip_axes_and_nan() -> None:
    a = np.zeros((4, 3, 2), np.float32)
    a[1, 2, 0] = 5.0
    a[3, 0, 1] = np.nan
    cor = mip(a, axis=1)
    assert cor.shape == (4, 2) and cor[1, 0] == 5.0 and cor[3, 1] == 0.0
    assert mip(a, axis=2).shape == (4, 3)
    assert mask_mip(a == 5.0, axis=2)[1, 2]


def test_save_mip_png_draws_tumor_head_up(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    pet = np.ones((60, 20, 20), np.float32)
    tumor = np.zeros(pet.shape, np.uint8)
    tumor[50:56, 8:12, 8:12] = 1  # near the head (high z)
    organs = np.zeros(pet.shape, np.uint8)
    organs[5:15, 5:15, 5:15] = 3
    path = save_mip_png(pet, tumor, organs, (3.0, 2.0, 2.0), tmp_path / "m.png", title="case")
    rgba = mpimg.imread(str(path))
    assert rgba.shape[0] > 200 and rgba.shape[1] > 100
    above_legend = rgba[: int(0.96 * rgba.shape[0])]  # the red legend patch sits in the bottom 4 %
    red = (above_legend[..., 0] > 0.8) & (above_legend[..., 1] < 0.3) & (above_legend[..., 2] < 0.3)
    rows = np.nonzero(red.any(axis=1))[0]
    plot_rows = np.nonzero((above_legend[..., :3].sum(axis=-1) < 2.9).any(axis=1))[0]
    # the tumor is near the top of the drawn body (head up), not near the bottom
    assert rows.size and rows.mean() < plot_rows.min() + 0.4 * (plot_rows.max() - plot_rows.min())
    assert not list(tmp_path.glob(".*part*"))  # atomic write left no temp file


def test_mip_window_is_fixed_across_patients(tmp_path: Path) -> None:
    """The same SUV gives the same grey in two patients whose SUVmax differ (5 vs 40)."""
    import matplotlib.image as mpimg

    from lion_nnunet.inference.rotating_mip import rotating_mip_frames

    pixels, frames = [], []
    for k, hottest in enumerate((5.0, 40.0)):
        pet = np.full((60, 20, 20), 1.0, np.float32)
        pet[20:40, 5:15, 5:15] = 4.0  # the same SUV 4 region in both
        pet[50, 10, 10] = hottest  # only SUVmax differs
        assert pet.max() == hottest
        path = save_mip_png(pet, None, None, (3.0, 2.0, 2.0), tmp_path / f"{k}.png")
        rgba = mpimg.imread(str(path))
        pixels.append(rgba[int(0.55 * rgba.shape[0]), int(0.25 * rgba.shape[1]), :3])
        frames.append(rotating_mip_frames(pet, np.zeros(pet.shape), (3.0, 2.0, 2.0), 90))
    # the coronal MIP's SUV 4 region, grey 1 - 4/10 of the default FDG window (SUV 0-10)
    np.testing.assert_allclose(pixels[0], pixels[1])
    np.testing.assert_allclose(pixels[0], 0.6, atol=0.03)
    rows = frames[0][0].shape[0]
    middle = frames[0][0][rows // 2, frames[0][0].shape[1] // 2]
    np.testing.assert_array_equal(middle, frames[1][0][rows // 2, frames[1][0].shape[1] // 2])
    np.testing.assert_allclose(middle, 255 * 0.6, atol=2)


def test_orientation_marks_and_lps_reorientation() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    from lion_nnunet.inference.pictures import draw_mip, lps_arrays

    fig, ax = plt.subplots()
    draw_mip(ax, np.ones((6, 4, 4)), (2.0, 2.0, 2.0), axis=1)
    marks = sorted(t.get_text() for t in ax.texts)
    plt.close(fig)
    assert marks == ["F", "H", "L", "R"]
    # an image whose x axis runs to the patient's right (direction -1): voxel x=0 is the
    # patient's far left, so in LPS order it becomes the last column
    tumor = np.zeros((3, 4, 5), np.uint8)
    tumor[1, 2, 0] = 1
    image = sitk.GetImageFromArray(tumor)
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    image.SetSpacing((2.0, 3.0, 4.0))
    (lps,), spacing = lps_arrays(image, tumor)
    assert np.argwhere(lps).tolist() == [[1, 2, 4]] and spacing == (4.0, 3.0, 2.0)


def test_pictures_have_square_pixels_and_512_rows_whatever_the_voxels(tmp_path: Path) -> None:
    """A phantom-size PET with 8 x 4 x 3 mm voxels (z, y, x): a 48 mm cube is as wide as high in
    every picture, 48 / 1.125 = 42.7 px (576 mm head-feet over 512 rows), in the PNGs and GIF."""
    from PIL import Image

    from lion_nnunet.inference.pictures import (
        CORONAL_AXIS,
        SAGITTAL_AXIS,
        banner_height,
        save_single_mip_png,
    )
    from lion_nnunet.inference.rotating_mip import save_rotating_mip

    spacing = (8.0, 4.0, 3.0)
    pet = np.full((72, 40, 48), 1.0, np.float32)
    pet[30:36, 14:26, 16:32] = 20.0  # 6 x 8, 12 x 4, 16 x 3 mm = a 48 mm cube, black in SUV 0-10
    tumor = np.zeros(pet.shape, np.uint8)

    def block(picture: np.ndarray, top: int) -> tuple[int, int]:
        dark = picture[top:, :, :3].sum(axis=-1) < 60
        rows, cols = np.nonzero(dark.any(axis=1))[0], np.nonzero(dark.any(axis=0))[0]
        assert rows.size and cols.size
        return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)

    for axis, name in ((CORONAL_AXIS, "cor.png"), (SAGITTAL_AXIS, "sag.png")):
        path = save_single_mip_png(pet, tumor, None, spacing, axis, tmp_path / name, "c")
        picture = np.asarray(Image.open(path).convert("RGB"))
        top = banner_height(3)  # title, projection and window, legend
        assert picture.shape[0] == top + 512
        height, width = block(picture, top)
        assert abs(height - 48 / 1.125) <= 1.5 and abs(width - 48 / 1.125) <= 1.5
    path = save_mip_png(pet, tumor, None, spacing, tmp_path / "mip.png", title="c")
    assert np.asarray(Image.open(path)).shape[0] == banner_height(3) + 512
    # the GIF: 4 mm isotropic (144 rows of 576 mm) enlarged to 512 rows, 3.56 x: 48 mm = 42.7 px
    path = save_rotating_mip(pet, tumor, spacing, tmp_path / "m.gif", step_deg=90)
    with Image.open(path) as gif:
        frame = np.asarray(gif.convert("RGB"))
    assert frame.shape[0] == banner_height(2) + 512
    height, width = block(frame, banner_height(2))
    assert abs(height - 48 / 1.125) <= 3 and abs(width - 48 / 1.125) <= 3


def test_lesion_numbers_stand_beside_their_lesions(tmp_path: Path) -> None:
    """Each lesion's number (the value in the lesion map) is written just right of its projected
    centre: the picture equals the one without numbers plus the numbers drawn at positions
    computed here by hand."""
    from PIL import Image

    from lion_nnunet.inference.pictures import (
        CORONAL_AXIS,
        banner_height,
        draw_numbers,
        save_single_mip_png,
    )

    pet = np.ones((20, 10, 16), np.float32)
    lesions = np.zeros(pet.shape, np.uint16)
    lesions[2:4, 4, 2:4] = 2  # centre z 2.5, x 2.5: numbered 2 (the map's value, not an order)
    lesions[14:17, 3:6, 10:13] = 1  # centre z 15, x 11
    spacing = (2.0, 2.0, 2.0)
    # 20 slices x 2 mm on at least 512 rows: 40 / 512 = 0.078125 mm pixels (12.8 px per mm);
    # the coronal picture's column of voxel x is (x + 0.5) * 2 mm, its row (from the head)
    # (20 - z - 0.5) * 2 mm
    px = 2.0 / 0.078125
    marks = [
        (1, (11 + 0.5) * px, (20 - 15 - 0.5) * px),
        (2, (2.5 + 0.5) * px, (20 - 2.5 - 0.5) * px),
    ]
    tumor = lesions > 0
    plain = save_single_mip_png(pet, tumor, None, spacing, CORONAL_AXIS, tmp_path / "a.png",
                                title="case")  # fmt: skip
    numbered = save_single_mip_png(pet, tumor, None, spacing, CORONAL_AXIS, tmp_path / "b.png",
                                   title="case", lesions=lesions)  # fmt: skip
    expected = Image.open(plain).convert("RGB")
    draw_numbers(expected, marks, 0, banner_height(3))  # title, view + window, legend
    got = np.asarray(Image.open(numbered).convert("RGB"))
    assert not np.array_equal(got, np.asarray(Image.open(plain).convert("RGB")))
    np.testing.assert_array_equal(got, np.asarray(expected))
