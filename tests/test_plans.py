"""LION plans templates, `lion plans install`, and `lion splits`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from lion_nnunet.cli import main
from lion_nnunet.dataset_conversion.autopet import discover_autopet
from lion_nnunet.dataset_conversion.raw_dataset import convert_cohort
from lion_nnunet.labels import get_label_set
from lion_nnunet.plans.templates import DEFAULTS, build_plans, load_template


@pytest.mark.parametrize("tracer", sorted(DEFAULTS))
def test_shipped_templates_match_the_builder(tracer: str) -> None:
    assert load_template(tracer) == json.loads(json.dumps(build_plans(tracer))), (
        "regenerate with: python -m lion_nnunet.plans.templates"
    )
    config = load_template(tracer)["configurations"]["3d_fullres"]
    assert config["normalization_schemes"] == ["CTNormalization"]
    assert config["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    strides = config["architecture"]["arch_kwargs"]["strides"]
    for axis, size in enumerate(config["patch_size"]):
        total = 1
        for s in strides:
            total *= s[axis]
        assert size % total == 0


@pytest.fixture
def fingerprinted(fdg_cohort: Path, nnunet_dirs: dict) -> int:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    cases = discover_autopet(
        fdg_cohort / "studies", fdg_cohort / "organs", "fdg", fdg_cohort / "cases.csv"
    )
    convert_cohort(cases, 611, "Plans", get_label_set("fdg"), progress=False)
    return 611, extract_fingerprint_dataset


def _encoder_blocks(arch: dict) -> list[int]:
    """Residual blocks per encoder stage of the network nnU-Net builds (counted modules)."""
    from dynamic_network_architectures.building_blocks.residual import BasicBlockD
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"],
                                 arch["_kw_requires_import"], 1, 12)  # fmt: skip
    return [sum(isinstance(m, BasicBlockD) for m in st.modules()) for st in net.encoder.stages]


def _built_width(arch: dict, reference: dict | None = None) -> tuple[int, float]:
    """First-stage width of the network nnU-Net builds, and its weights relative to reference."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    def build(a: dict):
        return get_network_from_plans(a["network_class_name"], a["arch_kwargs"],
                                      a["_kw_requires_import"], 1, 12)  # fmt: skip

    net = build(arch)
    n = sum(p.numel() for p in net.parameters())
    ref = sum(p.numel() for p in build(reference).parameters()) if reference else n
    return net.encoder.stem.convs[0].conv.out_channels, n / ref


def test_install_needs_a_fingerprint_then_rewrites_dataset_fields(fingerprinted, capsys) -> None:
    did, extract = fingerprinted
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg"]) == 1
    assert "run nnUNetv2_extract_fingerprint -d 611 first" in capsys.readouterr().err
    extract(did, num_processes=1)
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "MyLION",
                 "--patch-size", "64", "32", "32", "--spacing", "dataset"]) == 0  # fmt: skip
    folder = Path(__import__("os").environ["nnUNet_preprocessed"]) / "Dataset611_Plans"
    plans = json.loads((folder / "MyLION.json").read_text())
    fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text())
    assert plans["dataset_name"] == "Dataset611_Plans" and plans["plans_name"] == "MyLION"
    config = plans["configurations"]["3d_fullres"]
    assert config["data_identifier"] == "MyLION_3d_fullres"
    assert config["patch_size"] == [64, 32, 32] and config["spacing"] == [6.0, 6.0, 6.0]
    assert config["architecture"]["arch_kwargs"]["n_stages"] == 4
    assert (
        plans["foreground_intensity_properties_per_channel"]
        == (fingerprint["foreground_intensity_properties_per_channel"])
    )
    assert (folder / "dataset.json").is_file()
    # --base-features reaches the network nnU-Net builds from the plans
    assert _built_width(config["architecture"]) == (32, 1.0)  # the template's width
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "Thin",
                 "--patch-size", "64", "32", "32", "--spacing", "dataset",
                 "--base-features", "8"]) == 0  # fmt: skip
    thin = json.loads((folder / "Thin.json").read_text())["configurations"]["3d_fullres"]
    width, weights = _built_width(thin["architecture"], config["architecture"])
    assert width == 8 and weights < 0.1  # (8/32)^2 of the weights: really lighter
    # --blocks-per-stage reaches it too: residual blocks counted in the built encoder
    assert _encoder_blocks(thin["architecture"]) == [1, 3, 4, 6]  # ResEnc-M's
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "Light",
                 "--patch-size", "64", "32", "32", "--spacing", "dataset",
                 "--base-features", "8", "--blocks-per-stage", "1"]) == 0  # fmt: skip
    light = json.loads((folder / "Light.json").read_text())["configurations"]["3d_fullres"]
    assert _encoder_blocks(light["architecture"]) == [1, 1, 1, 1]
    assert _built_width(light["architecture"], thin["architecture"])[1] < 0.3
    # same content again is fine; different content needs --overwrite
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "MyLION",
                 "--patch-size", "64", "32", "32", "--spacing", "dataset"]) == 0  # fmt: skip
    assert (
        main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "MyLION"]) == 1
    )
    assert "use --overwrite" in capsys.readouterr().err


