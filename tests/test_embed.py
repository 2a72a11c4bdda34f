"""lion embed: DINOv2 MIP embeddings from a local weights file (a randomly initialised timm model
saved by the test), their shapes, weight-layout mapping, errors, and that strongly different
synthetic scanners separate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter

from lion_nnunet.analysis.embed import load_model, pet_mips
from lion_nnunet.cli import main

ARCH = "vit_small_patch14_dinov2"
IMG = 56  # 4 x 4 patches of 14 px: fast on CPU


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised timm DINOv2 ViT-S/14 saved as a plain state dict (seed 0)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(ARCH, pretrained=False, num_classes=0, img_size=IMG)
    # timm starts DINOv2 layer scales at 1e-5, which makes a random model's output almost
    # constant; trained models have layer scales of order 0.1-1, so use 0.5 here.
    for name, param in model.named_parameters():
        if name.endswith(("ls1.gamma", "ls2.gamma")):
            param.data.fill_(0.5)
    path = tmp_path_factory.mktemp("weights") / "vits14_random.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def scanners(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """16 tiny PET volumes from two 'scanners': 'smooth' (strong blur, no noise) and 'noisy'
    (no blur, low-count Poisson noise); disease labels are assigned independently."""
    root = tmp_path_factory.mktemp("embed_data")
    images = root / "imagesTs"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    z, y, x = np.mgrid[0:48, 0:20, 0:24]
    for i in range(16):
        scanner = "smooth" if i % 2 == 0 else "noisy"
        r = rng.uniform(0.8, 1.0)
        body = ((x - 12) / (9 * r)) ** 2 + ((y - 10) / (7 * r)) ** 2 <= 1
        pet = np.where(body & (z > 2) & (z < 45), rng.uniform(0.8, 1.2), 0.0).astype(np.float32)
        pet[rng.integers(30, 44), 8:12, 10:14] = 8.0  # a hot "brain"
        for _ in range(3):
            pet[rng.integers(5, 40), rng.integers(5, 15), rng.integers(5, 19)] = 6.0
        if scanner == "smooth":
            pet = gaussian_filter(pet, 2.0)
        else:
            pet = (rng.poisson(np.clip(pet, 0, None) * 3.0) / 3.0).astype(np.float32)
        img = sitk.GetImageFromArray(pet.astype(np.float32))
        img.SetSpacing((8.0, 8.0, 8.0))
        sitk.WriteImage(img, str(images / f"case{i:02d}_0000.nii.gz"))
        disease = "lymphoma" if rng.random() < 0.5 else "melanoma"
        rows.append({"case_id": f"case{i:02d}", "scanner": scanner, "disease": disease})
    rows.append({"case_id": "no_image", "scanner": "noisy", "disease": "melanoma"})
    pd.DataFrame(rows).to_csv(root / "lion_cases.csv", index=False)
    return images, root / "lion_cases.csv"


def _args(images: Path, cases: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return ["embed", "--images", str(images), "--cases", str(cases), "--weights", str(weights),
            "--arch", ARCH, "--img-size", str(IMG), "--device", "cpu", "--batch-size", "4",
            "-o", str(out), "--no-pbar", *extra]  # fmt: skip


def test_embeddings_shapes_and_scanner_separation(
    scanners: tuple[Path, Path], weights: Path, tmp_path: Path
) -> None:
    images, cases = scanners
    out = tmp_path / "shift"
    assert main(_args(images, cases, weights, out, "--group-by", "scanner", "disease")) == 0
    with np.load(out / "embeddings.npz") as z:
        assert z["embedding"].shape == (16, 2 * 384)  # coronal + sagittal ViT-S features
        assert np.isfinite(z["embedding"]).all()
    table = pd.read_csv(out / "embeddings.csv")
    assert len(table) == 16 and {"pca1", "pca2", "scanner", "disease"} <= set(table.columns)
    sep = pd.read_csv(out / "separation.csv").set_index("grouping")
    scanner = sep.loc["scanner"]
    assert scanner.n_groups == 2 and scanner.chance_accuracy == 0.5
    assert scanner.silhouette > 0
    assert scanner.knn_accuracy > 0.75  # well above chance (0.5)
    assert (out / "pca_scanner.png").stat().st_size > 3000
    summary = json.loads((out / "shift.json").read_text())
    assert summary["cases"] == 16 and summary["embedding_dim"] == 768

    # a re-run reuses the stored embeddings and gives the same answer
    assert main(_args(images, cases, weights, out, "--group-by", "scanner")) == 0
    again = pd.read_csv(out / "separation.csv").set_index("grouping").loc["scanner"]
    assert again.knn_accuracy == scanner.knn_accuracy


def test_mips_keep_aspect_and_put_the_head_up(scanners: tuple[Path, Path]) -> None:
    images, _ = scanners
    mips = pet_mips(images / "case01_0000.nii.gz", suv_max=10.0, size=IMG)
    assert mips.shape == (2, 3, IMG, IMG) and mips.dtype == np.float32
    coronal = mips[0, 0]
    background = coronal[0, 0]
    cols = np.flatnonzero((coronal != background).any(axis=0))
    assert cols.min() > 0 and cols.max() < IMG - 1  # body is 24x48 voxels: padded left/right
    hot_row = np.unravel_index(np.argmax(coronal), coronal.shape)[0]
    assert hot_row < IMG / 2  # the hot brain (high z) is in the upper half


def test_wrong_architecture_is_one_clear_error(
    scanners: tuple[Path, Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    images, cases = scanners
    args = _args(images, cases, weights, tmp_path / "x", "--group-by", "scanner")
    args[args.index(ARCH)] = "vit_base_patch14_dinov2"
    assert main(args) == 1
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("lion ")]
    assert len(errors) == 1  # one sentence on one line (warnings apart)
    assert "weights are for another architecture than --arch vit_base_patch14_dinov2" in errors[0]
    assert "shape mismatch" in errors[0]


def test_missing_grouping_column_is_one_clear_error(
    scanners: tuple[Path, Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    images, cases = scanners
    assert main(_args(images, cases, weights, tmp_path / "x", "--group-by", "center")) == 1
    err = capsys.readouterr().err
    assert "no column(s) center to group by" in err and "scanner" in err


def test_official_dinov2_key_layout_is_mapped(weights: Path, tmp_path: Path) -> None:
    """facebookresearch/dinov2 checkpoints carry mask_token and a 37x37 position grid (518 px)."""
    from timm.layers import resample_abs_pos_embed

    state = torch.load(weights, weights_only=True)
    official = dict(state)
    official["mask_token"] = torch.zeros(1, 384)
    same_size = tmp_path / "official_56.pth"
    torch.save(official, same_size)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, IMG, IMG)).astype("float32"))
    with torch.inference_mode():
        ref = load_model(ARCH, weights, IMG)(x)
        mapped = load_model(ARCH, same_size, IMG)(x)
    torch.testing.assert_close(mapped, ref)

    official["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], (37, 37), (4, 4))
    big = tmp_path / "official_518.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in official.items()}}, big)
    with torch.inference_mode():
        out = load_model(ARCH, big, IMG)(x)  # position grid resampled back to 4 x 4
    assert out.shape == (2, 384) and torch.isfinite(out).all()