def test_splits_nested_stratified_with_fixed_validation(tmp_path, nnunet_dirs, capsys) -> None:
    from lion_nnunet.synthetic.phantoms import make_cohort

    make_cohort(tmp_path, "fdg", 30, seed=3, progress=False)
    cases = discover_autopet(tmp_path / "studies", None, "fdg", tmp_path / "cases.csv")
    convert_cohort(cases, 612, "Splits", get_label_set("fdg"), with_organs=False, progress=False)
    assert main(["splits", "-d", "612", "--subset-sizes", "8", "16", "24", "--val-size", "6"]) == 0
    folder = Path(nnunet_dirs["nnUNet_preprocessed"]) / "Dataset612_Splits"
    splits = json.loads((folder / "splits_final.json").read_text())
    assert [len(s["train"]) for s in splits] == [8, 16, 24]
    assert all(s["val"] == splits[0]["val"] for s in splits) and len(splits[0]["val"]) == 6
    for small, big in itertools.pairwise(splits):
        assert set(small["train"]) < set(big["train"])
    assert not set(splits[-1]["train"]) & set(splits[0]["val"])
    table = pd.read_csv(folder / "lion_splits.csv")
    assert set(table.columns) >= {"fold", "subset_size", "role", "case_id", "disease"}
    first = table[(table.fold == 0) & (table.role == "train")]
    assert first.disease.nunique() >= 3  # 8 cases drawn across the 4 diseases
    assert main(["splits", "-d", "612", "--subset-sizes", "8", "40"]) == 1
    assert "exceeds the training pool" in capsys.readouterr().err
    before = (folder / "splits_final.json").read_text()
    assert main(["splits", "-d", "612", "--subset-sizes", "4", "--pool", "lymphoma"]) == 1
    assert "use --overwrite" in capsys.readouterr().err
    assert (folder / "splits_final.json").read_text() == before  # refused: nothing lost
    assert main(["splits", "-d", "612", "--subset-sizes", "4", "--pool", "lymphoma",
                 "--overwrite"]) == 0  # fmt: skip
    assert json.loads((folder / "splits_final.previous.json").read_text()) == json.loads(before)
    table = pd.read_csv(folder / "lion_splits.csv")
    assert set(table[table.role == "train"].disease) == {"lymphoma"}
    assert main(["splits", "-d", "612", "--subset-sizes", "4", "--stratify", "site"]) == 1
    assert "no column 'site'" in capsys.readouterr().err


def test_ablation_arms_get_identical_plans_and_splits(fdg_cohort: Path, nnunet_dirs: dict) -> None:
    """Both arms: one PET normalization, one splits file, plans equal but for dataset_name."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    from lion_nnunet.experiment import _write_shared_splits

    cases = discover_autopet(
        fdg_cohort / "studies", fdg_cohort / "organs", "fdg", fdg_cohort / "cases.csv"
    )
    cases = sorted(cases, key=lambda c: c.case_id)[:6]  # 6 of 10: enough for 5 folds
    for c in cases:
        c.split = "train"
    convert_cohort(cases, 621, "ArmOrgans", get_label_set("fdg"), progress=False)
    convert_cohort(cases, 622, "ArmTumor", get_label_set("fdg"), with_organs=False,
                   progress=False)  # fmt: skip
    pre = Path(nnunet_dirs["nnUNet_preprocessed"])
    prints = {}
    for did, name in ((621, "Dataset621_ArmOrgans"), (622, "Dataset622_ArmTumor")):
        extract_fingerprint_dataset(did, num_processes=1)
        prints[did] = json.loads((pre / name / "dataset_fingerprint.json").read_text())
        install = ["plans", "install", "-d", str(did), "--tracer", "fdg", "--intensity-from", "621"]
        assert main([*install, "--patch-size", "64", "32", "32", "--spacing", "dataset"]) == 0
    # nnU-Net's own fingerprints disagree (label-foreground voxels differ between the arms) ...
    own = {d: f["foreground_intensity_properties_per_channel"]["0"] for d, f in prints.items()}
    assert own[621]["percentile_99_5"] != own[622]["percentile_99_5"]
    # ... the two plans do not: identical apart from the dataset's name
    organs = json.loads((pre / "Dataset621_ArmOrgans" / "LIONPlans.json").read_text())
    tumor = json.loads((pre / "Dataset622_ArmTumor" / "LIONPlans.json").read_text())
    assert organs.pop("dataset_name") != tumor.pop("dataset_name")
    assert organs == tumor
    assert organs["foreground_intensity_properties_per_channel"]["0"] == own[621]
    # the output classes differ (from dataset.json, not the plans)
    names = ("Dataset621_ArmOrgans", "Dataset622_ArmTumor")
    labels = [json.loads((pre / n / "dataset.json").read_text())["labels"] for n in names]
    assert len(labels[0]) > len(labels[1]) == 2
    targets = [pre / n / "splits_final.json" for n in names]
    _write_shared_splits(nnunet_dirs["nnUNet_raw"] / "Dataset621_ArmOrgans" / "lion_cases.csv",
                         targets, seed=0)  # fmt: skip
    splits = [json.loads(t.read_text()) for t in targets]
    assert splits[0] == splits[1] and len(splits[0]) == 5
    ids = sorted(c.case_id for c in cases)
    assert sorted(c for s in splits[0] for c in s["val"]) == ids  # every case validated once
